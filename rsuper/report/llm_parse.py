"""From a language model's raw answer to a checked :class:`ReportFacts`.

Steps, shared by the ``transformers`` and ``openai`` backends:

1. :func:`find_json_object` drops code fences and chatter and decodes the
   first JSON object in the text;
2. :func:`validate_output` checks it against
   :func:`~rsuper.report.json_schema.llm_output_schema` and lists every
   violation;
3. :func:`to_report_facts` converts it: diameters sorted largest first, the
   evidence sentence located in the report (``report[start:end] == text``),
   and tumours whose numbers are not written in the report dropped
   (hallucination check; see :func:`unsupported_numbers`).

Steps 1-2 raise :class:`InvalidModelOutput` (the backends retry on it);
step 3 never rejects the whole answer, it drops single facts with a warning.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from .base import ExtractionError
from .json_schema import llm_output_schema
from .schema import (
    Evidence,
    ExtractorInfo,
    FactsError,
    ReportFacts,
    Tumour,
    expand_sides,
    validate_facts,
    validate_subsegment,
)

_FENCE_LINE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
_LINE_START_BRACE = re.compile(r"^\{", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_ABS_TOL = 1e-6
#: Longest message of one schema violation (enum messages list the vocabulary).
_MAX_VIOLATION_CHARS = 300

#: Words by which a report can write a count, by value.
_COUNT_WORDS: dict[int, tuple[str, ...]] = {
    2: ("two", "pair", "couple"),
    3: ("three",),
    4: ("four",),
    5: ("five",),
    6: ("six",),
    7: ("seven",),
    8: ("eight",),
    9: ("nine",),
    10: ("ten",),
    11: ("eleven",),
    12: ("twelve", "dozen"),
    13: ("thirteen",),
    14: ("fourteen",),
    15: ("fifteen",),
    16: ("sixteen",),
    17: ("seventeen",),
    18: ("eighteen",),
    19: ("nineteen",),
    20: ("twenty",),
}


class InvalidModelOutput(ValueError):
    """The model's answer is not usable JSON of the expected shape.

    Attributes:
        violations: one human-readable line per problem (also in the message).
    """

    def __init__(self, violations: list[str]):
        self.violations = list(violations)
        super().__init__("; ".join(self.violations))


class LLMExtractionError(ExtractionError):
    """A report whose extraction failed after all attempts.

    Attributes:
        attempts: how many times the model (or server) was asked.
        last_error: the problem of the last attempt.
    """

    def __init__(self, message: str, attempts: int, last_error: str):
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


# --------------------------------------------------------------- JSON parsing
def find_json_object(raw: str) -> Any:
    """Decode the first JSON object in ``raw``.

    Code-fence lines (```` ```json ````) are removed and text around the
    object is ignored. The object may start at the first ``{`` or, when that
    one does not start valid JSON (chatter such as "see {below}"), at a ``{``
    that opens a line; a ``{`` nested inside a cut-off answer is never taken
    for the answer. Raises :class:`InvalidModelOutput` naming the decoding
    problem of the first candidate.
    """
    text = _FENCE_LINE.sub("", raw)
    first = text.find("{")
    if first < 0:
        raise InvalidModelOutput(["the answer contains no JSON object"])
    candidates = [first] + [m.start() for m in _LINE_START_BRACE.finditer(text) if m.start() > first]
    decoder = json.JSONDecoder()
    errors: list[json.JSONDecodeError] = []
    for start in candidates:
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError as exc:
            errors.append(exc)
    first_error = errors[0]
    problem = f"the answer is not valid JSON: {first_error.msg} at character {first_error.pos}"
    if first_error.pos >= len(text.rstrip()) or first_error.msg.startswith("Unterminated string"):
        problem += " (it ends before the JSON is complete)"
    raise InvalidModelOutput([problem])


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(llm_output_schema())


def validate_output(data: Any) -> dict[str, Any]:
    """Check ``data`` against the answer schema; return it if valid.

    Raises :class:`InvalidModelOutput` listing every violation as
    ``<path>: <message>`` (path ``tumours/0/organ``; ``<root>`` for the top).
    """
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            path = "/".join(str(p) for p in err.absolute_path) or "<root>"
            message = err.message
            if len(message) > _MAX_VIOLATION_CHARS:
                message = message[:_MAX_VIOLATION_CHARS] + "..."
            lines.append(f"{path}: {message}")
        raise InvalidModelOutput(lines)
    return data


# ------------------------------------------------------------ conversion
def locate_evidence(sentence: str, report: str) -> Evidence | None:
    """Find ``sentence`` in ``report``; ``None`` if it is not there.

    Exact match first, then a match that ignores letter case and treats any
    run of whitespace as equal. The returned span always satisfies
    ``report[start:end] == text`` (``text`` is the report's own spelling).
    """
    sentence = sentence.strip()
    if not sentence:
        return None
    start = report.find(sentence)
    if start >= 0:
        return Evidence(sentence, start, start + len(sentence))
    pattern = r"\s+".join(re.escape(word) for word in sentence.split())
    match = re.search(pattern, report, re.IGNORECASE)
    if match is None:
        return None
    return Evidence(match.group(0), match.start(), match.end())


def report_numbers(report: str) -> list[float]:
    """Every number written in the report with digits (``2``, ``2.3``)."""
    return [float(m.group(0)) for m in _NUMBER.finditer(report)]


def _count_is_written(count: int, report: str) -> bool:
    if re.search(rf"(?<![\d.]){count}(?!\d|\.\d)", report):
        return True
    words = _COUNT_WORDS.get(count, ())
    return any(re.search(rf"\b{w}\b", report, re.IGNORECASE) for w in words)


def unsupported_numbers(tumour: Tumour, report: str, numbers: list[float] | None = None) -> list[str]:
    """Numbers of ``tumour`` that the report does not contain (hallucinations).

    A diameter ``d`` mm is supported when the report writes ``d`` (as mm) or
    ``d / 10`` (as cm), compared as numbers (``2`` equals ``2.0``). A count
    above 1 that is not a lower bound is supported when the report writes it
    in digits or as a word (``three``, ``pair`` ...). Returns one description
    per unsupported number, empty when all are supported.
    """
    if numbers is None:
        numbers = report_numbers(report)
    problems = []
    for d in tumour.diameters_mm:
        if not any(math.isclose(n, d, abs_tol=_ABS_TOL) or math.isclose(n, d / 10.0, abs_tol=_ABS_TOL)
                   for n in numbers):
            problems.append(f"diameter {d:g} mm (neither {d:g} nor {d / 10.0:g} is written in the report)")
    if tumour.count > 1 and not tumour.count_is_lower_bound and not _count_is_written(tumour.count, report):
        problems.append(f"count {tumour.count} (not written in the report)")
    return problems


def _tumour(item: dict[str, Any], report: str, label: str, warnings: list[str]) -> Tumour:
    subsegment = item.get("subsegment")
    try:
        validate_subsegment(item["organ"], subsegment)
    except FactsError as exc:
        warnings.append(f"{label}: subsegment dropped: {exc}")
        subsegment = None
    evidence = locate_evidence(item["evidence"], report)
    if evidence is None:
        warnings.append(f"{label}: evidence sentence not found in the report: {item['evidence']!r}")
    return Tumour(
        organ=item["organ"],
        subsegment=subsegment,
        diameters_mm=sorted((float(d) for d in item["diameters_mm"]), reverse=True),
        count=int(item["count"]),
        count_is_lower_bound=bool(item.get("count_is_lower_bound", False)),
        attenuation=item.get("attenuation", "unknown"),
        malignancy=item.get("malignancy", "unknown"),
        evidence=evidence,
    )


def to_report_facts(data: dict[str, Any], case_id: str, report: str, info: ExtractorInfo) -> ReportFacts:
    """Convert a schema-valid answer into facts, dropping what the report does not support.

    * a tumour with a diameter or count not written in the report is dropped
      (warning names the number);
    * a sub-segment that does not belong to the organ is set to ``None``;
    * an evidence sentence not found in the report gives ``evidence=None``;
    * a normal organ that overlaps an organ with a kept tumour is dropped
      (sides expanded: ``kidney`` overlaps ``kidney_left``).
    """
    warnings: list[str] = []
    numbers = report_numbers(report)
    tumours: list[Tumour] = []
    for k, item in enumerate(data["tumours"]):
        label = f"tumour {k + 1} ({item['organ']})"
        tumour = _tumour(item, report, label, warnings)
        problems = unsupported_numbers(tumour, report, numbers)
        if problems:
            warnings.append(f"{label} dropped, not supported by the report: " + "; ".join(problems))
        else:
            tumours.append(tumour)

    tumour_sides = set(expand_sides(t.organ for t in tumours))
    normal: list[str] = []
    for organ in data["normal_organs"]:
        if organ in normal:
            continue
        if tumour_sides & set(expand_sides([organ])):
            warnings.append(f"normal organ {organ!r} dropped: a tumour is reported in it")
        else:
            normal.append(organ)

    facts = ReportFacts(case_id=case_id, tumours=tumours, normal_organs=normal, warnings=warnings, extractor=info)
    try:
        validate_facts(facts, report)
    except FactsError as exc:
        raise InvalidModelOutput([f"facts record invalid: {exc}"]) from exc
    return facts


def parse_model_output(raw: str, case_id: str, report: str, info: ExtractorInfo) -> ReportFacts:
    """Raw model text -> checked facts (raises :class:`InvalidModelOutput`)."""
    return to_report_facts(validate_output(find_json_object(raw)), case_id, report, info)

"""The offline ``rules`` extractor against the hand-written report corpus.

The corpus (``Testing/data/report_corpus.yaml``, format in
``Testing/data/README.md``) lists radiology report snippets with the tumour
records and normal organs a careful reader takes from them, following the
counting convention of :mod:`rsuper.report.schema`. Sizes are in mm.

Per case the extracted :class:`~rsuper.report.schema.ReportFacts` must match:

* the multiset of ``(organ, diameters_mm, count, count_is_lower_bound)``;
* the sub-segment of every expected record that states one;
* the set of normal organs;
* evidence spans that quote the report and contain the reported sizes;
* :func:`~rsuper.report.schema.validate_facts`.

The ``test_corpus_*`` tests check the corpus itself and need no extractor.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from rsuper.report.schema import (
    ORGANS,
    PAIRED_ORGANS,
    SUBSEGMENTS,
    ReportFacts,
    Tumour,
    validate_facts,
)

CORPUS_PATH = Path(__file__).parent / "data" / "report_corpus.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))
CASE_IDS = [case["id"] for case in CASES]

CASE_KEYS = {"id", "text", "tumours", "normal_organs", "tags"}
TUMOUR_KEYS = {"organ", "subsegment", "diameters_mm", "count", "count_is_lower_bound"}
TAGS = {"negation", "prior_size", "impression_repeat", "long", "header_style", "trap"}

#: (organ, diameters in mm largest first rounded to 0.1, count, count_is_lower_bound)
RecordKey = tuple[str, tuple[float, ...], int, bool]

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CM_SIZE = re.compile(r"\d(?:\.\d+)?\s*cm\b")
_NEGATION_CUE = re.compile(
    r"\b(no|without|negative for|unremarkable|normal|clear)\b", re.IGNORECASE
)
_PRIOR_CUE = re.compile(r"\b(previously|prior|increased from|was)\b", re.IGNORECASE)


# ---------------------------------------------------------------- helpers
def _key(organ: str, diameters: list[float], count: int, lower_bound: bool) -> RecordKey:
    """Comparable form of one tumour record (diameters sorted, rounded to 0.1 mm)."""
    dims = tuple(round(float(d), 1) for d in sorted(diameters, reverse=True))
    return (organ, dims, int(count), bool(lower_bound))


def _expected_key(rec: dict[str, Any]) -> RecordKey:
    return _key(rec["organ"], rec["diameters_mm"], rec["count"], rec["count_is_lower_bound"])


def _got_key(t: Tumour) -> RecordKey:
    return _key(t.organ, t.diameters_mm, t.count, t.count_is_lower_bound)


def _subsegment_parts(subsegment: str | None) -> frozenset[str] | None:
    """``"head/body"`` and ``"body/head"`` compare equal."""
    return None if subsegment is None else frozenset(subsegment.split("/"))


def _mentions_size(evidence: str, diameter_mm: float) -> bool:
    """Whether ``evidence`` writes ``diameter_mm`` as a number in mm or in cm."""
    for number in _NUMBER.findall(evidence):
        value = float(number)
        if abs(value - diameter_mm) < 0.05 or abs(value * 10.0 - diameter_mm) < 0.05:
            return True
    return False


def _describe(case: dict[str, Any], facts: ReportFacts) -> str:
    """Case id, text, expected and extracted facts, for assertion messages."""
    lines = [f"case {case['id']!r}", "text:", case["text"].rstrip(), "expected tumours:"]
    for rec in case["tumours"]:
        lines.append(f"  {_expected_key(rec)} subsegment={rec.get('subsegment')}")
    lines.append("got tumours:")
    for t in facts.tumours:
        quote = t.evidence.text if t.evidence else None
        lines.append(f"  {_got_key(t)} subsegment={t.subsegment} evidence={quote!r}")
    lines.append(f"expected normal_organs: {sorted(case['normal_organs'])}")
    lines.append(f"got normal_organs:      {sorted(facts.normal_organs)}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def extract() -> Callable[[dict[str, Any]], ReportFacts]:
    """Runs the rules extractor once per case and caches the facts."""
    from rsuper.report.rules import RulesExtractor

    extractor = RulesExtractor()
    cache: dict[str, ReportFacts] = {}

    def run(case: dict[str, Any]) -> ReportFacts:
        if case["id"] not in cache:
            cache[case["id"]] = extractor.extract(case["id"], case["text"])
        return cache[case["id"]]

    return run


# ---------------------------------------------------------------- extractor tests
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_rules_tumours(case: dict[str, Any], extract: Callable) -> None:
    """Tumour records (organ, size, count) and stated sub-segments match."""
    facts = extract(case)
    expected = Counter(_expected_key(rec) for rec in case["tumours"])
    got = Counter(_got_key(t) for t in facts.tumours)
    assert got == expected, "tumour records differ\n" + _describe(case, facts)

    for key in expected:
        wanted = Counter(
            _subsegment_parts(rec["subsegment"])
            for rec in case["tumours"]
            if "subsegment" in rec and _expected_key(rec) == key
        )
        found = Counter(
            _subsegment_parts(t.subsegment) for t in facts.tumours if _got_key(t) == key
        )
        missing = [sorted(m) for m in wanted - found]
        assert not missing, f"sub-segment missing for {key}: {missing}\n" + _describe(case, facts)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_rules_normal_organs(case: dict[str, Any], extract: Callable) -> None:
    """Organs called normal / free of lesions match."""
    facts = extract(case)
    assert set(facts.normal_organs) == set(case["normal_organs"]), (
        "normal organs differ\n" + _describe(case, facts)
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_rules_evidence_and_schema(case: dict[str, Any], extract: Callable) -> None:
    """Every tumour quotes its words, the quote holds its sizes, the record validates."""
    facts = extract(case)
    text = case["text"]
    assert facts.case_id == case["id"], _describe(case, facts)
    for t in facts.tumours:
        ev = t.evidence
        assert ev is not None and ev.text, (
            f"tumour {_got_key(t)} has no evidence\n" + _describe(case, facts)
        )
        assert text[ev.start:ev.end] == ev.text, (
            f"evidence {ev.text!r} is not text[{ev.start}:{ev.end}] = {text[ev.start:ev.end]!r}\n"
            + _describe(case, facts)
        )
        for d in t.diameters_mm:
            assert _mentions_size(ev.text, d), (
                f"evidence {ev.text!r} does not contain the size {d} mm\n" + _describe(case, facts)
            )
    validate_facts(facts, text)


# ---------------------------------------------------------------- corpus sanity
def test_corpus_size_and_ids() -> None:
    assert len(CASES) >= 70
    duplicates = [i for i, n in Counter(CASE_IDS).items() if n > 1]
    assert not duplicates, f"duplicate ids: {duplicates}"
    for case_id in CASE_IDS:
        assert re.fullmatch(r"[a-z0-9_]+", case_id), f"bad id {case_id!r}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corpus_case_valid(case: dict[str, Any]) -> None:
    """Vocabulary, sizes and counts of one case follow the schema and convention."""
    cid = case["id"]
    assert set(case) <= CASE_KEYS and {"id", "text", "tumours", "normal_organs"} <= set(case), cid
    assert isinstance(case["text"], str) and case["text"].strip(), cid
    assert set(case.get("tags", [])) <= TAGS, cid
    tumour_organs = set()
    for rec in case["tumours"]:
        assert set(rec) <= TUMOUR_KEYS and TUMOUR_KEYS - {"subsegment"} <= set(rec), (cid, rec)
        organ = rec["organ"]
        assert organ in ORGANS, (cid, organ)
        tumour_organs.add(organ)
        if "subsegment" in rec:
            parts = rec["subsegment"].split("/")
            assert all(p in SUBSEGMENTS.get(organ, ()) for p in parts), (cid, rec)
        dims = rec["diameters_mm"]
        assert len(dims) <= 3 and all(d > 0 for d in dims), (cid, dims)
        assert list(dims) == sorted(dims, reverse=True), (cid, dims)
        assert isinstance(rec["count"], int) and rec["count"] >= 1, (cid, rec)
        if rec["count_is_lower_bound"]:
            assert rec["count"] == 2, (cid, "lower-bound groups use count 2")
        assert all(_mentions_size(case["text"], d) for d in dims), (cid, "size not in text", dims)
    normal = case["normal_organs"]
    assert len(normal) == len(set(normal)), cid
    for organ in normal:
        assert organ in ORGANS and organ not in PAIRED_ORGANS, (cid, organ, "use sided names")
        assert organ not in tumour_organs, (cid, organ, "normal organ also has a tumour")


def _tagged(tag: str) -> list[dict[str, Any]]:
    return [case for case in CASES if tag in case.get("tags", [])]


def test_corpus_coverage() -> None:
    """Enough cases of each kind the extractor must handle, each tag backed by its words."""
    negation = _tagged("negation")
    assert len([c for c in negation if c["normal_organs"]]) >= 10
    assert all(_NEGATION_CUE.search(c["text"]) for c in negation)
    prior = _tagged("prior_size")
    assert len(prior) >= 8
    assert all(_PRIOR_CUE.search(c["text"]) for c in prior)
    repeat = _tagged("impression_repeat")
    assert len(repeat) >= 5
    for c in repeat:
        assert "FINDINGS" in c["text"] and "IMPRESSION" in c["text"] and c["tumours"], c["id"]
    long_reports = _tagged("long")
    assert len(long_reports) >= 12
    for c in long_reports:
        assert all(h in c["text"] for h in ("TECHNIQUE", "FINDINGS", "IMPRESSION")), c["id"]
    assert sum(1 for c in CASES if _CM_SIZE.search(c["text"])) >= 8
    assert sum(1 for c in CASES if not c["tumours"]) >= 5


#: (what, pattern, minimum number of cases whose text matches it)
FEATURES: list[tuple[str, str, int]] = [
    ("size in mm", r"\d\s*mm\b", 10),
    ("size in cm", r"\d\.\d\s*cm\b", 10),
    ("a x b", r"\d(?:\.\d+)?\s*x\s*\d", 10),
    ("a x b x c", r"\d(?:\.\d+)?\s*x\s*\d(?:\.\d+)?\s*x\s*\d", 3),
    ("a cm x b cm", r"\d\s*cm\s*x\s*\d", 2),
    ("a x b mm", r"\d+\s*x\s*\d+\s*mm", 2),
    ("up to", r"\bup to\b", 3),
    ("measuring", r"\bmeasur(?:ing|es)\b", 10),
    ("the largest measuring", r"\bthe largest (?:\w+ )*?measuring\b", 3),
    ("range", r"\branging from\b", 2),
    ("multiple", r"\bmultiple\b", 2),
    ("several", r"\bseveral\b", 2),
    ("numerous", r"\bnumerous\b", 1),
    ("innumerable", r"\binnumerable\b", 1),
    ("few", r"\bfew\b", 2),
    ("a single", r"\ba single\b", 1),
    ("count words", r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b", 10),
    ("digit count", r"(?:^|\. |are )\d+ \w+ (?:lesions|nodules|cysts)\b", 2),
    ("pancreatic", r"\bpancreatic\b", 3),
    ("hepatic", r"\bhepatic\b", 3),
    ("renal", r"\brenal\b", 3),
    ("adrenal", r"\badrenal\b", 3),
    ("splenic", r"\bsplenic\b", 2),
    ("gastric", r"\bgastric\b", 2),
    ("colonic", r"\bcolonic\b", 2),
    ("vesical or bladder", r"\b(?:vesical|bladder)\b", 2),
    ("pulmonary", r"\bpulmonary\b", 2),
    ("sided kidney", r"\b(?:left|right) (?:kidney|renal)\b", 5),
    ("sided adrenal", r"\b(?:left|right) adrenal\b", 3),
    ("lung lobe", r"\b(?:right|left) (?:upper|middle|lower) lobe\b", 5),
    ("pancreas part", r"\b(?:head|uncinate|neck|body|tail)\b", 5),
    ("Couinaud segment", r"\bsegments? (?:[1-8]|I{1,3}|IV|VI{0,3}|V)[ab]?\b", 10),
    ("kidney pole", r"\b(?:upper|lower|mid) pole|interpolar\b", 5),
    ("no focal", r"\bno focal\b", 2),
    ("without evidence of", r"\bwithout evidence of\b", 2),
    ("unremarkable", r"\bunremarkable\b", 5),
    ("normal", r"\bnormal\b", 5),
    ("no suspicious", r"\bno suspicious\b", 2),
    ("negative for", r"\bnegative for\b", 1),
    ("previously", r"\bpreviously \d", 3),
    ("compared to a prior size", r"\bcompared to \d", 1),
    ("increased from", r"\bincreased from \d", 2),
    ("was size on date", r"\bwas \d(?:\.\d+)? cm on \d", 1),
    ("too small to characterize", r"\btoo small to characterize\b", 3),
    ("calculus", r"\bcalculus\b", 2),
    ("diverticulosis", r"\bdiverticulosis\b", 2),
    ("lymph node", r"\blymph node", 3),
    ("fluid collection", r"\bfluid collection\b", 1),
    ("cholecystectomy", r"\bcholecystectomy\b", 1),
    ("section header", r"(?m)^[A-Za-z ]+: \S", 10),
]


@pytest.mark.parametrize("what,pattern,minimum", FEATURES, ids=[f[0] for f in FEATURES])
def test_corpus_features(what: str, pattern: str, minimum: int) -> None:
    """Each phrasing the extractor must understand occurs in enough cases."""
    rx = re.compile(pattern, re.IGNORECASE)
    hits = [c["id"] for c in CASES if rx.search(c["text"])]
    assert len(hits) >= minimum, f"{what}: only {len(hits)} cases ({hits}), need {minimum}"

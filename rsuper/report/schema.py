"""Report facts: the typed record that every extractor produces.

One :class:`ReportFacts` per report (per CT). It lists the tumours the report
describes (:class:`Tumour`), the organs it explicitly calls free of lesions
(R-Super uses those as negative supervision), warnings, and which extractor
produced it. Every size is stored in millimetres.

Counting convention (what "one tumour record" means; docs/report-facts.md):

* a lesion measured on its own is one record with ``count == 1``;
* lesions described as a group ("three cysts", "multiple metastases") are one
  record with ``count`` = the number, or the lower bound 2 with
  ``count_is_lower_bound`` for "multiple / several / numerous / a few";
  a size given for the group ("the largest 2 cm", "up to 15 mm") is the size of
  its largest member;
* a group whose members are measured one by one ("two cysts measuring 8 and
  5 mm") becomes one record per measured lesion.

A tumour that spans several sub-segments ("head and body") has those names
joined by ``/`` in :attr:`Tumour.subsegment` (``"head/body"``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

SCHEMA_VERSION = "1.0"

#: Controlled organ vocabulary. Paired organs carry their side; the unsided
#: name (``kidney``, ``adrenal`` …) means "side not stated in the report".
ORGANS: tuple[str, ...] = (
    "liver",
    "pancreas",
    "kidney_left",
    "kidney_right",
    "kidney",
    "spleen",
    "gallbladder",
    "stomach",
    "duodenum",
    "small_bowel",
    "colon",
    "esophagus",
    "adrenal_left",
    "adrenal_right",
    "adrenal",
    "bladder",
    "prostate",
    "uterus",
    "ovary_left",
    "ovary_right",
    "ovary",
    "lung_left",
    "lung_right",
    "lung",
    "breast",
    "bone",
)

#: Organs that come as a left/right pair: unsided name -> (left, right).
PAIRED_ORGANS: dict[str, tuple[str, str]] = {
    "kidney": ("kidney_left", "kidney_right"),
    "adrenal": ("adrenal_left", "adrenal_right"),
    "lung": ("lung_left", "lung_right"),
    "ovary": ("ovary_left", "ovary_right"),
}

_KIDNEY_POLES = ("upper_pole", "mid_pole", "lower_pole")

#: Sub-segment vocabulary per organ.
SUBSEGMENTS: dict[str, tuple[str, ...]] = {
    "pancreas": ("head", "uncinate", "neck", "body", "tail"),
    "liver": tuple(f"segment_{k}" for k in range(1, 9)),
    "kidney_left": _KIDNEY_POLES,
    "kidney_right": _KIDNEY_POLES,
    "kidney": _KIDNEY_POLES,
}

ATTENUATIONS: tuple[str, ...] = ("hypo", "iso", "hyper", "cystic", "mixed", "unknown")
MALIGNANCIES: tuple[str, ...] = ("malignant", "suspicious", "benign", "indeterminate", "unknown")

#: Largest diameter accepted as plausible for a single lesion, in mm.
MAX_DIAMETER_MM = 400.0


class FactsError(ValueError):
    """A facts record that violates the schema (message names the field)."""


@dataclass
class Evidence:
    """The words a fact came from: ``report[start:end] == text``.

    ``start``/``end`` are character offsets into the report text as given to
    the extractor (0-based, end exclusive).
    """

    text: str
    start: int
    end: int


@dataclass
class Tumour:
    """One reported tumour (or one group of tumours, see module docstring).

    Attributes:
        organ: a name from :data:`ORGANS`.
        subsegment: a name from ``SUBSEGMENTS[organ]``, several joined by
            ``/``, or ``None`` when the report does not locate it.
        diameters_mm: 0–3 diameters in mm, largest first.
        count: number of tumours this record stands for (>= 1).
        count_is_lower_bound: ``True`` for "multiple / several / numerous".
        attenuation: one of :data:`ATTENUATIONS`.
        malignancy: one of :data:`MALIGNANCIES`.
        evidence: the sentence the record came from.
    """

    organ: str
    subsegment: str | None = None
    diameters_mm: list[float] = field(default_factory=list)
    count: int = 1
    count_is_lower_bound: bool = False
    attenuation: str = "unknown"
    malignancy: str = "unknown"
    evidence: Evidence | None = None

    @property
    def size_known(self) -> bool:
        """Whether the report gives at least one diameter."""
        return bool(self.diameters_mm)

    def volume_mm3(self) -> float | None:
        """Ellipsoid volume in mm³ from the diameters (``None`` if no size).

        One diameter d: sphere ``π d³ / 6``. Two (a, b): third axis
        ``(a + b) / 2``. Three: ``π a b c / 6``.
        """
        d = self.diameters_mm
        if not d:
            return None
        if len(d) == 1:
            a = b = c = d[0]
        elif len(d) == 2:
            a, b = d
            c = (a + b) / 2.0
        else:
            a, b, c = d[:3]
        return 3.141592653589793 / 6.0 * a * b * c


@dataclass
class ExtractorInfo:
    """Which extractor produced the facts (``name`` + ``version`` or model)."""

    name: str
    version: str = ""
    model: str | None = None


@dataclass
class ReportFacts:
    """All facts of one report (one CT)."""

    case_id: str
    tumours: list[Tumour] = field(default_factory=list)
    normal_organs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extractor: ExtractorInfo = field(default_factory=lambda: ExtractorInfo("unknown"))
    schema_version: str = SCHEMA_VERSION

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the JSON Lines record)."""
        return asdict(self)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReportFacts":
        """Build and validate from a dict (as written by :meth:`to_dict`)."""
        try:
            tumours = [_tumour_from_dict(t) for t in data.get("tumours", [])]
            ext = data.get("extractor") or {"name": "unknown"}
            facts = cls(
                case_id=str(data["case_id"]),
                tumours=tumours,
                normal_organs=list(data.get("normal_organs", [])),
                warnings=list(data.get("warnings", [])),
                extractor=ExtractorInfo(**ext),
                schema_version=str(data.get("schema_version", SCHEMA_VERSION)),
            )
        except (KeyError, TypeError) as exc:
            raise FactsError(f"malformed facts record: {exc}") from exc
        validate_facts(facts)
        return facts

    def tumours_in(self, organ: str) -> list[Tumour]:
        """Tumour records of one organ."""
        return [t for t in self.tumours if t.organ == organ]

    def total_count(self, organ: str | None = None) -> int:
        """Number of tumours (lower bounds counted at their bound)."""
        return sum(t.count for t in self.tumours if organ is None or t.organ == organ)


def _tumour_from_dict(data: dict[str, Any]) -> Tumour:
    ev = data.get("evidence")
    return Tumour(
        organ=data["organ"],
        subsegment=data.get("subsegment"),
        diameters_mm=[float(x) for x in data.get("diameters_mm", [])],
        count=int(data.get("count", 1)),
        count_is_lower_bound=bool(data.get("count_is_lower_bound", False)),
        attenuation=data.get("attenuation", "unknown"),
        malignancy=data.get("malignancy", "unknown"),
        evidence=Evidence(**ev) if ev else None,
    )


def validate_subsegment(organ: str, subsegment: str | None) -> None:
    """Raise :class:`FactsError` unless ``subsegment`` is valid for ``organ``."""
    if subsegment is None:
        return
    allowed = SUBSEGMENTS.get(organ, ())
    for part in subsegment.split("/"):
        if part not in allowed:
            raise FactsError(
                f"subsegment {part!r} is not valid for organ {organ!r} "
                f"(allowed: {', '.join(allowed) or 'none'})"
            )


def validate_tumour(t: Tumour, report_text: str | None = None) -> None:
    """Check one tumour record; raise :class:`FactsError` naming the field."""
    if t.organ not in ORGANS:
        raise FactsError(f"organ {t.organ!r} is not in the vocabulary")
    validate_subsegment(t.organ, t.subsegment)
    if len(t.diameters_mm) > 3:
        raise FactsError(f"{len(t.diameters_mm)} diameters given; at most 3 allowed")
    for d in t.diameters_mm:
        if not (0.0 < d <= MAX_DIAMETER_MM):
            raise FactsError(f"diameter {d} mm outside (0, {MAX_DIAMETER_MM:g}] mm")
    if list(t.diameters_mm) != sorted(t.diameters_mm, reverse=True):
        raise FactsError(f"diameters {t.diameters_mm} are not sorted largest first")
    if t.count < 1:
        raise FactsError(f"count {t.count} < 1")
    if t.attenuation not in ATTENUATIONS:
        raise FactsError(f"attenuation {t.attenuation!r} not one of {ATTENUATIONS}")
    if t.malignancy not in MALIGNANCIES:
        raise FactsError(f"malignancy {t.malignancy!r} not one of {MALIGNANCIES}")
    if t.evidence is not None:
        ev = t.evidence
        if not (0 <= ev.start <= ev.end):
            raise FactsError(f"evidence span [{ev.start}, {ev.end}) is invalid")
        if report_text is not None and report_text[ev.start:ev.end] != ev.text:
            raise FactsError("evidence text does not match the report at its span")


def validate_facts(facts: ReportFacts, report_text: str | None = None) -> None:
    """Validate a whole record (organ names, sizes, spans)."""
    if not facts.case_id:
        raise FactsError("empty case_id")
    for t in facts.tumours:
        validate_tumour(t, report_text)
    for organ in facts.normal_organs:
        if organ not in ORGANS:
            raise FactsError(f"normal organ {organ!r} is not in the vocabulary")


def expand_sides(organs: Iterable[str]) -> list[str]:
    """Replace an unsided paired organ by both sides (``kidney`` -> left, right)."""
    out: list[str] = []
    for o in organs:
        for name in PAIRED_ORGANS.get(o, (o,)):
            if name not in out:
                out.append(name)
    return out

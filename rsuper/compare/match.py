"""Match the AI's tumours to the report's, organ by organ, and flag every disagreement.

Inputs: the AI's tumour records (:class:`rsuper.infer.records.TumourRecord`:
organ, sub-segment shares, RECIST diameters) and the report's facts
(:class:`rsuper.report.schema.ReportFacts`).

Report slots. A report tumour record stands for ``count`` tumours: the first
slot carries the reported diameters (the group's largest member); the other
members are slots whose size is only bounded by that largest diameter. A
group with an open count ("multiple cysts", ``count_is_lower_bound``) also
absorbs any further AI tumours of a compatible place and size.

Matching, per organ family (a paired organ with both its sides: ``kidney``,
``kidney_left`` and ``kidney_right`` form one family), by an optimal
assignment (``scipy.optimize.linear_sum_assignment``) of AI tumours to report
slots minimising the size dissimilarity. A pair is allowed only when

* the sides agree (an unsided organ on either side fits both sides), and
* the report's sub-segment (when it gives one, ``neck``/``uncinate`` counting as
  ``head``) holds part of the AI tumour, when the organ mask has sub-segments
  for that organ (otherwise, e.g. kidney poles, any place fits).

Cost of an allowed pair: the mean relative difference of the diameters sorted
largest first, ``|a - r| / max(a, r)`` over the diameters the report gives
(:data:`UNKNOWN_SIZE_COST` for a slot without a size, plus the relative excess
over a group's largest member), plus :data:`LOCATION_WEIGHT` times the share of
the AI tumour outside the reported sub-segment.

Flags (one :class:`Finding` each):

* ``agrees``: a matched pair whose largest diameters differ by at most the
  tolerance ``max(size_tolerance_fraction x reported largest diameter,
  size_tolerance_mm)`` (defaults 30 % and 5 mm);
* ``size_differs``: a matched pair beyond the tolerance (for a group member
  of unknown size: an AI tumour larger than the group's largest plus tolerance);
* ``ai_only``: an AI tumour the report does not mention;
* ``normal_organ``: an AI tumour in an organ the report calls normal;
* ``report_only``: a report tumour the AI misses;
* ``not_assessed``: a report tumour in an organ the model does not look at.

Severity (for sorting): ``normal_organ`` and ``report_only`` 3, ``ai_only`` 2,
``size_differs`` 1, plus a fraction that grows with the tumour's size (or the
size difference), so that bigger disagreements come first within a class;
``agrees`` and ``not_assessed`` 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rsuper.anatomy.labels import SUBSEGMENT_ALIASES
from rsuper.infer.records import TumourRecord
from rsuper.report.schema import PAIRED_ORGANS, ReportFacts, expand_sides

AGREES = "agrees"
SIZE_DIFFERS = "size_differs"
AI_ONLY = "ai_only"
NORMAL_ORGAN = "normal_organ"
REPORT_ONLY = "report_only"
NOT_ASSESSED = "not_assessed"
#: Every flag, most severe class first.
FLAGS: tuple[str, ...] = (NORMAL_ORGAN, REPORT_ONLY, AI_ONLY, SIZE_DIFFERS, AGREES, NOT_ASSESSED)
#: Base severity of each flag (see the module docstring).
SEVERITY_BASE: dict[str, float] = {
    NORMAL_ORGAN: 3.0, REPORT_ONLY: 3.0, AI_ONLY: 2.0, SIZE_DIFFERS: 1.0, AGREES: 0.0, NOT_ASSESSED: 0.0,
}
#: Matching cost of a report slot without a size (any AI size fits it equally).
UNKNOWN_SIZE_COST = 0.5
#: Weight of the share of an AI tumour outside the reported sub-segment in the matching cost.
LOCATION_WEIGHT = 0.5
_FORBIDDEN = 1e6


@dataclass(frozen=True)
class CompareOptions:
    """Tolerances of :func:`compare_case`.

    Attributes:
        size_tolerance_fraction: allowed difference of the largest diameter, as a fraction of the reported one.
        size_tolerance_mm: smallest allowed difference in mm (small tumours).
    """

    size_tolerance_fraction: float = 0.3
    size_tolerance_mm: float = 5.0

    def __post_init__(self) -> None:
        if self.size_tolerance_fraction < 0 or self.size_tolerance_mm < 0:
            raise ValueError("size tolerances must be >= 0")

    def tolerance_mm(self, reported_mm: float) -> float:
        """Allowed difference (mm) for a reported largest diameter (mm)."""
        return max(self.size_tolerance_fraction * reported_mm, self.size_tolerance_mm)


@dataclass
class Finding:
    """One agreement or disagreement between the AI and the report.

    Attributes:
        flag: one of :data:`FLAGS`.
        organ: facts organ of the AI tumour (or of the report tumour when there is none).
        subsegment: its sub-segment, or ``None``.
        ai_id: the AI tumour's instance id, or ``None``.
        report_index: index of the report tumour in ``facts.tumours``, or ``None``.
        report_member: which member of a reported group (0 = the measured, largest one).
        ai_diameters_mm: the AI tumour's diameters, largest first.
        report_diameters_mm: the reported diameters (``[]`` when the report gives none).
        difference_mm: AI largest diameter minus the reported largest (or the group's largest), mm.
        tolerance_mm: the allowed difference used, mm.
        severity: sort key, larger is worse (see the module docstring).
        message: one sentence for people.
        evidence: the report's words for the tumour, ``{"text", "start", "end"}``, or ``None``.
    """

    flag: str
    organ: str | None
    subsegment: str | None
    ai_id: int | None = None
    report_index: int | None = None
    report_member: int | None = None
    ai_diameters_mm: list[float] | None = None
    report_diameters_mm: list[float] | None = None
    difference_mm: float | None = None
    tolerance_mm: float | None = None
    severity: float = 0.0
    message: str = ""
    evidence: dict[str, Any] | None = None

    @property
    def is_disagreement(self) -> bool:
        """Whether the finding needs a look (not ``agrees`` / ``not_assessed``)."""
        return self.flag not in (AGREES, NOT_ASSESSED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        for key in ("ai_diameters_mm", "report_diameters_mm"):
            if data[key] is not None:
                data[key] = [round(float(v), 1) for v in data[key]]
        for key in ("difference_mm", "tolerance_mm"):
            if data[key] is not None:
                data[key] = round(float(data[key]), 1)
        data["severity"] = round(float(self.severity), 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class CaseComparison:
    """All findings of one case.

    Attributes:
        case_id: the case.
        findings: AI tumours first (in id order), then report tumours the AI misses, then not-assessed ones.
        assessed_organs: organs the model looks at (its lesion organs).
        normal_organs: organs the report calls normal (sides expanded).
        n_ai: AI tumours.
        n_report: report tumours (group counts included).
    """

    case_id: str
    findings: list[Finding] = field(default_factory=list)
    assessed_organs: list[str] = field(default_factory=list)
    normal_organs: list[str] = field(default_factory=list)
    n_ai: int = 0
    n_report: int = 0

    @property
    def severity(self) -> float:
        """The worst finding's severity (0 when everything agrees)."""
        return max((f.severity for f in self.findings), default=0.0)

    @property
    def disagreements(self) -> list[Finding]:
        """Findings that need a look, worst first."""
        return sorted((f for f in self.findings if f.is_disagreement), key=lambda f: -f.severity)

    def counts(self) -> dict[str, int]:
        """Number of findings per flag (every flag listed)."""
        return {flag: sum(f.flag == flag for f in self.findings) for flag in FLAGS}

    @property
    def status(self) -> str:
        """``"agrees"`` when nothing needs a look, else ``"disagrees"``."""
        return "disagrees" if self.disagreements else "agrees"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``comparison.json`` of one case)."""
        return {
            "case_id": self.case_id, "status": self.status, "severity": round(self.severity, 4),
            "n_ai": self.n_ai, "n_report": self.n_report, "counts": self.counts(),
            "assessed_organs": self.assessed_organs, "normal_organs": self.normal_organs,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaseComparison":
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["case_id"]), [Finding.from_dict(f) for f in data.get("findings", [])],
                   list(data.get("assessed_organs", [])), list(data.get("normal_organs", [])),
                   int(data.get("n_ai", 0)), int(data.get("n_report", 0)))


@dataclass(frozen=True)
class _Slot:
    """One reported tumour (a group record gives one slot per member)."""

    index: int
    member: int
    organ: str
    subsegment: str | None
    diameters_mm: tuple[float, ...]
    upper_bound_mm: float | None
    evidence: dict[str, Any] | None


def organ_family(organ: str) -> str:
    """The unsided name of a paired organ (``kidney_left`` -> ``kidney``); other organs unchanged."""
    for unsided, sides in PAIRED_ORGANS.items():
        if organ in sides:
            return unsided
    return organ


def _sides_fit(a: str, b: str) -> bool:
    return a == b or a in PAIRED_ORGANS or b in PAIRED_ORGANS


def _reported_parts(organ: str, subsegment: str) -> set[str]:
    aliases = SUBSEGMENT_ALIASES.get(organ_family(organ), {})
    return {aliases.get(part, part) for part in subsegment.split("/")}


def _share_in(record: TumourRecord, slot: _Slot) -> float | None:
    """Share of the AI tumour inside the slot's sub-segment(s); ``None`` when either side has no sub-segment."""
    if slot.subsegment is None or not record.subsegments:
        return None
    parts = _reported_parts(slot.organ, slot.subsegment)
    return float(sum(v for k, v in record.subsegments.items() if k in parts))


def _size_cost(ai: Sequence[float], slot: _Slot) -> float:
    if slot.diameters_mm:
        pairs = list(zip(ai, slot.diameters_mm))
        return float(np.mean([abs(a - r) / max(a, r) for a, r in pairs]))
    if slot.upper_bound_mm is not None and ai[0] > slot.upper_bound_mm:
        return UNKNOWN_SIZE_COST + (ai[0] - slot.upper_bound_mm) / ai[0]
    return UNKNOWN_SIZE_COST


def _cost(record: TumourRecord, slot: _Slot) -> float:
    if record.organ is None or not _sides_fit(record.organ, slot.organ):
        return _FORBIDDEN
    share = _share_in(record, slot)
    if share is not None and share <= 0.0:
        return _FORBIDDEN
    location = 0.0 if share is None else LOCATION_WEIGHT * (1.0 - min(share, 1.0))
    return _size_cost(record.diameters_mm, slot) + location


def _slots(facts: ReportFacts, families: set[str]) -> tuple[list[_Slot], list[Finding], dict[int, _Slot]]:
    """Report slots of the assessed organs, not-assessed findings, and the open groups (record index -> slot)."""
    slots: list[_Slot] = []
    not_assessed: list[Finding] = []
    open_groups: dict[int, _Slot] = {}
    for index, tumour in enumerate(facts.tumours):
        evidence = asdict(tumour.evidence) if tumour.evidence is not None else None
        diameters = tuple(float(d) for d in tumour.diameters_mm)
        if organ_family(tumour.organ) not in families:
            not_assessed.append(Finding(
                NOT_ASSESSED, tumour.organ, tumour.subsegment, report_index=index, report_member=0,
                report_diameters_mm=list(diameters), evidence=evidence,
                message=f"the report describes a {tumour.organ} tumour; the model does not look at this organ"))
            continue
        largest = diameters[0] if diameters else None
        for member in range(max(tumour.count, 1)):
            slots.append(_Slot(index, member, tumour.organ, tumour.subsegment, diameters if member == 0 else (),
                               largest if member > 0 else None, evidence))
        if tumour.count_is_lower_bound:
            open_groups[index] = _Slot(index, tumour.count, tumour.organ, tumour.subsegment, (), largest, evidence)
    return slots, not_assessed, open_groups


def _describe(organ: str | None, subsegment: str | None) -> str:
    where = (organ or "unknown organ").replace("_", " ")
    return f"{where} ({subsegment.replace('_', ' ')})" if subsegment else where


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.0f}" for v in values) + " mm" if values else "no size"


def _pair_finding(record: TumourRecord, slot: _Slot, options: CompareOptions) -> Finding:
    ai = record.diameters_mm
    reference = slot.diameters_mm[0] if slot.diameters_mm else slot.upper_bound_mm
    finding = Finding(AGREES, record.organ, record.subsegment, ai_id=record.id, report_index=slot.index,
                      report_member=slot.member, ai_diameters_mm=list(ai), report_diameters_mm=list(slot.diameters_mm),
                      evidence=slot.evidence)
    if reference is None:
        finding.message = (f"AI tumour {record.id} ({_mm(ai[:1])}) matches a reported {slot.organ} tumour "
                           "of no stated size")
        return finding
    tolerance = options.tolerance_mm(reference)
    difference = ai[0] - reference
    finding.difference_mm, finding.tolerance_mm = difference, tolerance
    exceeds = difference > tolerance if not slot.diameters_mm else abs(difference) > tolerance
    if exceeds:
        finding.flag = SIZE_DIFFERS
        finding.severity = SEVERITY_BASE[SIZE_DIFFERS] + min(abs(difference) / max(reference, 1.0), 1.0) / 10.0
        bound = "reported" if slot.diameters_mm else "the reported group's largest"
        finding.message = (f"AI tumour {record.id} measures {ai[0]:.0f} mm, {bound} {reference:.0f} mm "
                           f"(difference {difference:+.0f} mm, tolerance {tolerance:.0f} mm)")
    else:
        finding.message = (f"AI tumour {record.id} ({ai[0]:.0f} mm) agrees with the reported "
                           f"{'size' if slot.diameters_mm else 'group'} ({reference:.0f} mm)")
    return finding


def _size_term(size_mm: float | None) -> float:
    """A fraction < 0.1 that grows with a tumour's size (mm), to sort bigger disagreements first."""
    return min(float(size_mm or 0.0), 99.0) / 1000.0


def compare_case(
    records: Sequence[TumourRecord],
    facts: ReportFacts,
    assessed_organs: Sequence[str],
    options: CompareOptions = CompareOptions(),
) -> CaseComparison:
    """Compare a case's AI tumours with its report (see the module docstring).

    Args:
        records: the AI's tumours.
        facts: the report's facts.
        assessed_organs: organs the model looks for tumours in (its lesion organs, facts names);
            the organs of the AI's tumours count as assessed too.
        options: size tolerances.
    """
    assessed = sorted({*assessed_organs, *(r.organ for r in records if r.organ)})
    families = {organ_family(o) for o in assessed}
    slots, not_assessed, open_groups = _slots(facts, families)
    normal = set(expand_sides(facts.normal_organs))
    by_family: dict[str, tuple[list[TumourRecord], list[_Slot]]] = {}
    for record in records:
        by_family.setdefault(organ_family(record.organ) if record.organ else "", ([], []))[0].append(record)
    for slot in slots:
        by_family.setdefault(organ_family(slot.organ), ([], []))[1].append(slot)

    ai_findings: dict[int, Finding] = {}
    missed: list[Finding] = []
    for family in sorted(by_family):
        ai, reported = by_family[family]
        matched_ai: set[int] = set()
        matched_slots: set[int] = set()
        if ai and reported:
            cost = np.array([[_cost(r, s) for s in reported] for r in ai])
            for i, j in zip(*linear_sum_assignment(cost)):
                if cost[i, j] < _FORBIDDEN:
                    ai_findings[ai[i].id] = _pair_finding(ai[i], reported[j], options)
                    matched_ai.add(i)
                    matched_slots.add(j)
        for i, record in enumerate(ai):
            if i in matched_ai:
                continue
            groups = [g for g in open_groups.values() if _cost(record, g) < _FORBIDDEN]
            if groups:
                ai_findings[record.id] = _pair_finding(record, min(groups, key=lambda g: _cost(record, g)), options)
                continue
            ai_findings[record.id] = _unreported(record, normal)
        for j, slot in enumerate(reported):
            if j not in matched_slots:
                size = slot.diameters_mm[0] if slot.diameters_mm else slot.upper_bound_mm
                missed.append(Finding(
                    REPORT_ONLY, slot.organ, slot.subsegment, report_index=slot.index, report_member=slot.member,
                    report_diameters_mm=list(slot.diameters_mm), evidence=slot.evidence,
                    severity=SEVERITY_BASE[REPORT_ONLY] + _size_term(size),
                    message=f"the report describes a {_describe(slot.organ, slot.subsegment)} tumour "
                            f"({_mm(slot.diameters_mm)}) that the AI does not find"))
    findings = [ai_findings[r.id] for r in sorted(records, key=lambda r: r.id)] + missed + not_assessed
    return CaseComparison(facts.case_id, findings, assessed, sorted(normal), len(records),
                          sum(t.count for t in facts.tumours))


def _unreported(record: TumourRecord, normal: set[str]) -> Finding:
    """The finding of an AI tumour matched to nothing in the report."""
    ai = record.diameters_mm
    organ_is_normal = record.organ is not None and set(expand_sides([record.organ])) <= normal
    flag = NORMAL_ORGAN if organ_is_normal else AI_ONLY
    where = _describe(record.organ, record.subsegment)
    message = (f"AI tumour {record.id} ({_mm(ai)}) in the {where}, which the report calls normal" if organ_is_normal
               else f"AI tumour {record.id} ({_mm(ai)}) in the {where} is not in the report")
    return Finding(flag, record.organ, record.subsegment, ai_id=record.id, ai_diameters_mm=list(ai),
                   severity=SEVERITY_BASE[flag] + _size_term(ai[0]), message=message)

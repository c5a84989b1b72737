"""Report supervision of one case: which voxels are unknown, which segment groups carry known sizes.

From a case's :class:`~rsuper.report.schema.ReportFacts`, its organ label array
and label map, and the model's :class:`~rsuper.data.classes.ClassList`, this
module works out, per lesion channel (R-Super method notes §2.3):

* the **unknown region**: the union of the tumour-bearing (sub)segments (the
  whole organ for a tumour without a location). The lesion channel's target
  there is unknown; everywhere else in the channel it is a known negative;
* **segment groups**: sets of label values whose tumours all have known sizes.
  Segments that share a tumour are merged (a "head/body" tumour joins head and
  body; an organ-level tumour joins every segment of its organ), so a group's
  region holds every tumour that may lie in it and no other. Each group carries
  the diameters ``(T, 3)`` (mm) and ellipsoid volumes ``(T,)`` (mm³) of its
  tumours, zero-padded to ``max_tumours``;
* **exclusions**: a tumour of unknown size, with an unknown count ("multiple"),
  or with a diameter outside ``(0, max_diameter_mm]`` makes its (side-specific)
  facts organ unknown as a whole and drops every group touching it; more than
  ``max_tumours`` tumours in one lesion channel excludes that channel's whole
  organ. An excluded organ is never a negative: its voxels are unknown.

Regions are stored as label values (an organ mask is ``np.isin(organs, labels)``)
so that a crop's masks come from the cropped label array alone. A segment
without a mask of its own (kidney poles) or absent from this case's label array
falls back to its whole (side-specific) organ. A tumour whose facts organ has
no voxels at all in the case cannot be located: its lesion channel is unknown
over the whole patch (:attr:`ReportTargets.unknown_everywhere`).

Tumours of facts organs without a lesion channel are ignored (listed in the reasons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rsuper.anatomy.labels import LabelMap, labels_for
from rsuper.data.classes import ClassList
from rsuper.report.schema import ReportFacts, Tumour

#: Tumours per sample (the reference's padding length T).
DEFAULT_MAX_TUMOURS = 10
#: Largest diameter accepted for report supervision, in mm.
DEFAULT_MAX_DIAMETER_MM = 300.0


@dataclass(frozen=True, eq=False)
class SegmentGroup:
    """Label values whose tumours all have known sizes (one report-supervision target).

    Attributes:
        lesion_index: lesion channel (0..L-1) the tumours belong to.
        name: readable description, e.g. ``"pancreas head/body"``.
        labels: label values forming the group's mask.
        diameters_mm: float32 ``(T, 3)`` diameters in mm, largest first, zero rows for padding.
        volumes_mm3: float32 ``(T,)`` ellipsoid volumes ``π a b c / 6`` in mm³, zero-padded.
        n_tumours: number of real (non-padding) rows.
    """

    lesion_index: int
    name: str
    labels: tuple[int, ...]
    diameters_mm: np.ndarray = field(repr=False)
    volumes_mm3: np.ndarray = field(repr=False)
    n_tumours: int


@dataclass
class ReportTargets:
    """Report supervision of one case (see the module docstring).

    Attributes:
        groups: usable segment groups (all lesion channels).
        unknown_labels: lesion channel -> label values whose voxels are unknown in it.
        unknown_everywhere: lesion channels unknown over the whole patch.
        excluded: lesion channel -> facts organs excluded from report supervision.
        reasons: why tumours were ignored or organs excluded (for the training log).
    """

    groups: list[SegmentGroup] = field(default_factory=list)
    unknown_labels: dict[int, tuple[int, ...]] = field(default_factory=dict)
    unknown_everywhere: frozenset[int] = frozenset()
    excluded: dict[int, tuple[str, ...]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def full_diameters(diameters_mm: list[float]) -> tuple[float, float, float]:
    """Three diameters in mm from 1-3 reported ones: ``d -> (d, d, d)``, ``(a, b) -> (a, b, (a + b) / 2)``."""
    d = [float(v) for v in diameters_mm]
    if len(d) == 1:
        return d[0], d[0], d[0]
    if len(d) == 2:
        return d[0], d[1], (d[0] + d[1]) / 2.0
    return d[0], d[1], d[2]


def _size_problem(t: Tumour, max_diameter_mm: float) -> str | None:
    """Why a tumour's size cannot supervise a volume, or ``None``."""
    if t.count_is_lower_bound:
        return "an unknown number of tumours (\"multiple\")"
    if not t.size_known:
        return "a tumour of unknown size"
    if len(t.diameters_mm) > 3 or any(not 0.0 < d <= max_diameter_mm for d in t.diameters_mm):
        return f"an implausible size {t.diameters_mm} mm (allowed (0, {max_diameter_mm:g}] mm, at most 3 values)"
    return None


def _present(labels: list[int], present: set[int]) -> tuple[int, ...]:
    return tuple(v for v in labels if v in present)


def _union_find(sets: list[tuple[int, ...]]) -> list[int]:
    """Component id of each label set; sets sharing a label are in one component."""
    parent = list(range(len(sets)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[int, int] = {}
    for i, values in enumerate(sets):
        for v in values:
            if v in owner:
                parent[root(i)] = root(owner[v])
            else:
                owner[v] = i
    return [root(i) for i in range(len(sets))]


def _group(lesion_index: int, name: str, labels: set[int], tumours: list[Tumour], max_tumours: int) -> SegmentGroup:
    diam = np.zeros((max_tumours, 3), np.float32)
    rows = [full_diameters(t.diameters_mm) for t in tumours for _ in range(t.count)]
    diam[: len(rows)] = rows
    volumes = (math.pi / 6.0 * diam.astype(np.float64).prod(axis=1)).astype(np.float32)
    return SegmentGroup(lesion_index, name, tuple(sorted(labels)), diam, volumes, len(rows))


def report_targets(
    facts: ReportFacts | None,
    organs: np.ndarray | None,
    label_map: LabelMap,
    classes: ClassList,
    max_tumours: int = DEFAULT_MAX_TUMOURS,
    max_diameter_mm: float = DEFAULT_MAX_DIAMETER_MM,
) -> ReportTargets:
    """Unknown regions, segment groups and exclusions of one report case.

    Args:
        facts: the report's facts (``None`` or no tumours: every lesion channel is a known negative).
        organs: uint8 ``(I, J, K)`` organ labels of ``label_map``, or ``None`` (then no region can be
            located: every lesion channel with a reported tumour is unknown everywhere, no groups).
        label_map: meaning of ``organs``.
        classes: the model's channels (lesion channels via :meth:`ClassList.lesion_index`).
        max_tumours: T, tumours a sample carries; more in one lesion channel excludes its organ.
        max_diameter_mm: largest plausible diameter; a larger one excludes the organ.

    Returns:
        The case's :class:`ReportTargets`.
    """
    out = ReportTargets()
    if facts is None or not facts.tumours:
        return out
    present = set() if organs is None else set(np.flatnonzero(np.bincount(organs.ravel())).tolist())
    by_channel: dict[int, list[Tumour]] = {}
    for t in facts.tumours:
        c = classes.lesion_index(t.organ)
        if c is None:
            out.reasons.append(f"{t.organ} tumour ignored: no lesion channel for {t.organ}")
            continue
        by_channel.setdefault(c, []).append(t)
    everywhere: set[int] = set()
    for c, tumours in by_channel.items():
        channel = classes.lesion_organs[c]
        unknown: set[int] = set()
        excluded: dict[str, str] = {}
        located: list[tuple[Tumour, tuple[int, ...]]] = []
        for t in tumours:
            organ_labels = _present(labels_for(t.organ, None, label_map), present)
            if not organ_labels:  # the tumour cannot be located: nothing in this channel is a sure negative
                everywhere.add(c)
                excluded.setdefault(t.organ, f"the case's organ mask has no {t.organ}")
                continue
            region = organ_labels
            if t.subsegment is not None:
                try:
                    values = labels_for(t.organ, t.subsegment, label_map)
                except KeyError:  # no mask of its own (kidney poles): the whole organ holds the tumour
                    values = list(organ_labels)
                # A sub-segment missing from this case's mask cannot bound the tumour: use the whole organ.
                region = tuple(values) if set(values) <= present else organ_labels
            located.append((t, region))
            unknown.update(region)
            problem = _size_problem(t, max_diameter_mm)
            if problem is not None and t.organ not in excluded:
                excluded[t.organ] = problem
                unknown.update(organ_labels)
        total = sum(t.count for t in tumours)
        if total > max_tumours:
            excluded[channel] = f"{total} tumours, more than the {max_tumours} a sample carries"
            unknown.update(_present(labels_for(channel, None, label_map), present))
        for organ, why in excluded.items():
            out.reasons.append(f"{organ} excluded from report supervision: {why}")
        out.unknown_labels[c] = tuple(sorted(unknown))
        if excluded:
            out.excluded[c] = tuple(excluded)
        if channel in excluded:
            continue
        blocked = {v for organ in excluded for v in labels_for(organ, None, label_map)}
        components = _union_find([region for _, region in located])
        for comp in dict.fromkeys(components):
            members = [t for (t, _), k in zip(located, components) if k == comp]
            labels = {v for (_, region), k in zip(located, components) if k == comp for v in region}
            if not labels & blocked:
                out.groups.append(_group(c, _group_name(members), labels, members, max_tumours))
    out.unknown_everywhere = frozenset(everywhere)
    return out


def _group_name(members: list[Tumour]) -> str:
    """``"pancreas head/body"``, ``"kidney_left"``, ``"liver segment_2 + liver"`` ..."""
    parts = dict.fromkeys(f"{t.organ} {t.subsegment}" if t.subsegment else t.organ for t in members)
    return " + ".join(parts)

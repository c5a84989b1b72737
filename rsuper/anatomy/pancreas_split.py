"""Split a whole-pancreas mask into head, body and tail along the organ's own centre line.

For masks from a model that segments only "pancreas" (e.g. TotalSegmentator).
Everything is computed in world millimetres (the affine), so the result does
not depend on voxel size or array orientation. Steps:

1. **Ends.** On the largest 26-connected piece of the pancreas, geodesic
   (inside-the-organ) distances are computed with Dijkstra on the voxel
   neighbour graph (edge length = world distance between voxel centres). A
   double sweep (farthest voxel from the centre, then farthest from that)
   gives the organ's two tips, which follow its curve.
2. **Orientation.** The head is the tip nearer the duodenum and farther from
   the spleen when those labels are present, else the tip at the patient's
   right (greater RAS x). A disagreement between the two is reported.
3. **Centre line.** The piece is cut into slabs of ``slab_mm`` of geodesic
   distance from the head tip; the slab centroids, ordered head -> tail and
   framed by the two tips, form the centre line.
4. **Split.** Arc-length fractions along the centre line give the parts:
   head the first ``fractions[0]``, body the next ``fractions[1]``, tail the
   rest. Every pancreas voxel (small islands included) takes the part of its
   nearest centre-line point, so the cuts are roughly perpendicular to the organ.

Default fractions (0.40, 0.27, tail 0.33) of the tip-to-tip length: the
usual "thirds" split, with the head share raised because the head is the
thickest part and its rounded end adds length before its centre. Calibrated
on the synthetic phantoms (whose parts are cut at 34 % / 67 % of a drawing
polyline that stops short of the rounded ends): over 10 phantoms, in RAS
and LPS arrays alike, every part reaches a Dice of 0.92 or more at the
default 1.5 x 1.5 x 2.5 mm and 0.87 or more at 3 x 3 x 5 mm; see
``docs/organ-masks.md`` (section "Pancreas sub-segments").

A pancreas shorter than :data:`MIN_LENGTH_MM` from tip to tip is left whole
(reported): such a small piece is most likely a partial segmentation, and
calling it "head" would be a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, LabelMap

#: Arc-length fractions of the head and the body (the tail gets the rest).
DEFAULT_FRACTIONS = (0.40, 0.27)
#: Centre-line sampling: slab thickness along the geodesic distance, mm.
DEFAULT_SLAB_MM = 3.0
#: Shorter pancreases (tip to tip, mm) are not split.
MIN_LENGTH_MM = 20.0
_PARTS = ("pancreas_head", "pancreas_body", "pancreas_tail")


@dataclass
class PancreasSplit:
    """Result of :func:`split_pancreas`.

    Attributes:
        labels: ``(I, J, K)`` labels (a copy) with the whole-pancreas voxels
            relabelled head / body / tail.
        centreline_mm: ``(n, 3)`` world RAS+ mm, ordered head tip -> tail tip
            (empty when nothing was split).
        messages: what was done or why not.
    """

    labels: np.ndarray
    centreline_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    messages: list[str] = field(default_factory=list)


def split_pancreas(
    labels: np.ndarray,
    affine: np.ndarray,
    label_map: LabelMap = RSUPER_IMPORT_LABELS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    slab_mm: float = DEFAULT_SLAB_MM,
) -> PancreasSplit:
    """Relabel the whole-pancreas voxels into head, body and tail.

    Args:
        labels: integer ``(I, J, K)`` labels of ``label_map``.
        affine: ``(4, 4)`` voxel -> world RAS+ mm.
        label_map: must name ``pancreas`` (the whole organ) and
            ``pancreas_head`` / ``_body`` / ``_tail``; ``duodenum`` and
            ``spleen`` are used when present.
        fractions: ``(head, body)`` shares of the centre-line length, both
            > 0 with a sum < 1.
        slab_mm: centre-line sampling step along the organ, mm.

    Returns:
        :class:`PancreasSplit`; an empty or too short pancreas comes back unchanged with a message.

    Raises:
        ValueError: bad fractions, or a label map without the needed names.
    """
    head_share, body_share = (float(f) for f in fractions)
    if head_share <= 0 or body_share <= 0 or head_share + body_share >= 1:
        raise ValueError(f"fractions (head, body) must be > 0 with a sum < 1, got {tuple(fractions)}")
    names = set(label_map.labels.values())
    missing = [n for n in ("pancreas", *_PARTS) if n not in names]
    if missing:
        raise ValueError(f"label map {label_map.name!r} has no label {', '.join(missing)}")
    whole = label_map.label_of("pancreas")
    parts = np.array([label_map.label_of(n) for n in _PARTS], dtype=labels.dtype)
    result = PancreasSplit(np.array(labels, copy=True))
    voxels = np.argwhere(labels == whole)
    if not len(voxels):
        result.messages.append("no whole-pancreas voxels: nothing to split")
        return result
    if np.isin(labels, parts).any():
        result.messages.append("head/body/tail labels already present; only the whole-pancreas voxels are split")

    index, distances, tips = _geodesic_tips(labels == whole, affine)
    if len(index) < 0.95 * len(voxels):
        result.messages.append(f"pancreas mask in pieces: the centre line follows the largest "
                               f"({100 * len(index) / len(voxels):.0f} % of the voxels); check the split")
    world = _world(index, affine)
    tip_a, tip_b = world[tips[0]], world[tips[1]]
    head, tail, note = _orient(tip_a, tip_b, labels, affine, label_map)
    if note:
        result.messages.append(note)
    from_head = distances[0] if head is tip_a else distances[1]
    centreline = _centreline(world, from_head, head, tail, slab_mm)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centreline, axis=0), axis=1))])
    length = float(arc[-1])
    if length < MIN_LENGTH_MM:
        result.messages.append(f"pancreas only {length:.0f} mm long (< {MIN_LENGTH_MM:.0f} mm): left whole")
        return result

    cuts = np.array([head_share, head_share + body_share]) * length
    point_part = np.digitize(arc, cuts)
    _, nearest = cKDTree(centreline).query(_world(voxels, affine))
    result.labels[tuple(voxels.T)] = parts[point_part[nearest]]
    result.centreline_mm = centreline
    result.messages.append(
        f"pancreas split along a {length:.0f} mm centre line: head 0-{cuts[0]:.0f} mm, "
        f"body {cuts[0]:.0f}-{cuts[1]:.0f} mm, tail {cuts[1]:.0f}-{length:.0f} mm"
    )
    return result


def _world(index: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World RAS+ mm ``(n, 3)`` of voxel indices ``(n, 3)``."""
    return np.asarray(index, float) @ affine[:3, :3].T + affine[:3, 3]


def _geodesic_tips(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The largest 26-connected piece of ``mask`` and geodesic distances from its two tips.

    Returns:
        ``index`` ``(n, 3)`` voxel indices of the piece (sorted by world
        position, so ties break the same way in every array orientation),
        ``distances`` ``(2, n)`` mm from each tip, and the tips' rows in ``index``.
    """
    components, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    index = np.argwhere(components == int(sizes.argmax()))
    world = np.round(_world(index, affine), 3)
    order = np.lexsort(world.T[::-1])
    index, world = index[order], world[order]
    graph = _neighbour_graph(index, affine)
    start = int(np.argmin(((world - world.mean(0)) ** 2).sum(1)))
    first = _first_max(dijkstra(graph, directed=False, indices=start))
    from_first = dijkstra(graph, directed=False, indices=first)
    second = _first_max(from_first)
    from_second = dijkstra(graph, directed=False, indices=second)
    return index, np.stack([from_first, from_second]), (first, second)


def _first_max(values: np.ndarray) -> int:
    """Row of the largest value, rounded to 1 µm so float noise cannot change the pick."""
    return int(np.argmax(np.round(values, 3)))


def _neighbour_graph(index: np.ndarray, affine: np.ndarray) -> coo_matrix:
    """Sparse ``(n, n)`` graph linking 26-neighbour voxels, weighted by their world distance in mm.

    Built on a lookup volume over the voxels' bounding box (not the whole
    image). scipy has no voxel-graph builder, hence these few lines.
    """
    low = index.min(0) - 1
    local = index - low
    lookup = np.full(local.max(0) + 2, -1, np.int64)
    lookup[tuple(local.T)] = np.arange(len(index))
    rows, cols, weights = [], [], []
    for offset in np.argwhere(np.ones((3, 3, 3), bool)) - 1:
        if tuple(offset) <= (0, 0, 0):  # each undirected edge once
            continue
        other = lookup[tuple((local + offset).T)]
        linked = np.nonzero(other >= 0)[0]
        rows.append(linked)
        cols.append(other[linked])
        weights.append(np.full(len(linked), np.linalg.norm(affine[:3, :3] @ offset)))
    n = len(index)
    return coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()


def _orient(
    tip_a: np.ndarray, tip_b: np.ndarray, labels: np.ndarray, affine: np.ndarray, label_map: LabelMap,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(head tip, tail tip, note)``: head by duodenum/spleen proximity when available, else patient right."""
    by_x = (tip_a, tip_b) if tip_a[0] >= tip_b[0] else (tip_b, tip_a)
    score = np.zeros(2)  # lower = more head-like
    used = []
    for name, sign in (("duodenum", 1.0), ("spleen", -1.0)):
        if name not in label_map.labels.values():
            continue
        organ = np.argwhere(labels == label_map.label_of(name))
        if len(organ):
            tree = cKDTree(_world(organ, affine))
            score += sign * tree.query(np.stack([tip_a, tip_b]))[0]
            used.append(name)
    if not used or score[0] == score[1]:
        return *by_x, ""
    by_organs = (tip_a, tip_b) if score[0] < score[1] else (tip_b, tip_a)
    if by_organs[0] is by_x[0]:
        return *by_organs, ""
    return *by_organs, (f"pancreas head placed by the {' and '.join(used)} at x = {by_organs[0][0]:.0f} mm, "
                        f"left of the tail (x = {by_organs[1][0]:.0f} mm): check the mask's sides")


def _centreline(
    world: np.ndarray, from_head: np.ndarray, head: np.ndarray, tail: np.ndarray, slab_mm: float,
) -> np.ndarray:
    """``(n, 3)`` mm: head tip, centroids of geodesic-distance slabs (head -> tail), tail tip."""
    length = float(from_head.max())
    n_slabs = max(int(np.ceil(length / slab_mm)), 1)
    slab = np.minimum((from_head / max(length, 1e-9) * n_slabs).astype(int), n_slabs - 1)
    count = np.bincount(slab, minlength=n_slabs)
    sums = np.stack([np.bincount(slab, world[:, k], n_slabs) for k in range(3)], axis=1)
    centroids = sums[count > 0] / count[count > 0, None]
    return np.vstack([head, centroids, tail])

"""Drawing tools of the synthetic CT phantom: a label/HU canvas and smooth shapes.

Shapes are written in *reference millimetres*: patient RAS+ coordinates
(+x toward the patient's right, +y anterior, +z superior) of a reference field
of view :data:`REF_FOV_MM` centred on the origin. A canvas of another field of
view scales them per axis, so one seed gives the same anatomy at any voxel
spacing. Shape outlines are deformed by smooth random fields defined in the
same millimetre space (Gaussian radial basis functions on a coarse grid,
evaluated separably), so they do not depend on the voxel grid either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Field of view (mm) for which the anatomy is drawn: x (R-L), y (A-P), z (S-I).
REF_FOV_MM = np.array([192.0, 168.0, 240.0])

Box = tuple[slice, slice, slice]


def smooth_fields(
    rng: np.random.Generator, axes: Sequence[np.ndarray], n: int, step_mm: float
) -> np.ndarray:
    """``n`` smooth random fields of unit standard deviation on the grid ``axes``.

    Args:
        rng: random source.
        axes: voxel-centre coordinates (mm) along x, y and z.
        n: number of independent fields.
        step_mm: spacing of the random control values; the correlation length
            of the field is about this size.

    Returns:
        float32 array ``(n, X, Y, Z)``.
    """
    weights = []
    for a in axes:
        nodes = np.arange(a.min() - 2 * step_mm, a.max() + 2 * step_mm, step_mm)
        w = np.exp(-0.5 * ((a[:, None] - nodes[None, :]) / (0.6 * step_mm)) ** 2)
        weights.append((w / w.sum(axis=1, keepdims=True)).astype(np.float32))
    coarse = rng.standard_normal((n, *(w.shape[1] for w in weights))).astype(np.float32)
    out = np.einsum("nabc,ia,jb,kc->nijk", coarse, *weights, optimize=True)
    out -= out.mean(axis=(1, 2, 3), keepdims=True)
    out /= out.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    return out.astype(np.float32)


@dataclass
class Canvas:
    """Label and HU volumes being drawn, with their reference coordinates.

    Attributes:
        axes: reference-mm coordinates of the voxel centres along x, y, z.
        labels: int16 ``(X, Y, Z)`` organ label map.
        hu: float32 ``(X, Y, Z)`` attenuation in HU.
        shape_noise: float32 ``(n, X, Y, Z)`` low-frequency fields (~25 mm) that
            deform outlines.
        texture: float32 ``(n, X, Y, Z)`` mid-frequency fields (~7 mm) for tissue
            texture and bowel loops.
        cavity: bool ``(X, Y, Z)``, inside the abdominal wall; organs are
            clipped to it (set once the body is drawn).
    """

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    labels: np.ndarray
    hu: np.ndarray
    shape_noise: np.ndarray
    texture: np.ndarray
    cavity: np.ndarray | None = None

    @classmethod
    def create(cls, shape: Sequence[int], spacing_mm: Sequence[float], rng: np.random.Generator) -> "Canvas":
        """Empty canvas (air) of ``shape`` voxels; fields drawn from ``rng``."""
        fov = np.asarray(shape, float) * np.asarray(spacing_mm, float)
        scale = REF_FOV_MM / fov
        axes = tuple(
            ((np.arange(n) - (n - 1) / 2.0) * s * k).astype(np.float32)
            for n, s, k in zip(shape, spacing_mm, scale)
        )
        return cls(
            axes=axes,
            labels=np.zeros(shape, np.int16),
            hu=np.full(shape, -1000.0, np.float32),
            shape_noise=smooth_fields(rng, axes, 4, 25.0),
            texture=smooth_fields(rng, axes, 3, 7.0),
        )

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> Box | None:
        """Voxel slices covering the reference-mm box ``[lo, hi]`` (None if outside)."""
        out = []
        for a, low, high in zip(self.axes, lo, hi):
            i0, i1 = np.searchsorted(a, low), np.searchsorted(a, high, side="right")
            if i1 <= i0:
                return None
            out.append(slice(int(i0), int(i1)))
        return tuple(out)  # type: ignore[return-value]

    def grid(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-grid reference coordinates of ``box`` (broadcastable to its shape)."""
        x, y, z = (a[s] for a, s in zip(self.axes, box))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def paint(
        self,
        box: Box,
        mask: np.ndarray,
        label: int,
        hu: float | np.ndarray,
        only: Sequence[int] | None = None,
        clip_to_cavity: bool = True,
    ) -> np.ndarray:
        """Write ``label`` and ``hu`` where ``mask`` holds inside ``box``.

        ``only`` restricts writing to voxels currently holding one of those
        labels. Returns the mask actually written (shape of the box).
        """
        m = mask.copy()
        if clip_to_cavity and self.cavity is not None:
            m &= self.cavity[box]
        if only is not None:
            m &= np.isin(self.labels[box], only)
        self.labels[box][m] = label
        hu_arr = np.broadcast_to(np.asarray(hu, np.float32), m.shape)
        self.hu[box][m] = hu_arr[m]
        return m

    # ---------------------------------------------------------------- shapes
    def ellipsoid(
        self,
        centre: Sequence[float],
        radii: Sequence[float],
        rotation: np.ndarray | None = None,
        amp: float = 0.1,
        field: int = 0,
    ) -> tuple[Box, np.ndarray] | None:
        """Normalised radius of a deformed ellipsoid (``< 1`` is inside).

        Args:
            centre, radii: reference mm.
            rotation: 3x3 matrix whose columns are the ellipsoid's axes.
            amp: outline deformation (fraction of the radius) by shape field ``field``.

        Returns:
            ``(box, f)`` with ``f`` float32 over the box, or ``None`` off canvas.
        """
        c = np.asarray(centre, np.float32)
        reach = max(radii) * (1.0 + 3.0 * amp)
        box = self.box(c - reach, c + reach)
        if box is None:
            return None
        x, y, z = self.grid(box)
        d = (x - c[0], y - c[1], z - c[2])
        if rotation is None:  # open grids: the sum broadcasts once
            f = (d[0] / radii[0]) ** 2 + (d[1] / radii[1]) ** 2 + (d[2] / radii[2]) ** 2
        else:
            rot = np.asarray(rotation, np.float32)
            f = sum(
                ((d[0] * rot[0, k] + d[1] * rot[1, k] + d[2] * rot[2, k]) / radii[k]) ** 2
                for k in range(3)
            )
        f = np.sqrt(f, dtype=np.float32)
        return box, f + amp * self.shape_noise[field][box]

    def tube(
        self,
        points: Sequence[Sequence[float]],
        radii: Sequence[float],
        amp: float = 0.08,
        field: int = 1,
    ) -> tuple[Box, np.ndarray, np.ndarray] | None:
        """Normalised distance to a polyline tube with linearly varying radius.

        Args:
            points: ``(n, 3)`` centre-line vertices, reference mm.
            radii: ``(n,)`` tube radius at each vertex, reference mm.

        Returns:
            ``(box, f, t)`` over the tube's box: ``f < 1`` inside; ``t`` in
            [0, 1] is the arc-length position of the nearest centre-line point.
        """
        p = np.asarray(points, np.float32)
        r = np.asarray(radii, np.float32)
        margin = float(r.max()) * (1.0 + 3.0 * amp)
        box = self.box(p.min(0) - margin, p.max(0) + margin)
        if box is None:
            return None
        seg_len = np.linalg.norm(np.diff(p, axis=0), axis=1)
        start = np.concatenate([[0.0], np.cumsum(seg_len)])
        total = float(start[-1])
        shape = tuple(s.stop - s.start for s in box)
        f = np.full(shape, np.inf, np.float32)
        t = np.zeros(shape, np.float32)
        for i in range(len(p) - 1):
            lo = np.minimum(p[i], p[i + 1]) - margin
            hi = np.maximum(p[i], p[i + 1]) + margin
            sub = self.box(lo, hi)
            if sub is None:
                continue
            local = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, box))
            x, y, z = self.grid(sub)
            d = p[i + 1] - p[i]
            q = (x - p[i][0], y - p[i][1], z - p[i][2])
            u = np.clip((q[0] * d[0] + q[1] * d[1] + q[2] * d[2]) / float(d @ d), 0.0, 1.0)
            dist = np.sqrt((q[0] - u * d[0]) ** 2 + (q[1] - u * d[1]) ** 2 + (q[2] - u * d[2]) ** 2)
            fn = dist / (r[i] + u * (r[i + 1] - r[i]))
            better = fn < f[local]
            f[local] = np.where(better, fn, f[local])
            t[local] = np.where(better, (start[i] + u * seg_len[i]) / total, t[local])
        return box, f + amp * self.shape_noise[field][box], t

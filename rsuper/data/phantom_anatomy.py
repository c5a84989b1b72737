"""Abdominal anatomy of the synthetic CT phantom (portal-venous phase look).

:func:`draw_anatomy` paints the body, bones and organs onto a
:class:`~rsuper.data.phantom_canvas.Canvas`, labelled with
:data:`rsuper.anatomy.labels.RSUPER_ORGAN_LABELS`. Coordinates are reference
millimetres, patient RAS+ (+x = patient's right, +y = anterior, +z = superior):
the liver and IVC lie at +x, the spleen, stomach and pancreatic tail at -x.

Attenuation (HU) before noise and smoothing, see :data:`HU`. The kidneys are
drawn in the nephrographic/portal-venous phase (homogeneous ~150 HU
parenchyma); vessels are contrast-filled (~170-180 HU).

Every organ's centre moves by up to ±10 % of its radii and its radii scale by
0.9-1.1 per seed; outlines are deformed by smooth noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM

from .phantom_canvas import Canvas

#: Mean attenuation of each tissue in HU (before texture, smoothing and noise).
HU: dict[str, float] = {
    "air": -1000.0, "fat": -100.0, "visceral_fat": -90.0, "muscle": 50.0,
    "cortical_bone": 700.0, "cancellous_bone": 250.0, "disc": 80.0, "csf": 15.0,
    "lung": -850.0, "heart": 45.0, "liver": 60.0, "spleen": 50.0, "kidney": 150.0,
    "renal_sinus": -60.0, "pancreas": 45.0, "artery": 180.0, "vein": 170.0,
    "gallbladder": 10.0, "adrenal": 30.0, "bowel_wall": 40.0, "fluid": 15.0,
    "stool": -150.0, "bladder": 10.0, "prostate": 40.0,
}

#: Pancreas arc-length fractions (head -> tail) where head ends and tail begins.
PANCREAS_SPLIT = (0.34, 0.67)


def _rot(rng: np.random.Generator, degrees: tuple[float, float, float]) -> np.ndarray:
    """Rotation about x, y, z by the given angles (plus ±5 degrees of jitter)."""
    angles = np.asarray(degrees) + rng.uniform(-5.0, 5.0, 3)
    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix()


class _Drawer:
    """Draws one phantom's anatomy; ``rng`` gives the per-seed variation."""

    def __init__(self, canvas: Canvas, rng: np.random.Generator) -> None:
        self.cv = canvas
        self.rng = rng
        self.tex = canvas.texture

    def jitter(self, centre: Sequence[float], radii: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Centre moved by up to 10 % of the radii; radii scaled by 0.9-1.1."""
        r = np.asarray(radii, float)
        c = np.asarray(centre, float) + self.rng.uniform(-0.1, 0.1, 3) * r
        return c, r * self.rng.uniform(0.9, 1.1, 3)

    def shift(
        self, points: Sequence[Sequence[float]], radii: Sequence[float], frac: float = 0.1
    ) -> tuple[np.ndarray, np.ndarray]:
        """A polyline moved as a whole by up to ``frac`` of its mean radius x 3."""
        p = np.asarray(points, float)
        s = self.rng.uniform(-1.0, 1.0, 3) * frac * 3.0 * float(np.mean(radii))
        return p + s, np.asarray(radii, float) * self.rng.uniform(0.9, 1.1)

    def organ(
        self, name: str, centre: Sequence[float], radii: Sequence[float], rot: np.ndarray | None = None,
        amp: float = 0.1, field: int = 0, hu: float | None = None, tex: float = 4.0,
    ) -> np.ndarray:
        """Paint one jittered ellipsoidal organ with label ``name``; returns its centre."""
        c, r = self.jitter(centre, radii)
        got = self.cv.ellipsoid(c, r, rot, amp, field)
        if got is not None:
            box, f = got
            value = HU[name] if hu is None else hu
            self.cv.paint(box, f < 1.0, LM.label_of(name), value + tex * self.tex[0][box])
        return c

    # ------------------------------------------------------------- body, bones
    def body(self) -> None:
        cv, rng = self.cv, self.rng
        ax, ay = 86.0 * rng.uniform(0.93, 1.0), 70.0 * rng.uniform(0.93, 1.0)
        fat_t = rng.uniform(7.0, 14.0)
        outer = cv.ellipsoid((0, 0, 0), (ax, ay, 1e6), amp=0.02, field=3)
        box, f = outer
        cv.paint(box, f < 1.0, 0, HU["fat"] + 5.0 * self.tex[1][box])
        wall = cv.ellipsoid((0, -4, 0), (ax - fat_t, ay - fat_t, 1e6), amp=0.02, field=3)
        cv.paint(wall[0], wall[1] < 1.0, 0, HU["muscle"] + 5.0 * self.tex[1][wall[0]])
        inner = cv.ellipsoid((0, -4, 0), (ax - fat_t - 6.0, ay - fat_t - 6.0, 1e6), amp=0.02, field=3)
        cv.paint(inner[0], inner[1] < 1.0, 0, HU["visceral_fat"] + 5.0 * self.tex[1][inner[0]])
        cv.cavity = np.zeros(cv.labels.shape, bool)
        cv.cavity[inner[0]] = inner[1] < 1.0
        for side in (-1.0, 1.0):  # paraspinal muscles, in the posterior wall
            got = cv.ellipsoid((22.0 * side, -50.0, 0), (17.0, 15.0, 1e6), amp=0.04, field=2)
            cv.paint(got[0], got[1] < 1.0, 0, HU["muscle"] + 5.0 * self.tex[1][got[0]], clip_to_cavity=False)

    def skeleton(self) -> None:
        cv = self.cv
        spine = cv.ellipsoid((0, -38, -5), (17, 14, 115), amp=0.01, field=2)
        box, f = spine
        z = cv.grid(box)[2]
        disc = (np.mod(z + 200.0, 30.0) < 7.0) & (f < 0.9)
        cv.paint(box, f < 1.0, 0, HU["cortical_bone"])
        cv.paint(box, f < 0.8, 0, HU["cancellous_bone"] + 30.0 * self.tex[2][box])
        cv.paint(box, np.broadcast_to(disc, f.shape), 0, HU["disc"])
        arch = cv.ellipsoid((0, -60, -5), (13, 10, 115), amp=0.01, field=2)
        cv.paint(arch[0], arch[1] < 1.0, 0, 600.0, clip_to_cavity=False)
        canal = cv.ellipsoid((0, -57, -5), (6, 5, 115), amp=0.0, field=2)
        cv.paint(canal[0], canal[1] < 1.0, 0, HU["csf"], clip_to_cavity=False)
        for side in (-1.0, 1.0):
            psoas = cv.tube([(28 * side, -32, 40), (32 * side, -28, -40), (45 * side, -10, -110)], [6, 13, 14])
            cv.paint(psoas[0], psoas[1] < 1.0, 0, HU["muscle"] + 5.0 * self.tex[1][psoas[0]])
            ilium = cv.ellipsoid((52 * side, -30, -72), (28, 7, 30), _rot(self.rng, (0, 0, -40 * side)), 0.03)
            cv.paint(ilium[0], ilium[1] < 1.0, 0, HU["cortical_bone"] - 200.0, clip_to_cavity=False)
        sacrum = cv.ellipsoid((0, -50, -95), (26, 12, 30), _rot(self.rng, (25, 0, 0)), 0.03)
        cv.paint(sacrum[0], sacrum[1] < 1.0, 0, HU["cortical_bone"] - 250.0, clip_to_cavity=False)
        for side, name in ((-1.0, "femur_left"), (1.0, "femur_right")):
            c, r = self.jitter((62 * side, -8, -108), (16, 16, 16))
            neck = cv.tube([c, (c[0] + 18 * side, c[1] + 4, c[2] - 25)], [10, 12], amp=0.03)
            head = cv.ellipsoid(c, r, amp=0.03)
            for box, f in (neck[:2], head):
                cv.paint(box, f < 1.0, LM.label_of(name), HU["cortical_bone"], clip_to_cavity=False)
                cv.paint(box, f < 0.75, LM.label_of(name), HU["cancellous_bone"], clip_to_cavity=False)

    # ------------------------------------------------------------------ thorax
    def thorax(self) -> None:
        for side, name in ((1.0, "lung_right"), (-1.0, "lung_left")):
            self.organ(name, (44 * side, -8, 150), (42, 52, 60), amp=0.05, hu=HU["lung"], tex=20.0)
        c, r = self.jitter((-12, 32, 142), (40, 30, 34))
        heart = self.cv.ellipsoid(c, r, amp=0.05)
        self.cv.paint(heart[0], heart[1] < 1.0, 0, HU["heart"])

    # --------------------------------------------------------------- abdomen
    def bowel(self) -> None:
        cv, t = self.cv, self.tex
        c, r = self.jitter((0, 18, -38), (50, 38, 48))
        box, f = cv.ellipsoid(c, r, amp=0.15, field=1)
        loops = (f < 1.0) & (t[2][box] > -0.35)
        hu = np.where(t[0][box] > 1.3, -800.0, HU["fluid"] + 25.0 * (t[1][box] > 0))
        cv.paint(box, loops, LM.label_of("intestine"), hu)
        pts, rad = self.shift(
            [(55, 8, -45), (58, 0, 5), (52, 18, 30), (20, 45, 18), (-20, 45, 20), (-52, 12, 45),
             (-60, -4, 0), (-55, 0, -50), (-30, 20, -75), (0, 5, -88), (0, -28, -96)],
            [14, 13, 12, 12, 12, 12, 11, 11, 10, 10, 10],
        )
        colon = cv.tube(pts, rad, amp=0.08, field=2)
        box, f, _ = colon
        lumen = np.where(t[1][box] > 0.2, -850.0, HU["stool"] + 60.0 * t[2][box])
        cv.paint(box, f < 1.0, LM.label_of("colon"), np.where(f < 0.75, lumen, HU["bowel_wall"]))
        rect = cv.tube([pts[-1], (0, -34, -112), (0, -36, -130)], [10, 11, 11], amp=0.05, field=2)
        box, f, _ = rect
        cv.paint(box, f < 1.0, LM.label_of("rectum"), np.where(f < 0.7, HU["stool"], HU["bowel_wall"]))
        self.organ("bladder", (0, 28, -98), (26, 20, 18), amp=0.05, tex=2.0)
        self.organ("prostate", (0, 8, -122), (13, 11, 10), amp=0.05)

    def stomach(self) -> None:
        cv = self.cv
        pts, rad = self.shift([(-30, 8, 86), (-36, 22, 62), (-8, 36, 40), (12, 34, 32)], [18, 22, 15, 8])
        box, f, _ = cv.tube([(-4, 4, 122), (-14, 6, 100), pts[0]], [6, 6, 7], amp=0.03, field=2)
        cv.paint(box, f < 1.0, LM.label_of("esophagus"), np.where(f < 0.4, -900.0, HU["bowel_wall"]))
        box, f, _ = cv.tube(pts, rad, amp=0.06, field=2)
        y = cv.grid(box)[1]
        lumen = np.where(y > pts[1][1] + 6.0, -900.0, HU["fluid"])
        cv.paint(box, f < 1.0, LM.label_of("stomach"), np.where(f < 0.8, lumen, HU["bowel_wall"] + 5.0))
        pylorus = pts[-1]
        duo_pts = [pylorus, (30, 22, 30), (44, 6, 20), (44, 6, -4), (20, 0, -14), (-12, 0, -14), (-24, 6, 4)]
        box, f, _ = cv.tube(duo_pts, [8] * len(duo_pts), amp=0.06, field=3)
        cv.paint(box, f < 1.0, LM.label_of("duodenum"), np.where(f < 0.65, HU["fluid"] + 5.0, HU["bowel_wall"]))

    def liver(self) -> None:
        cv = self.cv
        c, r = self.jitter((40, 4, 56), (46, 48, 40))
        c2, r2 = self.jitter((-8, 24, 64), (36, 22, 22))
        right = cv.ellipsoid(c, r, amp=0.08, field=0)
        left = cv.ellipsoid(c2, r2, _rot(self.rng, (0, 10, 0)), amp=0.08, field=0)
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(right[0], left[0]))
        f = np.full(tuple(s.stop - s.start for s in box), np.inf, np.float32)
        for b, g in (right, left):
            local = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(b, box))
            f[local] = np.minimum(f[local], g)
        x, y, z = cv.grid(box)
        portal_z = c[2] + self.rng.uniform(-4.0, 4.0)
        right_lobe = x > 20.0 - 0.12 * (y + 14.0)
        anterior = y > -14.0 + (x - 22.0) * 0.46
        medial = x > -8.0
        superior = z > portal_z
        seg = np.where(right_lobe, np.where(anterior, np.where(superior, 8, 5), np.where(superior, 7, 6)),
                       np.where(medial, 4, np.where(superior, 2, 3)))
        caudate = ((x - 8.0) / 12.0) ** 2 + ((y + 8.0) / 10.0) ** 2 + ((z - portal_z - 4.0) / 18.0) ** 2 < 1.0
        seg = np.where(caudate, 1, seg)
        hu = HU["liver"] + 4.0 * self.tex[0][box]
        inside = f < 1.0
        for k in range(1, 9):
            cv.paint(box, inside & (seg == k), LM.label_of(f"liver_segment_{k}"), hu)
        self.organ("gall_bladder", (24, 36, 26), (10, 12, 20), _rot(self.rng, (-25, 15, 0)), amp=0.05,
                   hu=HU["gallbladder"], tex=2.0)

    def retroperitoneum(self) -> None:
        cv = self.cv
        self.organ("spleen", (-52, -26, 56), (15, 30, 36), _rot(self.rng, (0, 0, -30)), amp=0.08)
        for side, name in ((-1.0, "kidney_left"), (1.0, "kidney_right")):
            zc = 12.0 if side < 0 else 3.0
            rot = _rot(self.rng, (15, 0, -20 * side))
            c = self.organ(name, (42 * side, -32, zc), (14, 12, 30), rot, amp=0.06, hu=HU["kidney"], tex=5.0)
            sinus = cv.ellipsoid(c + (-12.0 * side, 5.0, 0.0), (7, 6, 12), rot, amp=0.05)
            if sinus is not None:  # hilum: fat and collecting system, not kidney label
                cv.paint(sinus[0], sinus[1] < 1.0, 0, HU["renal_sinus"], only=[LM.label_of(name)])
        for side, name in ((-1.0, "adrenal_gland_left"), (1.0, "adrenal_gland_right")):
            rot = _rot(self.rng, (0, 0, -30 * side))
            self.organ(name, (29 * side, -20, 50), (3.5, 10, 13), rot, amp=0.05, hu=HU["adrenal"])

    def pancreas_and_vessels(self) -> None:
        cv, rng = self.cv, self.rng
        pts, rad = self.shift(
            [(26, 6, 4), (20, 10, 14), (6, 18, 22), (-12, 14, 27), (-30, 4, 33), (-46, -10, 38)],
            [13, 13, 10, 9, 9, 7],
        )
        ven = [p + (0.0, -r - 3.0, 0.0) for p, r in zip(pts[2:], rad[2:])]
        splenic = cv.tube(ven, [4.0] * len(ven), amp=0.02, field=3)
        portal = cv.tube([ven[0], (22, 6, 38), (34, 6, 48)], [6, 6, 5], amp=0.02, field=3)
        for box, f, _ in (splenic, portal):
            cv.paint(box, f < 1.0, LM.label_of("portal_vein_and_splenic_vein"), HU["vein"])
        liver = [LM.label_of(f"liver_segment_{k}") for k in range(1, 9)]
        hv = LM.label_of("hepatic_vessel")
        for end in ((70, 8, 62), (22, 34, 48), (-30, 22, 68), (60, 0, 50), (-12, 20, 58)):
            got = cv.tube([(20, -12, 86), end], [4.0, 2.0], amp=0.0)
            cv.paint(got[0], got[1] < 1.0, hv, HU["vein"], only=liver)
        sma = cv.tube([(-6, -4, 36), (-6, 8, 20), (-4, 10, -20)], [3.5, 3.5, 3.0], amp=0.0)
        cv.paint(sma[0], sma[1] < 1.0, 0, HU["artery"])
        box, f, t = cv.tube(pts, rad, amp=0.1, field=1)
        split = np.asarray(PANCREAS_SPLIT) + rng.uniform(-0.03, 0.03, 2)
        part = np.digitize(t, split)
        hu = HU["pancreas"] + 5.0 * self.tex[1][box]
        for k, name in enumerate(("pancreas_head", "pancreas_body", "pancreas_tail")):
            cv.paint(box, (f < 1.0) & (part == k), LM.label_of(name), hu)
        aorta = cv.tube([(-6, -14, 125), (-6, -14, -40)], [10, 9], amp=0.01, field=3)
        ivc = cv.tube([(20, -14, 100), (20, -14, 30), (18, -16, -45)], [10, 9, 9], amp=0.01, field=3)
        cv.paint(aorta[0], aorta[1] < 1.0, LM.label_of("aorta"), HU["artery"], clip_to_cavity=False)
        cv.paint(ivc[0], ivc[1] < 1.0, LM.label_of("postcava"), HU["vein"], clip_to_cavity=False)
        for end in ((30, -15, -115), (-40, -15, -115)):
            iliac = cv.tube([(-6, -14, -40), end], [7, 6], amp=0.0)
            cv.paint(iliac[0], iliac[1] < 1.0, 0, HU["artery"])
        celiac = cv.tube([(-6, -6, 46), (-6, 12, 48)], [3.5, 3.0], amp=0.0)
        cv.paint(celiac[0], celiac[1] < 1.0, LM.label_of("celiac_trunk"), HU["artery"])


def draw_anatomy(canvas: Canvas, rng: np.random.Generator) -> None:
    """Paint the whole abdomen onto ``canvas`` (later structures overwrite earlier)."""
    d = _Drawer(canvas, rng)
    d.body()
    d.skeleton()
    d.thorax()
    d.bowel()
    d.stomach()
    d.liver()
    d.retroperitoneum()
    d.pancreas_and_vessels()

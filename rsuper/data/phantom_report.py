"""Radiology report text (and its facts truth) for a synthetic CT phantom.

:func:`write_report` phrases each tumour in one FINDINGS sentence (size,
attenuation, location, impression of malignancy) and repeats it in the
IMPRESSION; organs without tumour may get a "normal" sentence. Wording is
drawn from several templates with the given random generator.

Sizes are the tumour's true diameters, largest first, 1-3 of them, rounded as
written: whole millimetres ("23 x 19 mm") or centimetres with one decimal
("2.3 x 1.9 cm"), which is the same precision. The facts hold exactly the
written values in mm, so a careful reader of the text recovers the facts.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from rsuper.report.schema import Evidence, ExtractorInfo, ReportFacts, Tumour

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")

_ADJECTIVES: dict[str, list[str]] = {
    "hypo": ["hypoattenuating", "hypodense", "low-attenuation", "hypoenhancing"],
    "hyper": ["hyperattenuating", "hyperdense", "hyperenhancing"],
    "cystic": ["cystic", "fluid-attenuation cystic", "simple-appearing cystic"],
}
_NOUNS: dict[str, list[str]] = {"hypo": ["mass", "lesion"], "hyper": ["mass", "lesion"], "cystic": ["lesion"]}
_MALIGNANCY: dict[str, list[str]] = {
    "malignant": ["consistent with malignancy", "compatible with a malignant neoplasm"],
    "suspicious": ["suspicious for malignancy", "concerning for neoplasm", "worrisome for malignancy"],
    "benign": ["likely benign", "most consistent with a benign lesion"],
    "indeterminate": ["indeterminate", "of indeterminate etiology"],
}
#: Malignancy impressions allowed for each attenuation (first is the default).
MALIGNANCY_BY_ATTENUATION: dict[str, tuple[str, ...]] = {
    "hypo": ("suspicious", "malignant", "indeterminate"),
    "hyper": ("indeterminate", "suspicious", "benign"),
    "cystic": ("benign", "indeterminate"),
}

_PANCREAS_PARTS = {"head": "head", "neck": "neck", "body": "body", "tail": "tail", "uncinate": "uncinate process"}
_ORGAN_PLACE: dict[str, str] = {
    "liver": "the liver", "pancreas": "the pancreas", "kidney_left": "the left kidney",
    "kidney_right": "the right kidney", "spleen": "the spleen", "gallbladder": "the gallbladder",
    "stomach": "the stomach", "duodenum": "the duodenum", "small_bowel": "the small bowel",
    "colon": "the colon", "esophagus": "the distal esophagus", "adrenal_left": "the left adrenal gland",
    "adrenal_right": "the right adrenal gland", "bladder": "the urinary bladder", "prostate": "the prostate",
    "lung_left": "the left lung base", "lung_right": "the right lung base", "bone": "the proximal femur",
}
_HEADERS: dict[str, str] = {
    "lung_left": "Lower chest", "lung_right": "Lower chest", "liver": "Liver", "gallbladder": "Gallbladder",
    "pancreas": "Pancreas", "spleen": "Spleen", "adrenal_left": "Adrenals", "adrenal_right": "Adrenals",
    "kidney_left": "Kidneys", "kidney_right": "Kidneys", "stomach": "Bowel", "duodenum": "Bowel",
    "small_bowel": "Bowel", "colon": "Bowel", "esophagus": "Bowel", "bladder": "Pelvis", "prostate": "Pelvis",
    "bone": "Bones",
}
_SINGLE_ORGAN_HEADERS = ("Liver", "Gallbladder", "Pancreas", "Spleen")
#: (organs a sentence calls normal, its wordings). A pair is only used when
#: none of its organs has a tumour.
_NORMAL: list[tuple[tuple[str, ...], list[str]]] = [
    (("lung_left", "lung_right"), ["The lung bases are clear.", "Clear lung bases."]),
    (("liver",), ["No focal hepatic lesion.", "The liver is normal in size without focal lesion.",
                  "The liver is unremarkable."]),
    (("gallbladder",), ["The gallbladder is unremarkable.", "Normal gallbladder."]),
    (("pancreas",), ["The pancreas is unremarkable.", "No pancreatic mass or ductal dilatation.",
                     "The pancreas is normal without focal lesion."]),
    (("spleen",), ["The spleen is unremarkable.", "Normal spleen.", "No splenic lesion."]),
    (("adrenal_left", "adrenal_right"), ["The adrenal glands are unremarkable.", "No adrenal nodule."]),
    (("kidney_left", "kidney_right"), ["The kidneys are unremarkable.", "No renal mass or hydronephrosis.",
                                       "Both kidneys enhance symmetrically without focal lesion."]),
    (("kidney_left",), ["The left kidney is unremarkable."]),
    (("kidney_right",), ["The right kidney is unremarkable."]),
    (("stomach",), ["The stomach is unremarkable."]),
    (("bladder",), ["The urinary bladder is unremarkable."]),
    (("bone",), ["No suspicious osseous lesion.", "The osseous structures are unremarkable."]),
]
#: Sentences about no organ of the vocabulary: (header, sentence).
_FILLERS = [("Vessels", "The abdominal aorta is normal in caliber."), ("Peritoneum", "No free fluid or free air."),
            ("Lymph nodes", "No lymphadenopathy."), ("Bowel", "No bowel obstruction.")]
_HISTORY = ["Abdominal pain.", "Weight loss.", "Elevated liver enzymes.", "Anemia.", "Nausea."]


class TumourLike(Protocol):
    """What the report needs to know about one tumour."""

    organ: str
    subsegment: str | None
    diameters_mm: Sequence[float]
    attenuation: str
    malignancy: str


def round_mm(d: float) -> int:
    """Diameter rounded to whole millimetres, halves up (as written in the report)."""
    return int(math.floor(d + 0.5))


def _article(next_word: str) -> str:
    head = next_word.split(".")[0].split()[0]
    if head.isdigit():
        return "an" if head.startswith("8") or head in ("11", "18") else "a"
    return "an" if next_word[0].lower() in "aeio" else "a"


class _Writer:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.unit = "cm" if rng.random() < 0.5 else "mm"

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def size(self, diameters: Sequence[float]) -> tuple[str, list[float]]:
        """Size text and the written diameters in mm (largest first)."""
        n = min(len(diameters), 1 + int(self.rng.choice(3, p=[0.25, 0.55, 0.2])))
        mm = [round_mm(d) for d in sorted(diameters, reverse=True)[:n]]
        unit = self.unit if self.rng.random() < 0.85 else ("mm" if self.unit == "cm" else "cm")
        if unit == "mm":
            return " x ".join(str(v) for v in mm) + " mm", [float(v) for v in mm]
        parts = [f"{v / 10:.1f}" for v in mm]
        if n > 1 and self.rng.random() < 0.15:
            return " x ".join(p + " cm" for p in parts), [float(v) for v in mm]
        return " x ".join(parts) + " cm", [float(v) for v in mm]

    def place(self, organ: str, sub: str | None, header: bool) -> str:
        """Location phrase, usable after "in"."""
        if organ == "pancreas" and sub is not None:
            part = _PANCREAS_PARTS[sub]
            if header:
                return f"the {part}"
            return self.pick([f"the pancreatic {part}", f"the {part} of the pancreas"])
        if organ == "liver" and sub is not None:
            k, roman = int(sub.split("_")[1]), _ROMAN[int(sub.split("_")[1]) - 1]
            if header:
                options = [f"segment {k}", f"segment {roman}"]
            else:
                options = [f"segment {k} of the liver", f"hepatic segment {k}", f"liver segment {roman}"]
            return self.pick(options + (["the caudate lobe"] if k == 1 else []))
        if header and _HEADERS[organ] in _SINGLE_ORGAN_HEADERS:
            return ""  # the header names the organ
        return _ORGAN_PLACE[organ]

    def tumour(
        self, t: TumourLike, size: str, written: Sequence[float], header: bool, impression: bool = False
    ) -> str:
        """One sentence describing tumour ``t`` with the size text ``size``."""
        adj, noun = self.pick(_ADJECTIVES[t.attenuation]), self.pick(_NOUNS[t.attenuation])
        if t.attenuation != "cystic" and max(written) < 15 and self.rng.random() < 0.4:
            noun = "nodule"
        mal = self.pick(_MALIGNANCY[t.malignancy])
        place = self.place(t.organ, t.subsegment, header)
        where = f" in {place}" if place else ""
        if header:
            text = f"{size} {adj} {noun}{where}, {mal}."
            return text[0].upper() + text[1:]
        templates = [
            f"{{A}} {size} {adj} {noun}{where}, {mal}.",
            f"There is {{a}} {size} {adj} {noun}{where}, {mal}.",
            f"There is {{a}} {adj} {noun}{where} measuring {size}, {mal}.",
            f"{{A}} {adj} {noun}{where} measures {size} and is {mal}.",
        ]
        k = int(self.rng.choice([0, 3])) if impression else int(self.rng.integers(len(templates)))
        art = _article(size if k < 2 else adj)
        return templates[k].format(A=art.capitalize(), a=art)


_KIDNEYS = {"kidney_left", "kidney_right"}


def write_report(
    case_id: str, tumours: Sequence[TumourLike], rng: np.random.Generator, extractor: str = "phantom"
) -> tuple[str, ReportFacts]:
    """Report text and its facts truth.

    Args:
        case_id: written into the facts.
        tumours: every tumour of the phantom (organ, sub-segment, true
            diameters in mm, attenuation, malignancy).
        rng: source of the wording.
        extractor: name recorded as the facts' extractor.

    Returns:
        ``(report, facts)``; each tumour becomes one record (count 1) whose
        evidence is its FINDINGS sentence.
    """
    w = _Writer(rng)
    header = rng.random() < 0.4
    with_tumour = {t.organ for t in tumours}
    lines: list[tuple[str, list[tuple[str, int | None]]]] = []  # header, (sentence, tumour index)
    normal: list[str] = []
    sizes: dict[int, tuple[str, list[float]]] = {}

    def add(head: str, sentence: str, index: int | None = None) -> None:
        if not (lines and lines[-1][0] == head):
            lines.append((head, []))
        lines[-1][1].append((sentence, index))

    def add_tumours(organs: Sequence[str]) -> None:
        for i, t in enumerate(tumours):
            if t.organ in organs:
                sizes[i] = w.size(t.diameters_mm)
                add(_HEADERS[t.organ], w.tumour(t, *sizes[i], header), i)

    for organs, wordings in _NORMAL:
        if len(organs) == 1 and organs[0] in _KIDNEYS:  # one side, when the other has a tumour
            if organs[0] not in with_tumour and _KIDNEYS & with_tumour and rng.random() < 0.85:
                add(_HEADERS[organs[0]], w.pick(wordings))
                normal.append(organs[0])
            continue
        add_tumours(organs)
        if not set(organs) & with_tumour and rng.random() < 0.85:
            add(_HEADERS[organs[0]], w.pick(wordings))
            normal.extend(organs)
    add_tumours(sorted(with_tumour - {o for organs, _ in _NORMAL for o in organs}))
    for head, filler in _FILLERS:
        if rng.random() < 0.5:
            add(head, filler)

    text = "EXAMINATION: " + w.pick(["CT abdomen and pelvis with intravenous contrast.",
                                     "Contrast-enhanced CT of the abdomen and pelvis."])
    text += "\nCLINICAL HISTORY: " + w.pick(_HISTORY)
    text += "\nTECHNIQUE: Axial images were acquired in the portal venous phase.\n\nFINDINGS:\n"
    evidence: dict[int, Evidence] = {}
    for head, sentences in lines:
        text += f"{head}: " if header else ""
        for sentence, index in sentences:
            if index is not None:
                evidence[index] = Evidence(sentence, len(text), len(text) + len(sentence))
            text += sentence + " "
        text = text[:-1] + "\n"
    text += "\nIMPRESSION:\n"
    order = sorted(evidence, key=lambda i: evidence[i].start)
    for k, i in enumerate(order, 1):
        text += f"{k}. " + w.tumour(tumours[i], *sizes[i], header=False, impression=True) + "\n"
    if not order:
        text += "1. " + w.pick(["No acute intra-abdominal abnormality.",
                                "No acute abnormality in the abdomen or pelvis."]) + "\n"

    records = [
        Tumour(organ=tumours[i].organ, subsegment=tumours[i].subsegment, diameters_mm=sizes[i][1],
               count=1, attenuation=tumours[i].attenuation, malignancy=tumours[i].malignancy,
               evidence=evidence[i])
        for i in order
    ]
    facts = ReportFacts(case_id=case_id, tumours=records, normal_organs=normal,
                        extractor=ExtractorInfo(extractor, "1"))
    return text, facts

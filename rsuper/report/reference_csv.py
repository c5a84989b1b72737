"""Import/export of the reference implementation's per-tumour CSV.

The R-Super reference code trains from a per-tumour table (one row per
lesion; see docs/report-facts.md for the column list), e.g. the public Merlin
metadata. This module converts it to and from :class:`ReportFacts`.

Mapping (ours -> reference):

* ``Standardized Organ``: organ without side (``kidney``, ``adrenal gland``);
  the side goes into ``Standardized Location`` (``left``/``right``);
* ``Standardized Location``: pancreas ``head``/``body``/``tail`` (uncinate and
  neck map to head, as in the reference), liver ``segment k / segment j``;
* ``Tumor Size (mm)``: ``"26.0 x 25.0"``, ``U`` when unknown, ``multiple`` for
  an uncounted set;
* a record standing for ``n`` tumours becomes ``n`` rows (the first carries the
  group's size, the others ``U``); a lower-bound group ("multiple cysts, the
  largest 15 mm") becomes a row with the largest size plus one ``multiple`` row,
  which reads back as "at least one more" (count 1, lower bound);
* ``Unknow Tumor Size`` (sic, the reference's spelling) is ``yes`` when any
  tumour of that organ in the case has no size;
* a case without tumours is one row with ``no lesion`` = ``True``.

What does not survive a round trip: evidence spans, normal organs (other than
"no lesion at all") and the split of a counted group into one sized record.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable

from .schema import PAIRED_ORGANS, ExtractorInfo, ReportFacts, Tumour, validate_facts

COLUMNS: tuple[str, ...] = (
    "BDMAP ID",
    "Tumor ID",
    "Organ",
    "Tumor Type",
    "Tumor Location",
    "Tumor Size (mm)",
    "Tumor Attenuation",
    "Type Certainty",
    "Standardized Organ",
    "Standardized Location",
    "Standardized Attenuation",
    "Unknow Tumor Size",
    "no lesion",
    "malignancy",
    "metastasis",
    "Report",
)

_REF_ORGAN = {"adrenal": "adrenal gland", "gallbladder": "gallbladder", "small_bowel": "small bowel"}
_FROM_REF_ORGAN = {
    "adrenal gland": "adrenal", "adrenal": "adrenal", "pancreatic": "pancreas", "gall bladder": "gallbladder",
    "small bowel": "small_bowel", "small intestine": "small_bowel", "rectum": "colon", "kidneys": "kidney",
}
_ATT_TO_REF = {"hypo": "low", "cystic": "low", "hyper": "high", "iso": "iso", "mixed": "heterogeneous"}
_ATT_FROM_REF = {"low": "hypo", "high": "hyper", "iso": "iso", "heterogeneous": "mixed"}
_MAL_TO_REF = {"malignant": "yes", "suspicious": "u", "benign": "no"}
_MAL_FROM_REF = {"yes": "malignant", "no": "benign"}
_PANCREAS_REF = {"head": "head", "uncinate": "head", "neck": "head", "body": "body", "tail": "tail"}


def _split_side(organ: str) -> tuple[str, str]:
    for unsided, (left, right) in PAIRED_ORGANS.items():
        if organ == left:
            return unsided, "left"
        if organ == right:
            return unsided, "right"
    return organ, ""


def _location(t: Tumour, side: str) -> str:
    if side:
        return side
    if not t.subsegment:
        return ""
    parts = t.subsegment.split("/")
    if t.organ == "pancreas":
        mapped: list[str] = []
        for p in parts:
            if _PANCREAS_REF[p] not in mapped:
                mapped.append(_PANCREAS_REF[p])
        return " / ".join(mapped)
    if t.organ == "liver":
        return " / ".join(p.replace("_", " ") for p in parts)
    return ""


def _size(d: list[float]) -> str:
    return " x ".join(f"{x:.1f}" for x in d) if d else "U"


def facts_to_reference_rows(facts: ReportFacts, report: str = "") -> list[dict[str, str]]:
    """Reference-format rows of one case."""
    base = {c: "" for c in COLUMNS}
    base["BDMAP ID"] = facts.case_id
    base["Report"] = report
    if not facts.tumours:
        return [{**base, "no lesion": "True", "Unknow Tumor Size": "no", "malignancy": "no", "metastasis": "no"}]
    unknown_organs = {
        t.organ for t in facts.tumours if not t.diameters_mm or t.count_is_lower_bound or t.count > 1
    }
    rows: list[dict[str, str]] = []
    for t in facts.tumours:
        organ, side = _split_side(t.organ)
        ref_organ = _REF_ORGAN.get(organ, organ)
        common = {
            **base,
            "Organ": ref_organ,
            "Tumor Type": t.malignancy if t.malignancy != "unknown" else "U",
            "Tumor Location": _location(t, side) or "U",
            "Tumor Attenuation": t.attenuation if t.attenuation != "unknown" else "U",
            "Type Certainty": "low" if t.malignancy == "suspicious" else "U",
            "Standardized Organ": ref_organ,
            "Standardized Location": _location(t, side),
            "Standardized Attenuation": _ATT_TO_REF.get(t.attenuation, "u"),
            "Unknow Tumor Size": "yes" if t.organ in unknown_organs else "no",
            "no lesion": "False",
            "malignancy": _MAL_TO_REF.get(t.malignancy, "u"),
            "metastasis": "u",
        }
        if t.count_is_lower_bound:
            sizes = [_size(t.diameters_mm), "multiple"]  # the largest, then "more of them"
        else:
            sizes = [_size(t.diameters_mm)] + ["U"] * (t.count - 1)
        for size in sizes:
            rows.append({**common, "Tumor Size (mm)": size})
    for i, row in enumerate(rows, start=1):
        row["Tumor ID"] = f"tumor {i}"
    return rows


def write_reference_csv(
    facts: Iterable[ReportFacts], path: str | Path, reports: dict[str, str] | None = None
) -> int:
    """Write the reference per-tumour CSV; returns the number of rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for f in facts:
            for row in facts_to_reference_rows(f, (reports or {}).get(f.case_id, "")):
                writer.writerow(row)
                n += 1
    return n


def _parse_size(text: str) -> list[float] | None:
    nums = re.findall(r"\d+(?:\.\d+)?", text or "")
    if not nums:
        return None
    return sorted((float(x) for x in nums[:3]), reverse=True)


def _organ_from_reference(organ: str, location: str) -> str | None:
    name = _FROM_REF_ORGAN.get(organ.strip().lower(), organ.strip().lower().replace(" ", "_"))
    if name in PAIRED_ORGANS:
        loc = location.lower()
        if "left" in loc and "right" not in loc:
            return PAIRED_ORGANS[name][0]
        if "right" in loc and "left" not in loc:
            return PAIRED_ORGANS[name][1]
    return name


def _subsegment_from_reference(organ: str, location: str) -> str | None:
    parts = [p.strip().lower() for p in re.split(r"/|,| and ", location or "") if p.strip()]
    if organ == "pancreas":
        out = [p for p in ("head", "neck", "body", "tail") if p in parts]
        return "/".join(out) or None
    if organ == "liver":
        nums = sorted({int(n) for p in parts for n in re.findall(r"\b([1-8])\b", p)})
        return "/".join(f"segment_{n}" for n in nums) or None
    return None


def read_reference_csv(path: str | Path) -> tuple[list[ReportFacts], list[str]]:
    """Read a reference per-tumour CSV; returns (facts per case, problems).

    Rows with an organ outside our vocabulary are skipped and listed in the
    problems, with their line number. Both ``BDMAP ID`` and ``BDMAP_ID`` are
    accepted as the case-id column.
    """
    from .schema import ORGANS

    problems: list[str] = []
    by_case: dict[str, ReportFacts] = {}
    info = ExtractorInfo("reference-csv", "", str(path))
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        id_col = next((c for c in ("BDMAP ID", "BDMAP_ID") if c in fields), None)
        if id_col is None:
            raise ValueError(f"{path}: no 'BDMAP ID' or 'BDMAP_ID' column")
        for line, row in enumerate(reader, start=2):
            cid = row[id_col].strip()
            facts = by_case.setdefault(cid, ReportFacts(case_id=cid, extractor=info))
            if str(row.get("no lesion", "")).strip().lower() in ("true", "1", "yes"):
                continue
            raw_organ = row.get("Standardized Organ") or row.get("Organ") or ""
            location = row.get("Standardized Location") or ""
            organ = _organ_from_reference(raw_organ, location)
            if organ not in ORGANS:
                problems.append(f"{path}:{line}: case {cid}: organ {raw_organ!r} is not in the vocabulary")
                continue
            size_text = (row.get("Tumor Size (mm)") or "").strip()
            t = Tumour(
                organ=organ,
                subsegment=_subsegment_from_reference(organ, location),
                attenuation=_ATT_FROM_REF.get((row.get("Standardized Attenuation") or "").lower(), "unknown"),
                malignancy=_MAL_FROM_REF.get((row.get("malignancy") or "").lower(), "unknown"),
            )
            if size_text.lower() == "multiple":
                t.count, t.count_is_lower_bound = 1, True  # at least one more, of unknown size
            else:
                t.diameters_mm = _parse_size(size_text) or []
            facts.tumours.append(t)
    for f in by_case.values():
        validate_facts(f)
    return list(by_case.values()), problems

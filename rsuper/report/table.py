"""The flat facts table (CSV): one row per tumour, read back losslessly.

Columns (docs/report-facts.md):

``case_id, tumour_index, organ, subsegment, diameter1_mm, diameter2_mm,
diameter3_mm, count, count_is_lower_bound, attenuation, malignancy,
evidence_text, evidence_start, evidence_end, normal_organs, warnings,
extractor_name, extractor_version, extractor_model``

A case without tumours has one row with an empty ``tumour_index``, so its
normal organs are kept. ``normal_organs`` is ``;``-separated (vocabulary names
contain no ``;``); ``warnings`` is a JSON list. Sizes are in mm.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable

from .schema import Evidence, ExtractorInfo, ReportFacts, Tumour, validate_facts

COLUMNS: tuple[str, ...] = (
    "case_id",
    "tumour_index",
    "organ",
    "subsegment",
    "diameter1_mm",
    "diameter2_mm",
    "diameter3_mm",
    "count",
    "count_is_lower_bound",
    "attenuation",
    "malignancy",
    "evidence_text",
    "evidence_start",
    "evidence_end",
    "normal_organs",
    "warnings",
    "extractor_name",
    "extractor_version",
    "extractor_model",
)


def _num(x: float) -> str:
    return f"{x:g}"


def facts_to_rows(facts: ReportFacts) -> list[dict[str, str]]:
    """Rows of the flat table for one case."""
    common = {
        "case_id": facts.case_id,
        "normal_organs": ";".join(facts.normal_organs),
        "warnings": json.dumps(facts.warnings, ensure_ascii=False),
        "extractor_name": facts.extractor.name,
        "extractor_version": facts.extractor.version,
        "extractor_model": facts.extractor.model or "",
    }
    if not facts.tumours:
        return [{**{c: "" for c in COLUMNS}, **common}]
    rows = []
    for i, t in enumerate(facts.tumours):
        d = list(t.diameters_mm) + [None] * (3 - len(t.diameters_mm))
        ev = t.evidence
        rows.append(
            {
                **common,
                "tumour_index": str(i),
                "organ": t.organ,
                "subsegment": t.subsegment or "",
                "diameter1_mm": "" if d[0] is None else _num(d[0]),
                "diameter2_mm": "" if d[1] is None else _num(d[1]),
                "diameter3_mm": "" if d[2] is None else _num(d[2]),
                "count": str(t.count),
                "count_is_lower_bound": "true" if t.count_is_lower_bound else "false",
                "attenuation": t.attenuation,
                "malignancy": t.malignancy,
                "evidence_text": ev.text if ev else "",
                "evidence_start": "" if ev is None else str(ev.start),
                "evidence_end": "" if ev is None else str(ev.end),
            }
        )
    return rows


def write_facts_csv(facts: Iterable[ReportFacts], path: str | Path) -> int:
    """Write the flat table; returns the number of rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for f in facts:
            for row in facts_to_rows(f):
                writer.writerow(row)
                n += 1
    return n


def _row_tumour(row: dict[str, str]) -> Tumour:
    diam = [float(row[c]) for c in ("diameter1_mm", "diameter2_mm", "diameter3_mm") if row.get(c)]
    ev = None
    if row.get("evidence_start"):
        ev = Evidence(row["evidence_text"], int(row["evidence_start"]), int(row["evidence_end"]))
    return Tumour(
        organ=row["organ"],
        subsegment=row.get("subsegment") or None,
        diameters_mm=diam,
        count=int(row["count"]),
        count_is_lower_bound=row["count_is_lower_bound"].lower() == "true",
        attenuation=row["attenuation"],
        malignancy=row["malignancy"],
        evidence=ev,
    )


def read_facts_csv(path: str | Path) -> list[ReportFacts]:
    """Read the flat table back into facts (validated), in file order."""
    by_case: dict[str, ReportFacts] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a facts table, missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            cid = row["case_id"]
            if cid not in by_case:
                by_case[cid] = ReportFacts(
                    case_id=cid,
                    normal_organs=[o for o in row["normal_organs"].split(";") if o],
                    warnings=json.loads(row["warnings"] or "[]"),
                    extractor=ExtractorInfo(
                        row["extractor_name"], row["extractor_version"], row["extractor_model"] or None
                    ),
                )
            if row["tumour_index"] != "":
                try:
                    by_case[cid].tumours.append(_row_tumour(row))
                except (KeyError, ValueError) as exc:
                    raise ValueError(f"{path}:{line}: bad tumour row: {exc}") from exc
    for f in by_case.values():
        validate_facts(f)
    return list(by_case.values())

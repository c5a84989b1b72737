"""Resumable batch extraction: a CSV/JSONL of reports in, ``facts.jsonl`` out.

Guarantees:

* **Resumable.** Case ids already in the output are skipped; the output is
  appended one line per case and flushed, so a killed run loses at most the
  case in flight. A half-written last line (the process died mid-write) is
  cut off before appending.
* **Bad input never stops the batch.** An empty report, invalid UTF-8, a
  missing or duplicate case id, or an extractor error is written to
  ``<out>.errors.jsonl`` (``{"case_id", "row", "reason"}``) and counted in the
  summary. The errors file describes the latest run: cases that failed before
  are tried again (a language-model server may be back).

Input: CSV with a header naming an id column (``case_id``, ``id``,
``BDMAP ID``, ``BDMAP_ID``, ``accession``) and a text column (``report``,
``text``, ``findings``), any capitalisation; or JSON Lines with the same keys.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..progress import Progress
from .base import Extractor, ReportItem
from .schema import ReportFacts, validate_facts

ID_COLUMNS = ("case_id", "id", "bdmap id", "bdmap_id", "accession", "accession number", "encrypted accession number")
TEXT_COLUMNS = ("report", "text", "report text", "findings", "anon report text")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class InputRow:
    """One input row: its 1-based row number, the id, the text, or why it is unusable."""

    row: int
    case_id: str
    text: str
    problem: str | None = None


@dataclass
class BatchSummary:
    """Counts of one batch run."""

    total: int = 0
    extracted: int = 0
    skipped: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {
            "total": self.total,
            "extracted": self.extracted,
            "skipped_already_done": self.skipped,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "reports_per_s": round(self.extracted / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
            "error_reasons": self.error_reasons,
        }


def _pick(columns: list[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    lower = {c.strip().lower(): c for c in columns}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise ValueError(f"{path}: no {what} column (looked for {', '.join(wanted)}; found {', '.join(columns)})")


def _bad_encoding(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def read_reports(path: str | Path) -> Iterator[InputRow]:
    """Rows of a reports CSV or JSONL file (``.jsonl``/``.ndjson`` by suffix).

    Invalid UTF-8 is decoded with ``surrogateescape`` so one bad row is
    reported as such instead of failing the whole file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reports file not found: {path}")
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            yield from _read_jsonl(fh, path)
        else:
            yield from _read_csv(fh, path)


def _read_csv(fh, path: Path) -> Iterator[InputRow]:
    reader = csv.DictReader(fh)
    cols = [c for c in (reader.fieldnames or []) if c is not None]
    id_col = _pick(cols, ID_COLUMNS, path, "case id")
    text_col = _pick(cols, TEXT_COLUMNS, path, "report text")
    for i, row in enumerate(reader, start=1):
        cid = (row.get(id_col) or "").strip()
        text = row.get(text_col) or ""
        yield _checked(i, cid, text)


def _read_jsonl(fh, path: Path) -> Iterator[InputRow]:
    for i, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            yield InputRow(i, "", "", f"invalid JSON on line {i}: {exc}")
            continue
        keys = list(obj)
        try:
            cid = str(obj[_pick(keys, ID_COLUMNS, path, "case id")]).strip()
            text = obj[_pick(keys, TEXT_COLUMNS, path, "report text")]
        except ValueError as exc:
            yield InputRow(i, str(obj.get("case_id", "")), "", str(exc))
            continue
        if not isinstance(text, str):
            yield InputRow(i, cid, "", f"report is {type(text).__name__}, not text")
            continue
        yield _checked(i, cid, text)


def _checked(row: int, cid: str, text: str) -> InputRow:
    if not cid:
        return InputRow(row, "", text, "missing case id")
    if _bad_encoding(cid) or _bad_encoding(text):
        return InputRow(row, cid.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "",
                        "invalid UTF-8 in the report text")
    if not text.strip():
        return InputRow(row, cid, text, "empty report text")
    return InputRow(row, cid, text)


def done_case_ids(out: Path) -> set[str]:
    """Case ids already in the output; cuts off a half-written last line."""
    if not out.exists():
        return set()
    done: set[str] = set()
    good_end = 0
    with open(out, "rb") as fh:
        data = fh.read()
    pos = 0
    for line in data.splitlines(keepends=True):
        pos += len(line)
        if not line.endswith(b"\n"):
            break
        try:
            done.add(str(json.loads(line)["case_id"]))
            good_end = pos
        except (ValueError, KeyError, TypeError):
            break
    if good_end < len(data):
        with open(out, "r+b") as fh:
            fh.truncate(good_end)
    return done


def read_facts_jsonl(path: str | Path) -> list[ReportFacts]:
    """All facts records of a ``facts.jsonl`` file (validated)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    out.append(ReportFacts.from_dict(json.loads(line)))
                except ValueError as exc:
                    raise ValueError(f"{path}:{i}: {exc}") from exc
    return out


def errors_path(out: Path) -> Path:
    """``facts.jsonl`` -> ``facts.jsonl.errors.jsonl``."""
    return out.with_name(out.name + ".errors.jsonl")


def run_batch(
    reports: str | Path,
    out: str | Path,
    extractor: Extractor,
    progress: str = "auto",
    chunk: int = 64,
) -> BatchSummary:
    """Extract every report of ``reports`` into ``out`` (JSON Lines), resumably.

    Args:
        reports: CSV or JSONL of ``case_id, report``.
        out: output JSON Lines file (appended).
        extractor: the backend.
        progress: ``auto``/``bar``/``jsonl``/``none`` (see :mod:`rsuper.progress`).
        chunk: reports handed to the extractor at a time (batched LLM backends).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_case_ids(out)
    rows = list(read_reports(reports))
    summary = BatchSummary(total=len(rows))
    seen: set[str] = set()
    todo: list[InputRow] = []
    bad: list[tuple[InputRow, str]] = []
    for r in rows:
        if r.problem is None and r.case_id in seen:
            r.problem = "duplicate case id (first occurrence kept)"
        if r.case_id:
            seen.add(r.case_id)
        if r.problem is None and r.case_id in done:
            summary.skipped += 1
        elif r.problem is not None:
            bad.append((r, r.problem))
        else:
            todo.append(r)

    t0 = time.monotonic()
    bar = Progress(total=summary.total, mode=progress, desc=f"extract ({extractor.name})", initial=summary.skipped)
    with open(out, "a", encoding="utf-8") as fout, open(errors_path(out), "w", encoding="utf-8") as ferr:

        def record_error(r: InputRow, reason: str) -> None:
            summary.errors += 1
            key = reason.split(":")[0][:60]
            summary.error_reasons[key] = summary.error_reasons.get(key, 0) + 1
            ferr.write(json.dumps({"case_id": r.case_id, "row": r.row, "reason": reason}, ensure_ascii=False) + "\n")
            ferr.flush()
            bar.event("error", case_id=r.case_id, row=r.row, reason=reason)
            bar.update(1, case_id=r.case_id, ok=summary.extracted, errors=summary.errors)

        for r, reason in bad:
            record_error(r, reason)
        by_id = {r.case_id: r for r in todo}
        for start in range(0, len(todo), chunk):
            items = [ReportItem(r.case_id, r.text) for r in todo[start:start + chunk]]
            for item, result in extractor.extract_many(items):
                r = by_id[item.case_id]
                if isinstance(result, Exception):
                    record_error(r, f"{type(result).__name__}: {result}")
                    continue
                try:
                    validate_facts(result, item.text)
                except ValueError as exc:
                    record_error(r, f"invalid facts: {exc}")
                    continue
                fout.write(result.to_json() + "\n")
                fout.flush()
                summary.extracted += 1
                bar.update(1, case_id=r.case_id, ok=summary.extracted, errors=summary.errors)
        os.fsync(fout.fileno())
    summary.elapsed_s = time.monotonic() - t0
    bar.close(**summary.as_dict())
    return summary

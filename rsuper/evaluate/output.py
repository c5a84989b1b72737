"""Write an evaluation: the per-case CSV, the summary JSON, and a rich table for the terminal.

Column and key meanings are documented in ``docs/evaluation.md``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rsuper.evaluate.analysis import INTERVAL_METRICS

#: Leading CSV columns, in order; further record keys (``<organ>_...``) follow in first-seen order.
CSV_COLUMNS: tuple[str, ...] = (
    "case_id", "status", "error", "warning", "split",
    "truth_has_tumour", "n_truth_tumours", "largest_diameter_mm", "size_group",
    "pred_volume_mm3", "truth_volume_mm3", "called_positive", "max_probability",
    "dice", "nsd", "tp", "fp", "fn", "tp_small", "fn_small", "tp_large", "fn_large",
)


def _cell(value: Any) -> Any:
    """CSV text of a value: empty for ``None`` (not applicable), ``nan`` for an undefined number."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def write_case_csv(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """One row per case, columns :data:`CSV_COLUMNS` then any other keys; written atomically."""
    columns = list(CSV_COLUMNS)
    for record in records:
        columns += [k for k in record if k not in columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="raise")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(record.get(k)) for k in columns})
    os.replace(tmp, path)
    return path


def write_summary_json(summary: Mapping[str, Any], path: Path) -> Path:
    """The summary as indented JSON (``NaN`` must already be ``None``); written atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _format(metric: Mapping[str, Any] | None) -> str:
    if not metric or metric.get("value") is None:
        return "–"
    text = f"{metric['value']:.3f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
    return text


def summary_table(summary: Mapping[str, Any]) -> Table:
    """A rich table: one row per group, the six metrics with their 95 % intervals, and lesion recall."""
    groups = summary["groups"]
    threshold = groups["all"]["threshold"]
    t_text = "no threshold" if threshold["value_mm3"] is None else f"T = {threshold['value_mm3']:g} mm³"
    table = Table(title=f"Evaluation ({summary['cases']['reported']} cases reported; {t_text})")
    table.add_column("group")
    table.add_column("cases (+/-)", justify="right")
    for name in INTERVAL_METRICS:
        table.add_column({"dice": "DSC", "nsd": "NSD", "auc": "AUC", "f1": "F1"}.get(name, name), justify="right")
    table.add_column("lesion recall", justify="right")
    for name, group in groups.items():
        recall = group["lesion"]["recall"]
        table.add_row(
            name, f"{group['n_cases']} ({group['n_positive']}/{group['n_negative']})",
            *(_format(group[m]) for m in INTERVAL_METRICS),
            "–" if recall is None else f"{recall:.3f}",
        )
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the table, how the threshold was set, and every error and warning."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=180)  # logs and pipes: do not fold the table to 80 columns
    console.print(summary_table(summary))
    for name, group in summary["groups"].items():
        note = group["threshold"].get("note")
        if note:
            console.print(f"threshold ({name}): {note}", markup=False)
    for error in summary["errors"]:
        console.print(f"[red]error[/red] {escape(error['case_id'])}: {escape(error['reason'])}", highlight=False)
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning[/yellow] {escape(warning['case_id'])}: {escape(warning['warning'])}",
                      highlight=False)

"""Show facts as a table on the terminal (rich)."""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.table import Table

from .schema import ReportFacts


def facts_table(facts: Iterable[ReportFacts]) -> Table:
    """A rich table: one row per tumour, plus a row for cases without any."""
    table = Table(title="Tumour facts", show_lines=False)
    columns = ("case", "organ", "sub-segment", "diameters (mm)", "count", "attenuation", "malignancy", "normal organs")
    for col in columns:
        table.add_column(col)
    for f in facts:
        normal = ", ".join(f.normal_organs)
        if not f.tumours:
            table.add_row(f.case_id, "-", "", "", "0", "", "", normal)
        for i, t in enumerate(f.tumours):
            count = f"≥{t.count}" if t.count_is_lower_bound else str(t.count)
            dims = " x ".join(f"{d:g}" for d in t.diameters_mm) or "?"
            table.add_row(f.case_id if i == 0 else "", t.organ, t.subsegment or "", dims, count,
                          t.attenuation, t.malignancy, normal if i == 0 else "")
    return table


def print_facts_table(facts: Iterable[ReportFacts], console: Console | None = None) -> None:
    """Print :func:`facts_table` (to stdout by default)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # logs and pipes: do not fold the table to 80 columns
    console.print(facts_table(facts))

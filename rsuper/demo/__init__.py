"""``rsuper demo``: the end-to-end demo on embedded example data.

Step 1 (report extraction): the bundled example reports are read by the
offline ``rules`` extractor and the facts are printed as a table. Later steps
(organ masks, training, inference, comparison) join as they land.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path


def example_reports() -> Path:
    """Path of the bundled example reports CSV (``case_id,report``)."""
    return Path(str(resources.files("rsuper.report") / "examples" / "reports.csv"))


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on the embedded example data",
        description="Run the R-Super demo on embedded synthetic data; everything is written under --out.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)")
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .report.batch import errors_path, read_facts_jsonl, run_batch
    from .report.display import print_facts_table
    from .report.rules import RulesExtractor
    from .report.table import write_facts_csv

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]Step 1: tumour facts from reports (offline rules extractor)")
    facts_path = out / "facts.jsonl"
    if facts_path.exists():
        facts_path.unlink()  # the demo always starts afresh
    summary = run_batch(example_reports(), facts_path, RulesExtractor(), progress="none")
    facts = read_facts_jsonl(facts_path)
    write_facts_csv(facts, out / "facts.csv")
    print_facts_table(facts, console)
    console.print(
        f"{summary.extracted} reports extracted, {summary.errors} rejected "
        f"(see {errors_path(facts_path)}); facts in {facts_path} and {out / 'facts.csv'}"
    )
    return 0

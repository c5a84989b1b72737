"""Throughput of the offline ``rules`` extractor (reports per second, one core).

Usage: python bench/bench_extract.py [--n 3000] [--workers 1 2]

Reads the test corpus (Testing/data/report_corpus.yaml) and the bundled
example reports, repeats them to --n reports and times RulesExtractor on them,
in-process (1 worker) and with a process pool. Prints a table.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from rsuper.demo import example_reports
from rsuper.report.base import ReportItem
from rsuper.report.rules import RulesExtractor

ROOT = Path(__file__).resolve().parents[1]


def load_texts() -> list[str]:
    corpus = yaml.safe_load((ROOT / "Testing" / "data" / "report_corpus.yaml").read_text())
    texts = [c["text"] for c in corpus]
    with open(example_reports(), newline="") as fh:
        texts += [r["report"] for r in csv.DictReader(fh) if r["report"].strip()]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="reports to extract (default 3000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    args = ap.parse_args()
    texts = load_texts()
    items = [ReportItem(f"c{i}", texts[i % len(texts)]) for i in range(args.n)]
    chars = sum(len(i.text) for i in items) / len(items)
    table = Table(title=f"rules extractor, {args.n} reports (mean {chars:.0f} characters), {os.cpu_count()} CPUs")
    for col in ("workers", "seconds", "reports/s", "ms/report"):
        table.add_column(col, justify="right")
    for w in args.workers:
        ex = RulesExtractor(workers=w)
        t0 = time.perf_counter()
        n_ok = sum(1 for _, r in ex.extract_many(items) if not isinstance(r, Exception))
        dt = time.perf_counter() - t0
        ex.close()
        assert n_ok == len(items)
        table.add_row(str(w), f"{dt:.2f}", f"{len(items) / dt:.0f}", f"{1000 * dt / len(items):.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()

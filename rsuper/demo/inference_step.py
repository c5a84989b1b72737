"""The demo's last step: segment the held-out phantoms, score them, compare each AI tumour with the report.

Everything goes through the commands a user runs, in-process
(:func:`rsuper.cli.main`):

1. the held-out phantoms' reports are read by the offline rules extractor
   (``test_reports.csv`` -> ``test_facts.jsonl``);
2. ``rsuper predict`` segments every held-out CT with the masks + reports
   model (``predictions/<case>.nii.gz`` + ``.json``, ``probabilities/``);
3. ``rsuper evaluate`` scores them against the phantoms' tumour masks
   (``metrics.csv``, ``metrics.summary.json``; the table is printed);
4. ``rsuper compare`` matches each AI tumour with the report's tumours and
   writes the cohort page ``comparison/index.html`` with one page per case
   (``comparison/index_cases/<case>.html``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .study import case_folder


@dataclass
class InferenceStepResult:
    """Paths written by the step; ``case_page`` is the demo case's comparison page."""

    predictions: Path
    metrics_csv: Path
    metrics_summary: Path
    cohort_page: Path
    case_page: Path


def _run(argv: list[str]) -> None:
    from rsuper.cli import main

    code = main(argv)
    if code != 0:
        raise RuntimeError(f"rsuper {argv[0]} failed with exit code {code}")


def _extract_test_facts(study: Path, test_ids: Sequence[str]) -> tuple[Path, Path]:
    """Facts of the held-out cases from their report text; returns (reports CSV, facts JSONL)."""
    from rsuper.report.batch import run_batch
    from rsuper.report.rules import RulesExtractor

    reports_csv = study / "test_reports.csv"
    with open(reports_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "report"])
        for cid in test_ids:
            writer.writerow([cid, (study / case_folder("test") / cid / "report.txt").read_text(encoding="utf-8")])
    facts = study / "test_facts.jsonl"
    if facts.exists():
        facts.unlink()
    run_batch(reports_csv, facts, RulesExtractor(), progress="none")
    return reports_csv, facts


def _demo_case(facts_jsonl: Path, test_ids: Sequence[str]) -> str:
    """The first held-out case whose report describes a tumour (else the first case)."""
    with open(facts_jsonl, encoding="utf-8") as fh:
        with_tumour = {row["case_id"] for row in map(json.loads, fh) if row.get("tumours")}
    return next((cid for cid in test_ids if cid in with_tumour), test_ids[0])


def run_inference_step(study: Path, model: Path, test_ids: Sequence[str], progress: str = "none",
                       bootstrap: int = 200) -> InferenceStepResult:
    """Predict, evaluate and compare the held-out phantoms of a finished :func:`run_study` folder.

    Args:
        study: the study folder (held-out phantoms under ``test_cases/``).
        model: the checkpoint to segment with (``final.pt``).
        test_ids: the held-out case ids.
        progress: progress display of the predict and evaluate commands.
        bootstrap: bootstrap resamples of the 95% intervals.

    Raises:
        RuntimeError: one of the commands failed (its message is on stderr).
    """
    cases = study / case_folder("test")
    reports_csv, facts = _extract_test_facts(study, test_ids)
    predictions, probabilities = study / "predictions", study / "probabilities"
    _run(["predict", "--model", str(model), "--ct", str(cases), "--organs", str(cases), "--out", str(predictions),
          "--probabilities", str(probabilities), "--overwrite", "--progress", progress])
    metrics = study / "metrics.csv"
    _run(["evaluate", "--pred", str(predictions), "--truth", str(cases), "--organs", str(cases),
          "--probabilities", str(probabilities), "--threshold-mm3", "50", "--out", str(metrics),
          "--bootstrap", str(bootstrap),
          "--progress", progress])
    cohort = study / "comparison" / "index.html"
    _run(["compare", "--tumours", str(predictions), "--ct", str(cases), "--facts", str(facts),
          "--out", str(study / "comparison" / "comparison.json"), "--html", str(cohort), "--reports", str(reports_csv)])
    case_page = cohort.with_name(cohort.stem + "_cases") / f"{_demo_case(facts, test_ids)}.html"
    return InferenceStepResult(predictions, metrics, metrics.with_suffix(".summary.json"), cohort,
                               case_page)

"""``rsuper demo``: the end-to-end demo on embedded example data.

Step 1 (report extraction): the bundled example reports are read by the
offline ``rules`` extractor and the facts are printed as a table.
Step 2 (organ masks): a phantom's TotalSegmentator-style masks are imported,
the pancreas is split into head/body/tail, scored against the phantom's truth
and drawn as a PNG overlay (:mod:`rsuper.demo.organs_step`).
Step 3 (training): on synthetic phantoms, a segmenter trained on a few masks
is compared with one trained on the same masks plus many reports
(:mod:`rsuper.demo.study`); tumour DSC and detection F1 on held-out phantoms
are printed and the loss curves and scores are drawn as PNGs.
Step 4 (inference and comparison): the masks + reports model segments the
held-out phantoms; ``rsuper evaluate`` prints the metrics table and
``rsuper compare`` writes the AI-vs-report HTML pages
(:mod:`rsuper.demo.inference_step`).
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
    p.add_argument("--quick", action="store_true",
                   help="a much smaller training study (seconds; for smoke tests, not for conclusions)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the training study's phantoms and runs (default 2025); "
                        "other seeds show how much the scores vary")
    p.add_argument("--skip-training", action="store_true",
                   help="only steps 1 and 2 (report extraction, organ masks)")
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rsuper.report.batch import errors_path, read_facts_jsonl, run_batch
    from rsuper.report.display import print_facts_table
    from rsuper.report.rules import RulesExtractor
    from rsuper.report.table import write_facts_csv

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
    _organs_step(out / "organs", console)
    if not args.skip_training:
        study = _training_step(out / "study", console, quick=args.quick, seed=args.seed)
        _inference_step(out / "study", study, console, quick=args.quick)
    return 0


def _organs_step(out: Path, console) -> None:
    """Step 2: import TotalSegmentator-style masks, split the pancreas, draw the overlay."""
    from .organs_step import run_organs_step

    console.rule("[bold]Step 2: organ masks (TotalSegmentator-style import, pancreas head/body/tail split)")
    result = run_organs_step(out)
    dice = ", ".join(f"{part.removeprefix('pancreas_')} {d:.3f}" for part, d in result.split_dice.items())
    console.print(f"organ mask: {result.organs}; pancreas split Dice vs the phantom's truth: {dice}")
    console.print(f"overlay: {result.overlay}")


def _training_step(out: Path, console, quick: bool, seed: int | None = None):
    """Step 3: masks only vs masks + reports on phantoms; prints the scores, returns the study result."""
    import shutil
    from dataclasses import replace

    from rich.table import Table

    from .study import ARM_TITLES, ARMS, StudyOptions, run_study

    console.rule("[bold]Step 3: does report supervision help? (synthetic phantoms, CPU)")
    if out.exists():
        shutil.rmtree(out)  # the demo always starts afresh
    options = _quick_options() if quick else StudyOptions()
    if seed is not None:
        options = replace(options, seed=seed)
    console.print(f"{options.n_mask} mask cases, {options.n_report} report-only cases, {options.n_test} held out; "
                  f"{options.stage1_steps} masks-only steps, then {options.arm_steps} steps per arm")
    result = run_study(out, options, progress="bar" if console.is_terminal else "none", log=console.print)
    table = Table(title="Held-out phantoms: lesions of liver, pancreas and kidneys")
    for column in ("model", "tumour DSC", "detection precision", "detection recall", "detection F1"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for arm in ARMS:
        s = result.summary[arm]
        table.add_row(ARM_TITLES[arm], *(f"{s[k]:.3f}" for k in
                                          ("dice_mean", "detection_precision", "detection_recall", "detection_f1")))
    console.print(table)
    console.print(f"figures: {result.figures['loss_curves']}, {result.figures['metrics']}; "
                  f"scores per case: {out / 'results.json'}; training jobs: {out / 'runs'}")
    return result


def _inference_step(out: Path, study, console, quick: bool) -> None:
    """Step 4: segment the held-out phantoms with the masks + reports model, evaluate, compare with the reports."""
    from .inference_step import run_inference_step

    console.rule("[bold]Step 4: segment held-out CTs, score them, compare each AI tumour with its report")
    result = run_inference_step(out, study.jobs["masks_reports"] / "checkpoints" / "final.pt", study.ids["test"],
                                progress="bar" if console.is_terminal else "none", bootstrap=50 if quick else 200)
    console.print(f"metrics: {result.metrics_csv} (summary {result.metrics_summary})")
    console.print(f"AI vs report: {result.cohort_page}; the demo case: {result.case_page}")


def _quick_options():
    from .study import StudyOptions

    return StudyOptions(n_mask=2, n_report=3, n_test=2, phantom_shape=(64, 56, 48), phantom_spacing_mm=(3.0, 3.0, 5.0),
                        spacing_mm=(6.0, 6.0, 6.0), patch_size=(32, 32, 32), features=(4, 8, 16),
                        stage1_steps=3, arm_steps=3)

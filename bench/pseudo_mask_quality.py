"""Where do the Ball Loss's pseudo-masks land? Scores them on a demo study's report cases.

Usage: python bench/pseudo_mask_quality.py STUDY_DIR [--jobs stage1 masks_only masks_reports]

STUDY_DIR is the folder of ``rsuper.demo.study.run_study`` (``demo_output/study``
after ``make demo``). Its report cases are phantoms, so their true tumour masks
exist although training never saw them. For each job's final model (EMA
weights) the script segments every report case, places the reported tumours
exactly as the Ball Loss does (its options from the job's config) and prints,
pooled over the cases: how many ball centres sit on a true tumour, and the
precision and recall of the positive pseudo-mask voxels
(:mod:`rsuper.evaluate.pseudo_masks`). The report cases are preprocessed with
their masks into ``STUDY_DIR/cache_pseudo_masks`` (once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from rsuper.data.cache import load_cached_case
from rsuper.data.manifest import read_manifest
from rsuper.data.preprocess import PreprocessOptions, preprocess_manifest
from rsuper.demo.study import write_study_manifest
from rsuper.evaluate.pseudo_masks import PseudoMaskQuality, case_pseudo_mask_quality
from rsuper.infer.model_io import LoadedModel, load_model
from rsuper.infer.sliding import predict_probabilities
from rsuper.report.batch import read_facts_jsonl
from rsuper.report.schema import ReportFacts
from rsuper.train.checkpoint import load_checkpoint
from rsuper.train.config import config_from_dict


def job_quality(loaded: LoadedModel, cache: Path, facts: dict[str, ReportFacts]) -> PseudoMaskQuality:
    """Pooled pseudo-mask quality of one job's final model (its Ball Loss options) over the cached report cases."""
    config = config_from_dict(load_checkpoint(loaded.path)["config"])
    ball = config.loss_config(config.stages[-1], tuple(loaded.classes.lesion_channels)).ball
    total = PseudoMaskQuality()
    with torch.inference_mode():
        for case_id, case_facts in facts.items():
            case = load_cached_case(cache, case_id)
            probs = predict_probabilities(loaded.model, np.asarray(case.image), loaded.patch_size, overlap=0.5)
            total = total + case_pseudo_mask_quality(probs, np.asarray(case.tumours), np.asarray(case.organs),
                                                     case.label_map, case_facts, loaded.classes, case.spacing_mm,
                                                     ball)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", type=Path, help="folder written by run_study (e.g. demo_output/study)")
    ap.add_argument("--jobs", nargs="+", default=["stage1", "masks_only", "masks_reports"],
                    help="training jobs under STUDY/runs to score (default: all three)")
    args = ap.parse_args()

    facts = {f.case_id: f for f in read_facts_jsonl(args.study / "facts.jsonl") if f.tumours}
    models = {job: load_model(args.study / "runs" / job / "checkpoints" / "final.pt") for job in args.jobs}
    first = models[args.jobs[0]]
    manifest = write_study_manifest(args.study / "manifest_pseudo_masks.csv", sorted(facts))
    cache = args.study / "cache_pseudo_masks"
    options = PreprocessOptions(spacing_mm=first.spacing_mm, hu_clip=first.hu_clip)
    preprocess_manifest(read_manifest(manifest), cache, options, progress="bar" if sys.stderr.isatty() else "none")

    table = Table(title=f"Ball Loss pseudo-masks on {len(facts)} report cases of {args.study}")
    for column in ("model", "tumours", "centre on a true tumour", "pseudo-mask precision", "pseudo-mask recall"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for job in args.jobs:
        q = job_quality(models[job], cache, facts)
        table.add_row(job, str(q.tumours), f"{q.centre_hit_rate:.2f}", f"{q.precision:.2f}", f"{q.recall:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()

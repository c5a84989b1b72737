"""``rsuper evaluate``: score predicted tumour masks against truth masks (per case, per group, with intervals)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  rsuper evaluate --pred predictions/ --truth truth/ --out metrics.csv
  rsuper evaluate --pred predictions/ --truth truth/ --probabilities probs/ --split val.txt --out metrics.csv
  rsuper evaluate --pred predictions/ --truth truth/ --organs organs/ --out metrics.csv --nsd-mm 1

Folders hold <case>.nii.gz files or <case>/ sub-folders (tumours.nii.gz, organs.nii.gz,
probabilities.nii.gz); cases are matched by name. --split lists validation case ids, one per
line: the volume threshold is chosen on them (best F1) and the metrics are reported on the
others. Writes the per-case CSV (--out) and <out>.summary.json next to it. Formats and
conventions: docs/evaluation.md
"""

DEFAULT_LESION_ORGANS = "liver,pancreas,kidney"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="score predicted tumour masks against truth masks",
        description="Per-case DSC, NSD and lesion detection; per-patient sensitivity, specificity, F1 at a "
        "volume threshold and AUC of the maximum tumour probability; split by tumour size (and organ), "
        "with bootstrap 95% intervals.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, type=Path, help="folder of predicted tumour masks (non-zero = tumour)")
    p.add_argument("--truth", required=True, type=Path, help="folder of truth tumour instance maps or masks")
    p.add_argument("--organs", type=Path, help="folder of organ label maps: also report each lesion organ")
    p.add_argument("--lesion-organs", default=DEFAULT_LESION_ORGANS,
                   help=f"with --organs: organs to report, comma-separated (default {DEFAULT_LESION_ORGANS})")
    p.add_argument("--probabilities", type=Path, help="folder of tumour probability maps, for the AUC")
    p.add_argument("--split", type=Path, help="text file of validation case ids, one per line")
    p.add_argument("--threshold-mm3", type=float,
                   help="use this case-level volume threshold (mm³) instead of choosing one on --split")
    p.add_argument("--out", required=True, type=Path, help="per-case CSV to write (summary: <out>.summary.json)")
    p.add_argument("--nsd-mm", type=float, default=2.0, help="NSD tolerance in mm (default 2)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples, 0 for none (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--min-overlap-voxels", type=int, default=1,
                   help="voxels a predicted component must share with a tumour to find it (default 1)")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    return p


def read_split(path: Path) -> list[str]:
    """Case ids of a split file: one per line (the first comma-separated field); blank lines,
    ``#`` comments and a ``case_id`` header are skipped."""
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        field = line.split("#", 1)[0].split(",", 1)[0].strip()
        if field and field != "case_id":
            ids.append(field)
    return ids


def summary_path(out: Path) -> Path:
    """Where the summary JSON goes: ``metrics.csv`` -> ``metrics.summary.json``."""
    return Path(out).with_suffix(".summary.json")


def _usage_error(args: argparse.Namespace) -> str | None:
    for flag in ("pred", "truth", "organs", "probabilities"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            return f"--{flag} {folder} is not a folder"
    if args.split is not None and not args.split.is_file():
        return f"--split {args.split} is not a file"
    if args.split is not None and args.threshold_mm3 is not None:
        return "give --split (choose the threshold) or --threshold-mm3 (use one), not both"
    if args.threshold_mm3 is not None and args.threshold_mm3 <= 0:
        return "--threshold-mm3 must be > 0"
    if args.nsd_mm <= 0:
        return "--nsd-mm must be > 0"
    if args.bootstrap < 0:
        return "--bootstrap must be >= 0"
    if args.min_overlap_voxels < 1:
        return "--min-overlap-voxels must be >= 1"
    return None


def run(args: argparse.Namespace) -> int:
    import json

    from rsuper.data.classes import ClassList

    from .analysis import called_positive, summarise_cohort
    from .cohort import score_folders
    from .output import print_summary, write_case_csv, write_summary_json

    problem = _usage_error(args)
    organs: tuple[str, ...] = ()
    if problem is None and args.organs is not None:
        try:
            organs = ClassList(lesion_organs=tuple(o.strip() for o in args.lesion_organs.split(",") if o.strip())
                               ).lesion_organs
        except ValueError as exc:
            problem = f"--lesion-organs: {exc}"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    validation = read_split(args.split) if args.split is not None else None
    records = score_folders(
        args.pred, args.truth, organs_dir=args.organs, probabilities_dir=args.probabilities, organs=organs,
        nsd_tolerance_mm=args.nsd_mm, min_overlap_voxels=args.min_overlap_voxels, progress=args.progress,
    )
    summary = summarise_cohort(records, validation_ids=validation, threshold_mm3=args.threshold_mm3, organs=organs,
                               n_resamples=args.bootstrap, seed=args.seed)
    summary = {
        "options": {
            "pred": str(args.pred), "truth": str(args.truth),
            "organs": None if args.organs is None else str(args.organs), "lesion_organs": list(organs),
            "probabilities": None if args.probabilities is None else str(args.probabilities),
            "split": None if args.split is None else str(args.split), "threshold_mm3": args.threshold_mm3,
            "nsd_mm": args.nsd_mm, "bootstrap": args.bootstrap, "seed": args.seed,
            "min_overlap_voxels": args.min_overlap_voxels,
        },
        **summary,
    }
    csv_path = write_case_csv(called_positive(records, summary, validation), args.out)
    json_path = write_summary_json(summary, summary_path(args.out))
    if args.progress == "jsonl":
        print(json.dumps({"event": "summary", "csv": str(csv_path), "json": str(json_path), **summary["cases"]}),
              flush=True)
    else:
        print_summary(summary)
        print(f"wrote {csv_path} and {json_path}", file=sys.stderr)
    if not records:
        print(f"error: no case found in {args.pred} or {args.truth}", file=sys.stderr)
        return 1
    return 0 if summary["cases"]["scored"] else 1

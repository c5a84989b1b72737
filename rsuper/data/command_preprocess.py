"""``rsuper preprocess``: CT + masks of a manifest -> the training cache (resumable, parallel)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .command_validate import MANIFEST_HELP

EPILOG = """\
examples:
  rsuper preprocess --manifest data/manifest.csv --cache cache/
  rsuper preprocess --manifest data/manifest.csv --cache cache/ --facts-jsonl facts.jsonl --workers 8

Per case: reorient to RAS, resample to --spacing (image trilinear or cubic, labels nearest), clip HU to
--hu-clip and z-score with the volume's own mean/std, binary tumour masks split into instances.
Re-running resumes: cases already cached from the same files and options are skipped. Cases that fail
are listed in <cache>/errors.jsonl and never stop the others. Exit status: 0 when every case is cached,
1 when some failed, 2 when the manifest cannot be read.

cache: <cache>/cases/<case_id>/{image.npy, organs.npy, tumours.npy, meta.json}, <cache>/index.json

""" + MANIFEST_HELP


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "preprocess",
        help="preprocess the cases of a manifest into the training cache",
        description="Reorient, resample and normalise every case of a dataset manifest and store it as "
        "NumPy arrays in a cache folder that training reads (memory-mapped).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", required=True, type=Path, help="the manifest, .csv or .jsonl")
    p.add_argument("--cache", required=True, type=Path, help="cache folder (created; resumed when it exists)")
    p.add_argument("--facts-jsonl", type=Path,
                   help="facts JSON Lines (as written by 'rsuper extract') joined on case_id for rows without facts")
    p.add_argument("--label-map", type=Path, help="label map JSON of the organ masks (default: R-Super's 35 labels)")
    p.add_argument("--spacing", nargs=3, type=float, default=[1.0, 1.0, 1.0], metavar=("R", "A", "S"),
                   help="target voxel size in mm (default 1 1 1)")
    p.add_argument("--hu-clip", nargs=2, type=float, default=[-991.0, 500.0], metavar=("LOW", "HIGH"),
                   help="HU range kept before z-scoring (default -991 500)")
    p.add_argument("--image-order", type=int, choices=(1, 3), default=1,
                   help="image interpolation: 1 trilinear (default), 3 cubic B-spline")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    return p


def run(args: argparse.Namespace) -> int:
    from .manifest import read_manifest
    from .preprocess import PreprocessOptions, preprocess_manifest

    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        options = PreprocessOptions(spacing_mm=tuple(args.spacing), hu_clip=tuple(args.hu_clip),
                                    image_order=args.image_order)
        manifest = read_manifest(args.manifest, facts_jsonl=args.facts_jsonl, label_map=args.label_map)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = preprocess_manifest(manifest, args.cache, options, workers=args.workers, progress=args.progress)
    if args.progress == "jsonl":
        print(json.dumps({"event": "summary", **summary.as_dict()}), flush=True)
    else:
        for case_id, reason in summary.failed:
            print(f"failed: {case_id}: {reason}", file=sys.stderr)
        print(f"{summary.done} preprocessed, {summary.skipped} already cached, {len(summary.failed)} failed "
              f"in {summary.elapsed_s:.1f} s -> {args.cache}", file=sys.stderr)
    return 1 if summary.failed else 0

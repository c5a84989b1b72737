"""``rsuper validate``: check a dataset manifest before preprocessing or training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MANIFEST_HELP = """\
manifest (CSV or JSON Lines, one row per case; relative paths are relative to the manifest's folder):
  case_id   required, unique; also the cache folder name
  ct        required (alias: image): CT NIfTI in HU
  organs    optional: organ / sub-segment label NIfTI (label map: --label-map, default R-Super's 35 labels)
  tumours   optional: tumour mask NIfTI, binary (split into connected components) or instance labels
  facts     optional: facts .json of the report (ReportFacts form); empty rows may take theirs from --facts-jsonl
  split     optional: train (default), val or test
  other columns (e.g. report) are kept.
A tumour mask wins over facts. Format and problem codes: docs/dataset-manifest.md
"""

EPILOG = """\
examples:
  rsuper validate --manifest data/manifest.csv
  rsuper validate --manifest data/manifest.csv --facts-jsonl facts.jsonl --patch-mm 96 --json problems.json

Exit status: 0 when no case has an error (warnings allowed), 1 when any has, 2 when the manifest cannot be read.

""" + MANIFEST_HELP


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "validate",
        help="check a dataset manifest (files, geometry, labels, facts)",
        description="Check every case of a dataset manifest and list every problem: missing or unreadable "
        "files, CT/mask geometry mismatches, organ labels outside the label map, and report facts that "
        "cannot become supervision (no organ mask, organ absent, unknown or absurd sizes, too many tumours, "
        "sub-segments larger than the patch).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", required=True, type=Path, help="the manifest, .csv or .jsonl")
    p.add_argument("--facts-jsonl", type=Path,
                   help="facts JSON Lines (as written by 'rsuper extract') joined on case_id for rows without facts")
    p.add_argument("--label-map", type=Path, help="label map JSON of the organ masks (default: R-Super's 35 labels)")
    p.add_argument("--lesion-organs", nargs="+", default=["liver", "pancreas", "kidney"], metavar="ORGAN",
                   help="organs with a lesion channel (default: liver pancreas kidney)")
    p.add_argument("--patch-mm", nargs="+", type=float, metavar="MM",
                   help="training patch size in mm, one value or three (R A S): report sub-segments larger than it")
    p.add_argument("--max-tumours", type=int, default=10, help="tumours per organ a sample carries (default 10)")
    p.add_argument("--json", type=Path, help="also write the problems and the summary to this JSON file")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    return p


def run(args: argparse.Namespace) -> int:
    from rsuper.report.schema import ORGANS

    from .manifest import read_manifest
    from .validate import print_validation, problems_to_dict, validate_manifest

    bad = [o for o in args.lesion_organs if o not in ORGANS]
    if bad:
        print(f"error: unknown lesion organ(s) {', '.join(bad)}", file=sys.stderr)
        return 2
    if args.patch_mm is not None and len(args.patch_mm) not in (1, 3):
        print("error: --patch-mm takes one value or three", file=sys.stderr)
        return 2
    try:
        manifest = read_manifest(args.manifest, facts_jsonl=args.facts_jsonl, label_map=args.label_map)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = validate_manifest(manifest, lesion_organs=tuple(args.lesion_organs), patch_size_mm=args.patch_mm,
                                 max_tumours=args.max_tumours, progress=args.progress)
    report = problems_to_dict(manifest, problems)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.progress == "jsonl":
        print(json.dumps({"event": "summary", **report["summary"]}), flush=True)
    else:
        print_validation(manifest, problems)
    return 1 if report["summary"]["n_errors"] else 0

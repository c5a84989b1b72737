"""``rsuper predict``: segment tumours in a CT (or a folder of CTs) with a trained model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  rsuper predict --model runs/ours/checkpoints/final.pt --ct ct.nii.gz --out tumours.nii.gz
  rsuper predict --model final.pt --ct ct.nii.gz --organs organs.nii.gz --out tumours.nii.gz \\
      --probabilities probabilities.nii.gz --tta
  rsuper predict --model final.pt --ct cts/ --organs organs/ --out predictions/ --device cuda

Outputs: tumours.nii.gz (0 = background, n = tumour n, on the CT's grid) and tumours.json (one record
per tumour: organ, sub-segment, volume, RECIST diameters, centroid, mean HU, max probability).
A folder of CTs (<case>.nii.gz, or <case>/ct.nii.gz) gives <out>/<case>.nii.gz and <out>/<case>.json;
cases whose .json exists are skipped unless --overwrite. Formats: docs/inference-and-comparison.md
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="segment tumours in CTs with a trained model",
        description="Segment tumours in a CT (or a folder of CTs) with an rsuper checkpoint: sliding-window "
        "inference on the model's grid, probabilities resampled back to the CT, thresholded, restricted to "
        "their organ, split into instances and measured.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint written by rsuper train (final.pt)")
    p.add_argument("--ct", required=True, type=Path, help="CT NIfTI, or a folder of them")
    p.add_argument("--organs", type=Path,
                   help="organ label mask on the CT's grid (or a folder); default: the model's own organ channels")
    p.add_argument("--out", required=True, type=Path, help="tumour label NIfTI to write (a folder for a CT folder)")
    p.add_argument("--json", type=Path, help="tumour records (default: --out with .json instead of .nii.gz)")
    p.add_argument("--probabilities", type=Path,
                   help="also write the lesion probabilities (4D uint8 NIfTI scaled to [0, 1]); "
                        "a folder for a CT folder")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap in [0, 1) (default 0.5)")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (4 passes per window)")
    p.add_argument("--threshold", type=float, default=0.5, help="lesion probability threshold (default 0.5)")
    p.add_argument("--min-volume-mm3", type=float, default=50.0, help="smallest tumour kept, mm³ (default 50)")
    p.add_argument("--organ-margin-mm", type=float, default=3.0,
                   help="keep lesion voxels within this distance of their organ, mm (default 3)")
    p.add_argument("--no-organ-restriction", action="store_true", help="do not restrict lesions to their organ")
    p.add_argument("--label-map", type=Path, help="JSON label map of --organs (default: the model's)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per forward pass (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA average")
    p.add_argument("--overwrite", action="store_true", help="folder mode: redo cases already predicted")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    return p


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _options(args: argparse.Namespace) -> Any:
    from .pipeline import PredictOptions

    return PredictOptions(
        overlap=args.overlap, tta=args.tta, threshold=args.threshold, min_volume_mm3=args.min_volume_mm3,
        organ_margin_mm=args.organ_margin_mm, restrict_to_organ=not args.no_organ_restriction,
        batch_size=args.batch_size, amp=args.amp, keep_probabilities=args.probabilities is not None,
    )


def _predict_one(loaded: Any, options: Any, label_map: Any, ct_path: Path, organs_path: Path | None,
                 out: Path, json_path: Path | None, probs: Path | None, case_id: str, progress: Any) -> Any:
    import nibabel as nib

    from .output import write_prediction
    from .pipeline import predict_case

    ct = nib.load(str(ct_path))
    organs = nib.load(str(organs_path)) if organs_path is not None else None
    prediction = predict_case(loaded, ct, organs, options, label_map, progress)
    write_prediction(prediction, ct, out, case_id=case_id, model=loaded.describe(), ct_path=ct_path,
                     json_path=json_path, probabilities_path=probs)
    return prediction


def run(args: argparse.Namespace) -> int:
    import torch
    from nibabel.filebasedimages import ImageFileError

    from rsuper.model.registry import ModelSpecError
    from rsuper.progress import Progress
    from rsuper.train.checkpoint import CheckpointError

    from .cases import find_case_files, nifti_case_id
    from .model_io import load_model
    from .volumes import InputError

    if not 0.0 <= args.overlap < 1.0:
        return _error("--overlap must be in [0, 1)")
    if args.batch_size < 1:
        return _error("--batch-size must be >= 1")
    try:
        options = _options(args)
    except ValueError as exc:
        return _error(str(exc))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return _error(f"--device {args.device}: CUDA is not available on this machine")
    if not args.ct.exists():
        return _error(f"--ct {args.ct} does not exist")
    if args.organs is not None and not args.organs.exists():
        return _error(f"--organs {args.organs} does not exist")
    label_map = None
    if args.label_map is not None:
        from rsuper.anatomy.label_maps import read_label_map

        try:
            label_map = read_label_map(args.label_map)
        except (OSError, ValueError, KeyError) as exc:
            return _error(f"--label-map: {exc}")
    try:
        loaded = load_model(args.model, device=args.device, ema=not args.no_ema)
    except (CheckpointError, ModelSpecError) as exc:
        return _error(str(exc))

    if not args.ct.is_dir():
        if args.organs is not None and args.organs.is_dir():
            return _error("--organs is a folder but --ct is a single file")
        bar: dict[str, Progress] = {}

        def windows(done: int, total: int) -> None:
            if "bar" not in bar:
                bar["bar"] = Progress(total, mode=args.progress, desc="predict")
            bar["bar"].update(done - bar["bar"].done)

        case_id = nifti_case_id(args.ct) or args.ct.stem
        try:
            prediction = _predict_one(loaded, options, label_map, args.ct, args.organs, args.out, args.json,
                                      args.probabilities, case_id, windows)
        except (InputError, OSError, ValueError, ImageFileError) as exc:
            return _error(f"{args.ct}: {exc}")
        summary = {"tumours": len(prediction.records), "out": str(args.out)}
        if "bar" in bar:
            bar["bar"].close(**summary)
        if args.progress != "jsonl":
            print(f"{len(prediction.records)} tumour(s) written to {args.out}", file=sys.stderr)
        return 0

    if args.organs is not None and not args.organs.is_dir():
        return _error("--ct is a folder, so --organs must be a folder too")
    cts = find_case_files(args.ct, "ct")
    organs = find_case_files(args.organs, "organs") if args.organs is not None else {}
    if args.probabilities is not None and args.probabilities.exists() and not args.probabilities.is_dir():
        return _error("--ct is a folder, so --probabilities must be a folder")
    if args.json is not None:
        return _error("--json names one file; with a folder of CTs the records go to <out>/<case>.json")
    args.out.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(cts), mode=args.progress, desc="predict")
    failed = skipped = 0
    for case_id, ct_path in cts.items():
        out = args.out / f"{case_id}.nii.gz"
        if not args.overwrite and (args.out / f"{case_id}.json").exists():
            skipped += 1
            progress.update(1, case_id=case_id, skipped=True)
            continue
        if args.organs is not None and case_id not in organs:
            failed += 1
            progress.event("error", case_id=case_id, reason="no organ mask for this case")
            progress.update(1, case_id=case_id)
            continue
        probs = args.probabilities / f"{case_id}.nii.gz" if args.probabilities is not None else None
        try:
            prediction = _predict_one(loaded, options, label_map, ct_path, organs.get(case_id), out, None, probs,
                                      case_id, None)
        except Exception as exc:  # a broken case never stops the others; the reason is reported
            failed += 1
            progress.event("error", case_id=case_id, reason=f"{type(exc).__name__}: {exc}")
            if args.progress not in ("jsonl", "bar"):
                print(f"error: {case_id}: {exc}", file=sys.stderr)
            progress.update(1, case_id=case_id)
            continue
        progress.update(1, case_id=case_id, tumours=len(prediction.records))
    progress.close(failed=failed, skipped=skipped)
    if args.progress != "jsonl":
        print(f"{len(cts) - failed - skipped} case(s) predicted, {skipped} skipped, {failed} failed "
              f"({args.out})", file=sys.stderr)
    return 1 if failed else 0

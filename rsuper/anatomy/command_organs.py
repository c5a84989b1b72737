"""``rsuper organs``: organ masks for CTs, from a trained nnU-Net v2 model or imported from elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  rsuper organs --ct ct.nii.gz --model ~/models/OrganSubSegmenter --out organs.nii.gz
  rsuper organs --ct cts/ --model ~/models/Dataset300/nnUNetTrainer__nnUNetPlans__3d_fullres --out organs/ --device cuda
  rsuper organs --import totalseg_out/segmentations --ct ct.nii.gz --out organs.nii.gz
  rsuper organs --import mask.nii.gz --source-labels dataset.json --out organs.nii.gz

--model is a trained nnU-Net v2 model folder you supply (for example the organ model the
R-Super authors publish, downloaded by you beforehand); nothing is downloaded at run time.
It holds dataset.json, plans.json and fold_*/checkpoint_final.pth; the dataset folder above
it is accepted when it holds one trained model.

Output: one uint8 NIfTI per CT with the CT's shape, affine and orientation, in the R-Super
label map (values 0-36; see docs/organ-masks.md); with --model-labels, the model's own values.
A folder of CTs gives OUT/<CT file name> per CT (an nnU-Net "_0000" channel suffix is dropped).
Exit status: 0 all written, 1 some CT or mask failed (others are still written),
2 bad arguments or an unusable model folder.
"""

_NIFTI = (".nii.gz", ".nii")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "organs",
        help="organ masks: run a trained nnU-Net v2 model on CTs, or import masks",
        description="Organ and sub-segment masks for CTs: predicted by a trained nnU-Net v2 model folder "
        "that you supply (nnU-Net's own predictor, in-process), or imported from other tools "
        "(TotalSegmentator folders, multi-label NIfTI) and converted to the R-Super label map. A whole "
        "pancreas is split into head, body and tail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="trained nnU-Net v2 model folder (user-supplied, see below)")
    source.add_argument("--import", dest="import_path", type=Path,
                        help="masks to convert: a folder of one NIfTI per structure, or one multi-label NIfTI")
    p.add_argument("--ct", nargs="+", type=Path,
                   help="with --model: CT files (NIfTI) and/or folders of them; with --import: the CT the masks "
                        "belong to (optional; shape and affine are checked against it)")
    p.add_argument("--out", required=True, type=Path,
                   help="output .nii.gz file (one CT / import), or a folder (several CTs)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    p.add_argument("--folds", nargs="+", help="folds to use, e.g. 0 1 2 3 4 or all (default: every fold found)")
    p.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in each fold folder")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                   help="test-time mirroring: slightly better masks, 2-8x slower (default: off)")
    p.add_argument("--step-size", type=float, default=0.5,
                   help="sliding-window step as a fraction of the patch (default 0.5; up to 1 is faster)")
    p.add_argument("--reorient", metavar="CODES",
                   help="turn each CT to these axis codes (e.g. RAS, LPS) before prediction and the mask back "
                        "after; for models trained on CTs of one orientation (default: CT as stored, as nnU-Net)")
    p.add_argument("--split-pancreas", choices=("auto", "off"), default="auto",
                   help="auto: split a whole-pancreas mask into head/body/tail (default); off: keep it whole")
    p.add_argument("--model-labels", action="store_true",
                   help="write the model's own label values (its dataset.json) instead of the R-Super map")
    p.add_argument("--source-labels", type=Path,
                   help="with --import of one multi-label NIfTI: its label map (nnU-Net dataset.json or a "
                        "rsuper label-map JSON); default: the values already follow the R-Super map")
    p.add_argument("--skip-existing", action="store_true", help="leave CTs whose output file exists alone")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    return p


def run(args: argparse.Namespace) -> int:
    if args.import_path is not None:
        return _run_import(args)
    return _run_model(args)


def _run_model(args: argparse.Namespace) -> int:
    from .nnunet_model import NnunetModel, NnunetModelError
    from .nnunet_runner import check_axcodes, predict_organs

    try:
        if not args.ct:
            raise ValueError("--model needs --ct (CT files or folders)")
        if args.source_labels is not None:
            raise ValueError("--source-labels goes with --import; a model's labels come from its dataset.json")
        if args.reorient is not None:
            check_axcodes(args.reorient)
        cts = _gather_cts(args.ct)
        outs = _output_paths(cts, args.out)
        model = NnunetModel.open(args.model, folds=args.folds, checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError) as exc:  # NnunetModelError is a ValueError
        return _fail(str(exc))
    todo = [(c, o) for c, o in zip(cts, outs) if not (args.skip_existing and o.exists())]
    postprocess = None
    if not args.model_labels:
        postprocess, unknown = _rsuper_postprocess(model.label_map, args.split_pancreas == "auto")
        if unknown:
            _note(args, f"model labels without an R-Super label, left out: {', '.join(unknown)} "
                        "(use --model-labels to keep the model's own values)")
    try:
        results = predict_organs(
            [c for c, _ in todo], model, [o for _, o in todo], device=args.device, step_size=args.step_size,
            use_mirroring=args.tta, progress=args.progress, postprocess=postprocess, reorient=args.reorient,
        ) if todo else []
    except (NnunetModelError, ValueError) as exc:
        return _fail(str(exc))
    failed = [r for r in results if not r.ok]
    for r in results:
        for message in r.messages:
            _note(args, f"{r.ct_path.name}: {message}")
    summary = {
        "written": len(results) - len(failed), "skipped": len(cts) - len(todo), "failed": len(failed),
        "errors": [r.error for r in failed], "seconds": round(sum(r.seconds for r in results), 2),
        "label_map": "model" if args.model_labels else "rsuper_organs_import",
    }
    if args.progress == "jsonl":
        print(json.dumps({"event": "summary", **summary}), flush=True)
    else:
        print(f"{summary['written']} of {len(cts)} CTs written to {args.out} ({summary['skipped']} skipped, "
              f"{summary['failed']} failed) in {summary['seconds']} s", file=sys.stderr)
        for error in summary["errors"]:
            print(f"error: {error}", file=sys.stderr)
    return 1 if failed else 0


def _run_import(args: argparse.Namespace) -> int:
    from .importers import import_masks
    from .nnunet_runner import load_ct, write_labels

    reference = None
    try:
        if args.ct is not None and len(args.ct) != 1:
            raise ValueError("--import takes at most one --ct (the CT the masks belong to)")
        if not args.import_path.exists():
            raise FileNotFoundError(f"{args.import_path}: no such file or folder")
        if args.source_labels is not None and args.import_path.is_dir():
            raise ValueError("--source-labels applies to one multi-label NIfTI, not to a folder of masks")
        if not args.out.name.endswith(_NIFTI):
            raise ValueError(f"--out {args.out}: give a .nii.gz or .nii file name for imported masks")
        if args.ct:
            reference = load_ct(args.ct[0])
    except (ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    try:
        masks = import_masks(args.import_path, reference_ct=args.ct[0] if args.ct else None,
                             label_map=args.source_labels)
        labels, messages = masks.labels, list(masks.messages)
        if args.split_pancreas == "auto" and masks.has_whole_pancreas:
            from .pancreas_split import split_pancreas

            split = split_pancreas(labels, masks.affine, masks.label_map)
            labels = split.labels
            messages += split.messages
        import nibabel as nib

        write_labels(labels, reference if reference is not None else nib.Nifti1Image(labels, masks.affine), args.out)
    except (ValueError, OSError) as exc:  # GeometryError is a ValueError
        return _fail(str(exc), code=1)
    for message in messages:
        _note(args, message)
    if args.progress == "jsonl":
        print(json.dumps({"event": "summary", "written": 1, "out": str(args.out), "messages": messages,
                          "unknown_names": masks.unknown_names}), flush=True)
    else:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _rsuper_postprocess(model_map: Any, split: bool) -> tuple[Any, list[str]]:
    """A post-processing step mapping the model's labels to the R-Super import map, and the names it drops."""
    from .importers import to_rsuper_labels
    from .label_maps import rsuper_name_of
    from .labels import RSUPER_IMPORT_LABELS, WHOLE_PANCREAS_LABEL

    unknown = [n for v, n in sorted(model_map.labels.items()) if v and rsuper_name_of(n) is None]

    def convert(labels: Any, affine: Any) -> tuple[Any, list[str]]:
        converted, _ = to_rsuper_labels(labels, model_map)
        messages: list[str] = []
        if split and (converted == WHOLE_PANCREAS_LABEL).any():
            from .pancreas_split import split_pancreas

            result = split_pancreas(converted, affine, RSUPER_IMPORT_LABELS)
            converted, messages = result.labels, list(result.messages)
        return converted, messages

    return convert, unknown


def _gather_cts(items: list[Path]) -> list[Path]:
    """CT files: given files, plus the NIfTI files directly inside given folders (sorted)."""
    cts: list[Path] = []
    for item in items:
        if item.is_dir():
            found = sorted(p for p in item.iterdir()
                           if p.is_file() and p.name.endswith(_NIFTI) and not p.name.startswith("."))
            if not found:
                raise ValueError(f"{item}: no .nii.gz / .nii files in this folder")
            cts += found
        elif item.is_file():
            cts.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such CT file or folder")
    return cts


def _output_paths(cts: list[Path], out: Path) -> list[Path]:
    """One output file per CT: ``out`` itself for a single CT and a NIfTI name, else ``out/<CT name>``."""
    if out.name.endswith(_NIFTI):
        if len(cts) != 1:
            raise ValueError(f"--out {out} is a file name but there are {len(cts)} CTs; give a folder")
        outs = [out]
    else:
        outs = [out / _case_file_name(ct) for ct in cts]
    seen: dict[Path, Path] = {}
    for ct, o in zip(cts, outs):
        if o.resolve() in seen:
            raise ValueError(f"{ct} and {seen[o.resolve()]} would both be written to {o}")
        seen[o.resolve()] = ct
    inputs = {c.resolve() for c in cts}
    clash = [o for o in outs if o.resolve() in inputs]
    if clash:
        raise ValueError(f"{clash[0]}: the output would overwrite a CT; choose another --out")
    return outs


def _case_file_name(ct: Path) -> str:
    """``case_0000.nii.gz`` -> ``case.nii.gz`` (nnU-Net channel suffix dropped); other names unchanged."""
    suffix = next(s for s in _NIFTI if ct.name.endswith(s)) if ct.name.endswith(_NIFTI) else ""
    stem = ct.name[: len(ct.name) - len(suffix)]
    if stem.endswith("_0000"):
        stem = stem[:-5]
    return f"{stem}{suffix or '.nii.gz'}"


def _note(args: argparse.Namespace, message: str) -> None:
    if args.progress != "jsonl":
        print(f"note: {message}", file=sys.stderr)
    else:
        print(json.dumps({"event": "note", "message": message}), flush=True)


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code

"""Benchmark: inference time and peak memory for a full-size CT, rsuper vs MONAI's sliding window.

A synthetic 512 x 512 x 300 CT (0.8 x 0.8 x 2.0 mm, int16 HU: a body of soft
tissue with bright spheres, an organ mask with liver segments) is segmented by
a small untrained U-Net (``rsuper.model.unet.UNet3D``, 6 channels: 3 organs, 3
lesions) working at ``--spacing`` mm. Each row runs in a fresh process; its
peak resident memory is the kernel's high-water mark (``VmHWM``) reset just
before the measured call, so the inputs (CT, mask, model) are not counted in
"peak during", only in "RSS before".

Rows:

* ``monai``: ``monai.inferers.sliding_window_inference`` (Gaussian blending,
  sigmoid of the final head) on the preprocessed model-grid volume, all channels;
* ``rsuper-probs``: :func:`rsuper.infer.sliding.predict_probabilities`, the
  same call as rsuper makes it (same volume, all channels); the table shows
  the largest difference to the MONAI row's probabilities;
* ``rsuper-predict``: :func:`rsuper.infer.pipeline.predict_case` end to end,
  from the in-memory NIfTI to tumour instances and records on the CT grid
  (preprocessing, lesion channels, resampling back, organ restriction,
  measurements), with the organ mask given, threshold 0.5;
* ``rsuper-predict-worst``: the same with threshold 0, so that every voxel of
  every lesion channel is a candidate: the whole CT grid is resampled,
  restricted and labelled for each channel (the memory bound of the
  post-processing; a trained model's lesions cover a small box of the CT);
* ``rsuper-predict-tta`` (``--tta``): the first end-to-end row with flip TTA.

Usage::

    python bench/bench_infer.py                     # CPU, the table of docs/benchmarks.md
    python bench/bench_infer.py --device cuda --tta
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (512, 512, 300)
SPACING = (0.8, 0.8, 2.0)
ROWS = ("monai", "rsuper-probs", "rsuper-predict", "rsuper-predict-worst", "rsuper-predict-tta")


def make_ct() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ct int16 HU, organs uint8, affine)`` of the synthetic CT (about 2 s)."""
    from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS

    rng = np.random.default_rng(0)
    i, j = np.ogrid[: SHAPE[0], : SHAPE[1]]
    body = ((i - 256) / 230.0) ** 2 + ((j - 256) / 170.0) ** 2 <= 1.0
    ct = np.full(SHAPE, -1000, np.int16)
    ct[body] = 40
    ct += rng.integers(-15, 16, SHAPE, dtype=np.int16)
    organs = np.zeros(SHAPE, np.uint8)
    organs[120:260, 180:340, 60:240] = RSUPER_ORGAN_LABELS.label_of("liver_segment_5")
    for c in ((180, 250, 120), (230, 300, 200), (380, 250, 150)):
        sl = tuple(slice(v - 15, v + 15) for v in c)
        ct[sl] = 300
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = -(np.asarray(SHAPE) - 1) / 2 * np.asarray(SPACING)
    return ct, organs, affine


def _peak_reset() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(args: argparse.Namespace) -> dict:
    """Run one row in this process and return its figures."""
    import nibabel as nib
    import torch
    from monai.inferers import sliding_window_inference

    from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS
    from rsuper.data.classes import ClassList
    from rsuper.data.preprocess import normalise, resample, target_grid
    from rsuper.infer.model_io import LoadedModel
    from rsuper.infer.pipeline import PredictOptions, predict_case
    from rsuper.infer.sliding import predict_probabilities
    from rsuper.model.registry import as_heads
    from rsuper.model.unet import UNet3D

    torch.manual_seed(0)
    classes = ClassList()
    model = UNet3D(1, classes.n_channels, features=tuple(args.features), deep_supervision=1).to(args.device).eval()
    ct, organs, affine = make_ct()
    ct_img, organs_img = nib.Nifti1Image(ct, affine), nib.Nifti1Image(organs, affine)
    patch = (args.patch,) * 3
    image = None
    if args.row in ("monai", "rsuper-probs"):
        hu = np.asarray(ct_img.dataobj, dtype=np.float32)
        shape, scale, offset, _ = target_grid(hu.shape, affine, (args.spacing,) * 3)
        image = torch.from_numpy(normalise(resample(hu, shape, scale, offset, 1, np.float32), (-991.0, 500.0)))
        del hu
    rss_before = _rss_mib("VmRSS")
    _peak_reset()
    t0 = time.perf_counter()
    extra: dict = {}
    with torch.inference_mode():
        if args.row == "monai":
            out = sliding_window_inference(
                image[None, None], roi_size=patch, sw_batch_size=args.batch,
                predictor=lambda x: torch.sigmoid(as_heads(model(x))[0]), overlap=args.overlap, mode="gaussian",
                sw_device=torch.device(args.device), device=torch.device("cpu"))
            probs = out[0].numpy()
            np.save(args.scratch / "monai.npy", probs[:, ::7, ::7, ::7])
            extra["grid"] = list(probs.shape[1:])
        elif args.row == "rsuper-probs":
            probs = predict_probabilities(model, image, patch, overlap=args.overlap, batch_size=args.batch,
                                          device=args.device)
            reference = args.scratch / "monai.npy"  # written by the monai row, when it ran first
            if reference.exists():
                extra["max_diff_vs_monai"] = float(np.abs(probs[:, ::7, ::7, ::7] - np.load(reference)).max())
        else:
            loaded = LoadedModel(model, classes, RSUPER_ORGAN_LABELS, (args.spacing,) * 3, (-991.0, 500.0), patch,
                                 Path("-"), False)
            prediction = predict_case(loaded, ct_img, organs_img, PredictOptions(
                overlap=args.overlap, batch_size=args.batch, tta=args.row.endswith("tta"),
                threshold=0.0 if args.row.endswith("worst") else 0.5))
            extra["tumours"] = len(prediction.records)
            extra["tumour_voxels"] = int((prediction.labels > 0).sum())
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"row": args.row, "seconds": round(seconds, 1), "rss_before_mib": round(rss_before),
            "peak_during_mib": round(_rss_mib("VmHWM")), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--spacing", type=float, default=1.5, help="model grid spacing, mm (default 1.5)")
    parser.add_argument("--patch", type=int, default=96, help="window size, voxels (default 96)")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=2, help="windows per forward pass")
    parser.add_argument("--features", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--tta", action="store_true", help="also time the end-to-end prediction with flip TTA")
    parser.add_argument("--rows", nargs="+", choices=ROWS, help="rows to run (default: all but the TTA one)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(child(args)), flush=True)
        return
    import tempfile

    rows = args.rows or ["monai", "rsuper-probs", "rsuper-predict", "rsuper-predict-worst"]
    rows += ["rsuper-predict-tta"] if args.tta else []
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            cmd = [sys.executable, __file__, "--row", row, "--scratch", scratch, "--device", args.device,
                   "--spacing", str(args.spacing), "--patch", str(args.patch), "--overlap", str(args.overlap),
                   "--batch", str(args.batch), "--features", *map(str, args.features)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"CT {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} at {SPACING} mm; model grid {args.spacing} mm; UNet3D features {args.features}, 6 channels; patch {args.patch}, "
          f"overlap {args.overlap}, batch {args.batch}, device {args.device}")
    print("| row | seconds | RSS before (MiB) | peak RSS during (MiB) | peak - before (MiB) | notes |")
    print("|---|--:|--:|--:|--:|---|")
    for r in results:
        notes = ", ".join(f"{k} {v}" for k, v in r.items()
                          if k not in ("row", "seconds", "rss_before_mib", "peak_during_mib", "grid"))
        print(f"| {r['row']} | {r['seconds']} | {r['rss_before_mib']} | {r['peak_during_mib']} | "
              f"{r['peak_during_mib'] - r['rss_before_mib']} | {notes} |")


if __name__ == "__main__":
    main()

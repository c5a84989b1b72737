"""Benchmark: R-Super training throughput and sliding-window inference speed on phantoms.

Builds ``--cases`` phantoms (half with tumour masks, half with report facts
only), runs ``rsuper train``'s code path for ``--steps`` steps of the mixed
stage (segmentation + Volume + Ball losses), and segments one case with the
trained model. Prints one table row per configuration::

    python bench/bench_train.py --device cpu --patch 64 --features 8 16 32 64 --steps 20
    python bench/bench_train.py --device cuda --patch 128 --steps 60 --amp both
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from rsuper.data.phantom import make_phantom
from rsuper.train.job import read_events
from rsuper.train.run import TrainingRequest, run_training


def make_data(root: Path, n: int) -> Path:
    """``n`` default-size phantoms; even ones keep their masks, odd ones only their facts."""
    rows = [["case_id", "ct", "organs", "tumours", "facts"]]
    for i in range(n):
        case = f"case_{i:02d}"
        make_phantom(100 + i, n_tumours=(1, 2), case_id=case).save(root / case)
        mask = i % 2 == 0
        rows.append([case, f"{case}/ct.nii.gz", f"{case}/organs.nii.gz",
                     f"{case}/tumours.nii.gz" if mask else "", "" if mask else f"{case}/facts.json"])
    with open(root / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root / "manifest.csv"


def run_one(root: Path, args: argparse.Namespace, amp: bool) -> dict[str, float | str]:
    """Train ``args.steps`` steps; return throughput, memory and inference time."""
    job = root / f"job_{args.device}_{args.patch}_{'amp' if amp else 'fp32'}"
    config = {
        "data": {"manifest": str(root / "manifest.csv"), "cache": str(root / "cache"),
                 "spacing_mm": [args.spacing] * 3, "patch_size": [args.patch] * 3, "batch_size": args.batch,
                 "workers": args.workers, "preprocess_workers": args.workers or 1},
        "model": {"class": "rsuper.model.unet:UNet3D",
                  "kwargs": {"features": list(args.features), "deep_supervision": 1}},
        "optim": {"amp": amp, "warmup_steps": 5},
        "stages": [{"name": "mixed", "steps": args.steps, "lr": 1e-4, "data": "all", "report_weight": 0.1}],
        "device": args.device, "log_every": 5, "checkpoint_every": 10 ** 6,
    }
    path = root / f"{job.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    run_training(TrainingRequest(job=job, config=path))
    events = [e for e in read_events(job / "progress.jsonl")[0] if e["event"] == "progress"]
    rates = [e["samples_per_s"] for e in events[1:]] or [events[-1]["samples_per_s"]]
    memory = torch.cuda.max_memory_allocated() / 2 ** 30 if args.device.startswith("cuda") else float("nan")

    from rsuper.data.cache import load_cached_case
    from rsuper.data.classes import ClassList
    from rsuper.infer.sliding import predict_probabilities
    from rsuper.model.registry import build_model
    from rsuper.train.checkpoint import load_checkpoint
    from rsuper.train.weights import checkpoint_weights

    ckpt = load_checkpoint(job / "checkpoints" / "final.pt")
    model = build_model({"class": "rsuper.model.unet:UNet3D", "kwargs": config["model"]["kwargs"]}, 1,
                        ClassList.from_dict(ckpt["classes"]).n_channels).to(args.device)
    model.load_state_dict(checkpoint_weights(ckpt))
    case = load_cached_case(root / "cache", "case_00")
    predict_probabilities(model, np.asarray(case.image), args.patch, device=args.device, amp=amp)  # warm-up
    t0 = time.perf_counter()
    predict_probabilities(model, np.asarray(case.image), args.patch, device=args.device, amp=amp)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    infer_s = time.perf_counter() - t0
    return {"device": args.device, "amp": "bf16" if amp and args.device.startswith("cuda") else "fp32",
            "patch": f"{args.patch}^3", "batch": args.batch, "samples/s": statistics.median(rates),
            "s/step": args.batch / statistics.median(rates), "peak GiB": memory,
            "volume": "x".join(map(str, case.shape)), "infer s/case": infer_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--spacing", type=float, default=1.5, help="training grid (mm)")
    p.add_argument("--features", type=int, nargs="+", default=[32, 64, 128, 256, 320])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--amp", choices=("on", "off", "both"), default="on")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root, args.cases)
        modes = {"on": [True], "off": [False], "both": [True, False]}[args.amp]
        rows = [run_one(root, args, amp) for amp in modes]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()

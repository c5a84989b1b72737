"""Benchmark of the R-Super losses: forward + backward time per training step.

Batch: B = 2 samples, 1 lesion channel, an N^3 patch at 1 mm (default 128^3):
sample 0 is a report case (an organ of radius 35 mm as chosen segment and
unknown region, two reported tumours of 30 and 15 mm), sample 1 a mask case
(a labelled 12 mm tumour). Rows:

* segmentation loss alone (masked BCE + adaptive Tversky, unknown margin included);
* volume loss, ball loss, and the full combined loss on two heads;
* ball response of one 30 mm tumour on one patch: the FFT filter used by the
  ball loss vs a direct ``conv3d`` with the same kernel (forward only).

Usage::

    python bench/bench_losses.py [--device cuda] [--size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from rsuper.losses import (
    RSuperLossConfig,
    SupervisionBatch,
    ball_filter,
    ball_kernel,
    ball_loss,
    known_voxels,
    masked_segmentation_loss,
    rsuper_loss,
    volume_loss,
)
from rsuper.losses.geometry import squared_distance_map

SPACING = (1.0, 1.0, 1.0)


def sphere(size: int, centre: tuple[int, int, int], radius_mm: float, device: torch.device) -> torch.Tensor:
    """``(size, size, size)`` bool ball at a voxel centre (1 mm spacing)."""
    centre_t = torch.tensor([centre], device=device)
    spacing = torch.ones(1, 3, dtype=torch.float64, device=device)
    return squared_distance_map((size,) * 3, centre_t, spacing)[0] <= radius_mm**2


def make_batch(size: int, device: torch.device) -> tuple[torch.Tensor, SupervisionBatch]:
    """Logits ``(2, 1, N, N, N)`` (requires grad) and the matching supervision."""
    mid = size // 2
    organ = sphere(size, (mid, mid, mid), 35.0, device)
    target = torch.zeros(2, 1, size, size, size, device=device)
    target[1, 0] = sphere(size, (mid, mid, mid), 6.0, device).float()
    unknown = torch.zeros_like(target, dtype=torch.bool)
    unknown[0, 0] = organ
    chosen = unknown.clone()
    report = torch.zeros(2, 10, 3, device=device)
    report[0, 0] = torch.tensor([30.0, 28.0, 25.0])
    report[0, 1] = torch.tensor([15.0, 12.0, 0.0])
    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(2, 1, size, size, size, generator=gen, device=device) * 2 - 3
    return logits.requires_grad_(True), SupervisionBatch(target, unknown, chosen, report, spacing_mm=SPACING)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--size", type=int, default=128, help="patch edge in voxels (1 mm)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median reported)")
    parser.add_argument("--diameter", type=float, default=30.0, help="tumour diameter (mm) for the response rows")
    parser.add_argument("--skip-direct", action="store_true", help="skip the (slow) direct conv3d row")
    args = parser.parse_args()
    device = torch.device(args.device)
    logits, batch = make_batch(args.size, device)

    def backward(loss: torch.Tensor) -> None:
        logits.grad = None
        loss.backward()

    def seg() -> None:
        known = known_voxels(batch.unknown, SPACING, 2.5)
        backward(masked_segmentation_loss(logits, batch.target, known).total)

    def volume() -> None:
        backward(volume_loss(logits, batch.chosen_segment, SPACING, batch.diameters_mm))

    def ball() -> None:
        terms = ball_loss(logits, batch.chosen_segment, batch.diameters_mm, SPACING, batch.target, batch.unknown)
        backward(terms.total)

    aux = logits.detach().clone().requires_grad_(True)

    def combined() -> None:
        aux.grad = None
        backward(rsuper_loss([logits, aux], batch, RSuperLossConfig()).total)

    shape = f"2x1x{args.size}^3"
    rows = [
        (f"segmentation loss alone ({shape}, fwd+bwd)", timed(seg, device, args.repeats)),
        (f"volume loss ({shape}, fwd+bwd)", timed(volume, device, args.repeats)),
        (f"ball loss, 2 tumours ({shape}, fwd+bwd)", timed(ball, device, args.repeats)),
        (f"combined, 2 heads ({shape}, fwd+bwd)", timed(combined, device, args.repeats)),
    ]

    volume_1 = torch.rand(1, args.size, args.size, args.size, device=device)
    radius = torch.tensor([args.diameter / 2], device=device)
    spacing = torch.ones(1, 3, dtype=torch.float64, device=device)
    rows.append(
        (
            f"ball response {args.diameter:g} mm, FFT (1x{args.size}^3)",
            timed(lambda: ball_filter(volume_1, radius, spacing, 1.5, True), device, args.repeats),
        )
    )
    if not args.skip_direct:
        kernel = ball_kernel(args.diameter, SPACING, 1.5, True).float().to(device)[None, None]
        with torch.no_grad():
            direct = timed(lambda: F.conv3d(volume_1[None], kernel, padding="same"), device, 1)
        rows.append((f"ball response {args.diameter:g} mm, direct conv3d {tuple(kernel.shape[2:])} kernel", direct))

    table = Table(title=f"R-Super losses on {device} ({torch.get_num_threads()} threads, torch {torch.__version__})")
    table.add_column("operation")
    table.add_column("time (s)", justify="right")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()

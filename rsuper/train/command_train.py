"""``rsuper train``: run R-Super training as a background-friendly job folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Train a 3D tumour segmenter from CT-mask cases and CT-report cases (R-Super).

The job folder (--job) is what a GUI or another shell follows:
  status.json      state (starting/running/stopping/stopped/finished/failed), stage, step, loss, ETA
  progress.jsonl   one JSON event per line: progress (step, epoch, loss terms, lr, samples/s, ETA),
                   checkpoint, stage_start, stage_end, stopped, finished, failed
  log.txt          human-readable log
  problems.jsonl   every dataset problem found (case id, severity, code, message)
  config.yaml      the resolved configuration
  checkpoints/     latest.pt (resume), <stage>.pt (end of each stage), final.pt (segment with this)

Stop with SIGTERM (kill PID from status.json) or Ctrl-C: the run saves and exits; continue with
--resume JOB. Several GPUs / nodes: torchrun --nproc_per_node N -m rsuper train ...
"""

EPILOG = """\
examples:
  rsuper train --config train.yaml --job runs/pancreas
  rsuper train --config train.yaml --job runs/quick --set stages.0.steps=200 --set data.batch_size=4
  rsuper train --resume runs/pancreas
  rsuper train --config finetune.yaml --job runs/ours --init runs/pancreas/checkpoints/final.pt
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``rsuper train``."""
    p = sub.add_parser(
        "train", help="train a segmenter from masks + reports (job folder, resumable)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="train.yaml (see docs/training.md); not needed with --resume")
    p.add_argument("--job", type=Path, help="job folder to create (must not hold a previous run)")
    p.add_argument("--resume", type=Path, metavar="JOB", help="continue the run in this job folder exactly")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. optim.ema=0 or stages.1.lr=5e-5 (repeatable)")
    p.add_argument("--init", metavar="CHECKPOINT", help="fine-tune: start from these weights (init_checkpoint)")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="terminal progress: a bar, JSON-lines events on stdout, or nothing (default: auto)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run (or resume) a training job; 0 finished, 3 stopped on request, 1 failed, 2 bad arguments."""
    from rsuper.train.run import TrainingRequest, run_training

    if args.resume is None and (args.config is None or args.job is None):
        print("rsuper train: give --config and --job, or --resume JOB", file=sys.stderr)
        return 2
    if args.resume is not None and args.job is not None and args.job != args.resume:
        print("rsuper train: --job and --resume name different folders", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    if args.init:
        overrides.append(f"init_checkpoint={Path(args.init).resolve()}")
    request = TrainingRequest(
        job=args.resume or args.job, config=args.config, overrides=overrides,
        resume=args.resume is not None, progress=args.progress,
    )
    try:
        outcome = run_training(request)
    except Exception as exc:  # noqa: BLE001 - the traceback is in the job's log.txt; the shell gets one line
        print(f"rsuper train: {type(exc).__name__}: {exc} (details: {Path(request.job) / 'log.txt'})",
              file=sys.stderr)
        return 1
    print(f"{outcome.state} at step {outcome.global_step}; checkpoint: {outcome.checkpoint}")
    return 0 if outcome.state == "finished" else 3

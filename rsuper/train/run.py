"""One training job from request to final status: job folder, data, trainer, error handling."""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch.distributed as dist
import yaml

from rsuper.data.classes import ClassList
from rsuper.train.checkpoint import load_checkpoint
from rsuper.train.config import TrainConfig, config_from_dict, load_config
from rsuper.train.data_setup import prepare_training_data
from rsuper.train.distributed import DistContext, init_distributed, shutdown
from rsuper.train.job import JobFolder
from rsuper.train.trainer import Trainer, TrainResult


class JobError(RuntimeError):
    """The job folder cannot be used as asked (a previous run there, nothing to resume)."""


@dataclass
class TrainingRequest:
    """What ``rsuper train`` was asked to do.

    Attributes:
        job: the job folder.
        config: ``train.yaml`` (a new run; with ``resume`` the job's own copy is used).
        overrides: ``KEY=VALUE`` strings applied to the configuration.
        resume: continue from ``job/checkpoints/latest.pt``.
        progress: terminal progress mode.
    """

    job: Path
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    resume: bool = False
    progress: str = "none"


def _resolve_config(request: TrainingRequest, job: JobFolder) -> TrainConfig:
    if request.resume:
        if not job.config_path.exists():
            raise JobError(f"{job.root} holds no config.yaml: nothing to resume")
        stored = yaml.safe_load(job.config_path.read_text(encoding="utf-8"))
        return config_from_dict(stored, None, request.overrides)
    if job.config_path.exists() or (job.checkpoints_dir / "latest.pt").exists():
        raise JobError(f"{job.root} already holds a run; use --resume {job.root} or another --job folder")
    return load_config(request.config, request.overrides)


def run_training(request: TrainingRequest) -> TrainResult:
    """Run or resume the job; status, log and events go to the job folder (rank 0)."""
    job = JobFolder(request.job)
    config = _resolve_config(request, job)
    ctx: DistContext = init_distributed(config.device)
    try:
        if ctx.is_main:
            job.create()
            job.acquire_lock()
        try:
            return _run(request, job, config, ctx)
        except BaseException as exc:
            if ctx.is_main:
                job.log("failed:\n" + traceback.format_exc())
                job.event("failed", error=f"{type(exc).__name__}: {exc}")
                job.write_status(state="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if ctx.is_main:
                job.release_lock()
    finally:
        shutdown(ctx)


def _run(request: TrainingRequest, job: JobFolder, config: TrainConfig, ctx: DistContext) -> TrainResult:
    if ctx.is_main:
        job.write_status(state="starting", job=str(job.root))
        job.config_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
        job.log("resuming" if request.resume else f"new run from {request.config}")
    classes = ClassList(config.classes.organs, config.classes.lesion_organs)
    # Rank 0 validates and fills the cache first; the others then find it complete.
    data = prepare_training_data(config, classes, request.progress) if ctx.is_main else None
    if ctx.distributed:
        dist.barrier()
    if data is None:
        data = prepare_training_data(config, classes, "none")
    if ctx.is_main:
        for problem in data.problems:
            job.problem(**asdict(problem))
        for case_id, reason in data.excluded.items():
            job.log(f"case {case_id} left out: {reason}")
        job.log(f"{len(data.cases)} training cases ({sum(c.kind == 'mask' for c in data.cases)} with masks), "
                f"{len(data.excluded)} left out, {len(data.problems)} problems (problems.jsonl)")
    resume = None
    if request.resume:
        latest = job.checkpoints_dir / "latest.pt"
        if not latest.exists():
            raise JobError(f"{latest} does not exist: nothing to resume")
        resume = load_checkpoint(latest, map_location=ctx.device)
        if int(resume["stage"]) >= len(config.stages):
            raise JobError(f"{job.root} already finished all stages")
    trainer = Trainer(config, data, job, ctx, request.progress)
    result = trainer.train(resume)
    if ctx.is_main:
        job.event(result.state, global_step=result.global_step, checkpoint=str(result.checkpoint))
        job.write_status(state=result.state, global_step=result.global_step, checkpoint=str(result.checkpoint))
        job.log(f"{result.state} at step {result.global_step}")
    return result

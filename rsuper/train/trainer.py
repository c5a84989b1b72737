"""The training loop: stages, AdamW + warm-up/poly, clipping, EMA, AMP, checkpoints, clean stop, resume.

One call of :func:`train` runs every remaining stage of a job. State lives in
the job folder (:class:`rsuper.train.job.JobFolder`): ``checkpoints/latest.pt``
holds everything needed to continue exactly (model, optimizer, scheduler,
EMA, gradient scaler, stage and step, RNG states); the sampler needs nothing
more than the step, because every patch is a function of (seed, sample index).
At the end of each stage ``checkpoints/<stage>.pt`` keeps its weights, and
``checkpoints/final.pt`` is the model to segment with.

Under ``torchrun`` every process runs this loop on its share of each batch
(``DistributedDataParallel``); only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsuper.data.classes import ClassList
from rsuper.data.patches import PatchDataset, PatchOptions
from rsuper.data.sampler import make_loader
from rsuper.losses import RSuperLoss, SupervisionBatch
from rsuper.model.registry import as_heads, build_model, count_parameters
from rsuper.progress import Progress
from rsuper.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rsuper.train.config import StageConfig, TrainConfig
from rsuper.train.data_setup import TrainingData
from rsuper.train.distributed import DistContext, any_process, mean_over_processes
from rsuper.train.ema import ModelEMA
from rsuper.train.job import JobFolder, StopFlag
from rsuper.train.schedule import make_scheduler
from rsuper.train.weights import checkpoint_weights


@dataclass
class TrainResult:
    """How a call of :func:`train` ended.

    Attributes:
        state: ``finished`` or ``stopped`` (SIGTERM / SIGINT; resumable).
        global_step: optimizer steps done over all stages.
        checkpoint: the last checkpoint written.
    """

    state: str
    global_step: int
    checkpoint: Path | None


def checkpoint_payload(
    *, config: TrainConfig, classes: ClassList, data: TrainingData, model: nn.Module, ema: ModelEMA | None,
    optimizer: torch.optim.Optimizer | None, scheduler: Any, scaler: torch.amp.GradScaler | None,
    stage: int, step: int, global_step: int,
) -> dict[str, Any]:
    """Everything a checkpoint stores (only tensors and plain containers: ``weights_only`` loads it)."""
    return {
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "stage": stage,
        "step": step,
        "global_step": global_step,
        "rng": rng_state(),
        "config": config.to_dict(),
        "classes": classes.to_dict(),
        "label_map": data.label_map.to_dict() if data.label_map is not None else None,
        "spacing_mm": list(config.data.spacing_mm),
        "hu_clip": list(config.data.hu_clip),
    }


def _autocast(device: torch.device, enabled: bool) -> tuple[contextlib.AbstractContextManager, bool]:
    """Autocast context for CUDA AMP and whether a gradient scaler is needed (float16 only)."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext(), False
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), False
    return torch.autocast("cuda", dtype=torch.float16), True


def _supervision(batch: dict[str, torch.Tensor], device: torch.device) -> SupervisionBatch:
    """Loss inputs from a collated patch batch (see the sample contract in :mod:`rsuper.data.patches`)."""
    report = bool(batch["is_report"].any())
    return SupervisionBatch(
        target=batch["target"].to(device, non_blocking=True),
        unknown=batch["unknown"].to(device, non_blocking=True),
        chosen_segment=batch["chosen"].to(device, non_blocking=True) if report else None,
        diameters_mm=batch["diameters_mm"].to(device) if report else None,
        volumes_mm3=batch["volumes_mm3"].to(device) if report else None,
        spacing_mm=batch["spacing_mm"].to(device),
    )


class Trainer:
    """Runs the stages of one job (see the module docstring).

    Args:
        config: the run's configuration.
        data: the loaded training cases.
        job: the job folder (written by rank 0 only).
        ctx: distributed context (a single CPU/GPU process by default).
        progress: terminal progress mode (``auto``/``bar``/``jsonl``/``none``).
    """

    def __init__(self, config: TrainConfig, data: TrainingData, job: JobFolder,
                 ctx: DistContext = DistContext(), progress: str = "none") -> None:
        self.config = config
        self.data = data
        self.job = job
        self.ctx = ctx
        self.progress_mode = progress if ctx.is_main else "none"
        self.classes = ClassList(config.classes.organs, config.classes.lesion_organs)
        torch.manual_seed(config.seed)
        self.model = build_model(
            {"class": config.model.cls, "kwargs": config.model.kwargs}, 1, self.classes.n_channels
        ).to(ctx.device)
        self.stop = StopFlag()

    # -- helpers ------------------------------------------------------------------------------

    def _log(self, message: str) -> None:
        if self.ctx.is_main:
            self.job.log(message)

    def _event(self, name: str, **fields: Any) -> None:
        if self.ctx.is_main:
            self.job.event(name, **fields)

    def _status(self, **fields: Any) -> None:
        if self.ctx.is_main:
            self.job.write_status(**fields)

    def _save(self, path: Path, payload: dict[str, Any]) -> None:
        if self.ctx.is_main:
            save_checkpoint(path, payload)
            self._event("checkpoint", path=str(path), stage=payload["stage"], step=payload["step"])

    def _load_initial_weights(self, path: str) -> None:
        ckpt = load_checkpoint(path, map_location=self.ctx.device)
        names = ckpt.get("classes", {}).get("names")
        if names is not None and names != self.classes.names:
            raise ValueError(f"{path}: its channels {names} differ from this run's {self.classes.names}")
        self.model.load_state_dict(checkpoint_weights(ckpt, ema=True))
        self._log(f"initial weights from {path}")

    # -- main loop -------------------------------------------------------------------------------

    def train(self, resume: dict[str, Any] | None = None) -> TrainResult:
        """Run the remaining stages; ``resume`` is a loaded ``latest.pt`` to continue from."""
        config = self.config
        start_stage, start_step = 0, 0
        if resume is not None:
            self.model.load_state_dict(resume["model"])
            start_stage, start_step = int(resume["stage"]), int(resume["step"])
        elif config.init_checkpoint:
            self._load_initial_weights(config.init_checkpoint)
        global_step = sum(s.steps for s in config.stages[:start_stage]) + start_step
        self._log(f"model {config.model.cls}: {count_parameters(self.model):,} parameters; "
                  f"channels {self.classes.names}; device {self.ctx.device}; processes {self.ctx.world_size}")
        last: Path | None = None
        self.stop.install()
        try:
            for index in range(start_stage, len(config.stages)):
                stage_resume = resume if (resume is not None and index == start_stage) else None
                outcome, global_step, last = self._run_stage(index, stage_resume, global_step)
                if outcome == "stopped":
                    return TrainResult("stopped", global_step, last)
        finally:
            self.stop.restore()
        final = self.job.checkpoints_dir / "final.pt"
        if self.ctx.is_main and last is not None:
            payload = {k: v for k, v in load_checkpoint(last).items() if k not in ("format", "version")}
            payload.update(optimizer=None, scheduler=None, scaler=None)
            self._save(final, payload)
        return TrainResult("finished", global_step, final)

    def _run_stage(self, index: int, resume: dict[str, Any] | None, global_step: int) -> tuple[str, int, Path]:
        config, ctx = self.config, self.ctx
        stage: StageConfig = config.stages[index]
        pool = self.data.pool(stage.data)
        if not pool:
            raise ValueError(f"stage {stage.name!r} draws from {stage.data!r} cases but there are none")
        n_mask = sum(c.kind == "mask" for c in pool)
        n_report = len(pool) - n_mask
        report_fraction = {"masks": 0.0, "reports": 1.0}.get(stage.data, config.data.report_fraction)
        dataset = PatchDataset(
            pool, self.classes,
            PatchOptions(patch_size=tuple(config.data.patch_size), max_tumours=config.data.max_tumours),
            seed=config.seed * 1000 + index, report_fraction=report_fraction, augment=config.data.augment,
        )
        model: nn.Module = self.model
        if ctx.distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        o = config.optim
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=stage.lr, betas=o.betas, eps=o.eps,
                                      weight_decay=o.weight_decay)
        scheduler = make_scheduler(optimizer, stage.steps, min(o.warmup_steps, stage.steps - 1))
        autocast, needs_scaler = _autocast(ctx.device, o.amp)
        scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
        # Each stage starts its EMA afresh from the current weights (stage 2 fine-tunes stage 1's raw
        # model weights, as the reference does).
        ema = ModelEMA(self.model, o.ema) if o.ema > 0 else None
        step = 0
        if resume is not None and resume.get("optimizer") is not None:
            # A checkpoint written at a stage boundary (step 0) has no optimizer state: fresh start.
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            if ema is not None and resume.get("ema") is not None:
                ema.load_state_dict(resume["ema"])
            if scaler is not None and resume.get("scaler") is not None:
                scaler.load_state_dict(resume["scaler"])
            set_rng_state(resume["rng"])
            step = int(resume["step"])
        loss_fn = RSuperLoss(config.loss_config(stage, self.classes.lesion_channels))
        loader = make_loader(dataset, config.data.batch_size, start_step=step, workers=config.data.workers,
                             rank=ctx.rank, world_size=ctx.world_size, pin_memory=ctx.device.type == "cuda")
        total = config.total_steps
        self._log(f"stage {index + 1}/{len(config.stages)} {stage.name!r}: {stage.steps} steps, lr {stage.lr:g}, "
                  f"{n_mask} mask + {n_report} report cases, report weight {stage.report_weight:g}"
                  + (f", resuming at step {step}" if step else ""))
        self._event("stage_start", stage=stage.name, stage_index=index, steps=stage.steps, start_step=step,
                    mask_cases=n_mask, report_cases=n_report)
        self._status(state="running", stage=stage.name, stage_index=index, step=step, stage_steps=stage.steps,
                     global_step=global_step, total_steps=total)
        bar = Progress(total, mode=self.progress_mode, desc=stage.name, initial=global_step)

        def payload(at_step: int) -> dict[str, Any]:
            return checkpoint_payload(config=config, classes=self.classes, data=self.data, model=self.model,
                                      ema=ema, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                      stage=index, step=at_step, global_step=global_step)

        latest = self.job.checkpoints_dir / "latest.pt"
        window: dict[str, float] = {}
        window_n = 0
        t_window = time.monotonic()
        model.train()
        iterator = iter(loader)
        while step < stage.steps:
            batch = next(iterator)
            image = batch["image"].to(ctx.device, non_blocking=True)
            supervision = _supervision(batch, ctx.device)
            with autocast:
                output = model(image)
            heads = [h.float() for h in as_heads(output)]
            result = loss_fn(heads, supervision)
            loss = result.total
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at stage {stage.name!r} step {step}: {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if o.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used (before the schedule moves on)
            scheduler.step()
            if ema is not None:
                ema.update_parameters(self.model)
            step += 1
            global_step += 1
            window["loss"] = window.get("loss", 0.0) + float(loss.detach())
            for name, value in result.terms.items():
                window[name] = window.get(name, 0.0) + float(value)
            window["report_samples"] = window.get("report_samples", 0.0) + float(batch["is_report"].sum())
            window_n += 1
            if step % config.log_every == 0 or step == stage.steps:
                means = mean_over_processes({k: v / window_n for k, v in window.items()}, ctx)
                elapsed = max(time.monotonic() - t_window, 1e-9)
                steps_per_s = window_n / elapsed
                fields = {
                    "stage": stage.name, "stage_index": index, "step": step, "stage_steps": stage.steps,
                    "global_step": global_step, "total_steps": total,
                    "epoch": global_step // config.steps_per_epoch,
                    "lr": lr, "loss": means.pop("loss"),
                    "report_fraction": means.pop("report_samples") / (config.data.batch_size * ctx.world_size),
                    "terms": means,
                    "samples_per_s": steps_per_s * config.data.batch_size * ctx.world_size,
                    "eta_s": (total - global_step) / steps_per_s,
                }
                self._event("progress", **fields)
                bar.update(window_n, loss=round(fields["loss"], 4), lr=fields["lr"])
                self._status(state="running", stage=stage.name, stage_index=index, step=step,
                             stage_steps=stage.steps, global_step=global_step, total_steps=total,
                             loss=fields["loss"], eta_s=fields["eta_s"])
                window, window_n, t_window = {}, 0, time.monotonic()
            stopping = any_process(self.stop.is_set, ctx)
            if stopping or step % config.checkpoint_every == 0 or step == stage.steps:
                self._save(latest, payload(step))
            if stopping and step < stage.steps:
                bar.close(state="stopped")
                self._log(f"stopped on request at stage {stage.name!r} step {step}; resume with --resume")
                self._event("stopped", stage=stage.name, step=step, global_step=global_step)
                self._status(state="stopped", stage=stage.name, stage_index=index, step=step,
                             global_step=global_step, checkpoint=str(latest))
                return "stopped", global_step, latest
        bar.close(stage=stage.name)
        done = self.job.checkpoints_dir / f"{stage.name}.pt"
        if ctx.is_main:
            next_stage = payload(step)
            save_checkpoint(done, next_stage)
            # latest.pt now points at the start of the next stage (step 0, fresh optimizer).
            next_stage.update(stage=index + 1, step=0, optimizer=None, scheduler=None, scaler=None)
            save_checkpoint(latest, next_stage)
        self._event("stage_end", stage=stage.name, stage_index=index, checkpoint=str(done))
        self._log(f"stage {stage.name!r} done: {done}")
        return "finished", global_step, done

"""The one training loop every recipe runs in.

What it does: optimiser steps with gradient accumulation, a learning-rate schedule, bf16 autocast
on CUDA, DDP when started by ``torchrun``, ``metrics.jsonl`` (rank 0), a loss-curve PNG,
periodic evaluation and pictures, checkpoints, and resume that continues bit-exactly: the
model, the optimiser, the schedule (a pure function of the step), every RNG (python, numpy, torch
per process) and the data position (epoch, batch) are restored, and evaluation runs under a forked
RNG so it never shifts the training stream.

Why plain torch and not Lightning Fabric or accelerate: neither is installed in the project's
environment, and both save state with ``torch.save`` (pickle): Fabric's ``save`` pickles the
whole state, accelerate's ``save_state`` writes the optimiser, scheduler, sampler and RNG states
as pickles (only the weights may be safetensors), and loading them needs ``torch.load`` with
``weights_only=False``. The issue asks for no pickle; what the loop needs beyond that (DDP,
``no_sync`` for accumulation, autocast) is a few lines of plain torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from facexpr.core.errors import ConfigError, FacexprError
from facexpr.io._files import write_text_atomic
from facexpr.train.checkpoint import (
    TrainState,
    export_weights,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from facexpr.train.config import OptimConfig, RunConfig, ScheduleConfig
from facexpr.train.data import BatchSource
from facexpr.train.plots import draw_curves
from facexpr.train.recipe import DataSpec, Recipe

log = logging.getLogger(__name__)

__all__ = ["Distributed", "FitResult", "build_optimizer", "fit", "lr_at", "setup_distributed"]

METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class Distributed:
    """This process's place in a run: rank, process count, device.

    Attributes:
        rank: global rank (0 in one process).
        world_size: number of processes.
        device: the torch device this process trains on.
        initialised: True when this module started the process group (and must end it).
    """

    rank: int
    world_size: int
    device: torch.device
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def setup_distributed(run: RunConfig) -> Distributed:
    """Returns this process's rank and device; joins the process group under ``torchrun``.

    ``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; NCCL is used on CUDA, gloo on CPU.

    Raises:
        ConfigError: ``run.device='cuda'`` without CUDA; ``run.precision='bf16'`` off CUDA.
    """
    cuda = torch.cuda.is_available()
    if run.device == "cuda" and not cuda:
        raise ConfigError("run.device is 'cuda' but no CUDA device is available")
    use_cuda = cuda and run.device != "cpu"
    if run.precision == "bf16" and not use_cuda:
        raise ConfigError("run.precision 'bf16' is for CUDA only; use 'auto' or 'fp32' on CPU")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    initialised = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialised = True
    return Distributed(rank=rank, world_size=world, device=device, initialised=initialised)


def lr_at(step: int, base_lr: float, schedule: ScheduleConfig, total_steps: int) -> float:
    """Returns the learning rate of optimiser step ``step`` (0-based): linear warm-up, then
    cosine decay to ``min_lr_ratio * base_lr`` at the last step (or constant)."""
    if step < schedule.warmup_steps:
        return base_lr * (step + 1) / schedule.warmup_steps
    if schedule.name == "constant":
        return base_lr
    span = max(1, total_steps - schedule.warmup_steps - 1)
    t = min(1.0, (step - schedule.warmup_steps) / span)
    floor = schedule.min_lr_ratio * base_lr
    return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Returns the optimiser; weight decay skips 1-d parameters (biases, norms, tokens). With
    ``cfg.encoder_lr_scale`` < 1 the parameters under ``model.encoder`` get their own groups,
    whose ``lr_scale`` the loop multiplies the scheduled rate by."""
    enc = getattr(model, "encoder", None)
    enc_ids = (
        {id(p) for p in enc.parameters()}
        if isinstance(enc, torch.nn.Module) and cfg.encoder_lr_scale != 1.0
        else set()
    )
    buckets: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            buckets.setdefault((id(p) in enc_ids, p.ndim <= 1), []).append(p)
    groups = []
    for (in_enc, flat), params in sorted(buckets.items()):
        g: dict[str, object] = {
            "params": params, "weight_decay": 0.0 if flat else cfg.weight_decay,
        }  # fmt: skip
        if enc_ids:
            g["lr_scale"] = cfg.encoder_lr_scale if in_enc else 1.0
        groups.append(g)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    # foreach=False: the same per-parameter arithmetic on every platform and process count.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=False)


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_move(v, device) for v in batch)
    return batch


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the global RNG that code may use)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class FitResult:
    """What a finished (or resumed and finished) run did.

    Attributes:
        run_dir: the run folder.
        steps: optimiser steps done in total.
        final_metrics: the last logged training metrics.
        eval_metrics: the last evaluation's metrics (empty without evaluation).
        images_per_s: training samples a second over this invocation (all processes).
    """

    run_dir: Path
    steps: int
    final_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    images_per_s: float


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


class _Batches:
    """Endless micro-batches over epochs, tracking the position in ``state``.

    The next batch is built in a background thread while the current step runs (PNG decoding
    and augmentation overlap the model's work; OpenCV releases the GIL). Batches are still made
    one after another in order, from per-sample generators only, so the stream is the same with
    or without the thread; the position counts batches the loop *consumed*, so a batch built
    ahead and lost at a checkpoint is simply built again on resume.
    """

    def __init__(self, source: BatchSource, state: TrainState, batch_size: int) -> None:
        self.source, self.state, self.batch_size = source, state, batch_size
        self._epoch = state.epoch
        self._it: Iterator[Any] = source.batches(state.epoch, state.batch)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facexpr-data")
        self._next: Future[tuple[int, Any]] = self._pool.submit(self._produce)

    def _produce(self) -> tuple[int, Any]:
        for attempt in range(2):
            try:
                return self._epoch, next(self._it)
            except StopIteration:
                if attempt:
                    break
                self._epoch += 1
                self._it = self.source.batches(self._epoch, 0)
        raise ConfigError(
            f"the training data has fewer samples than one batch (run.batch_size={self.batch_size})"
        )

    def next(self) -> Any:
        epoch, batch = self._next.result()
        self._next = self._pool.submit(self._produce)
        if epoch != self.state.epoch:
            self.state.epoch, self.state.batch = epoch, 0
        self.state.batch += 1
        self.state.samples += self.batch_size
        return batch

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _reduce_mean(values: dict[str, float], ctx: Distributed) -> dict[str, float]:
    if ctx.world_size == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def fit(
    recipe: Recipe,
    run: RunConfig,
    optim: OptimConfig,
    schedule: ScheduleConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    ctx: Distributed | None = None,
    progress: bool = False,
) -> FitResult:
    """Trains ``recipe``'s model up to ``run.steps`` (or ``run.stop_at``) optimiser steps.

    Changing ``run.steps`` on resume stretches the cosine schedule from the resumed step on; use
    ``run.stop_at`` to cut a run into sessions that together equal one straight run.

    Args:
        recipe: the recipe (model, data, loss).
        run: length, batch, seed, logging, precision, device.
        optim: the optimiser.
        schedule: the learning-rate schedule.
        run_dir: the run folder (created by the caller, who also saves ``config.yaml``).
        resume: continue from the newest checkpoint in ``run_dir``.
        ctx: this process's rank and device (default: :func:`setup_distributed`).
        progress: show a tqdm bar with ETA on stderr (rank 0).

    Returns:
        the run's :class:`FitResult`.

    Raises:
        ModelError: a corrupt checkpoint (named) on resume.
        ConfigError: data smaller than one batch, batch not divisible by the processes.
        FacexprError: the loss became NaN or infinite (the step is named).
    """
    run_dir = Path(run_dir)
    ctx = ctx or setup_distributed(run)
    if run.threads:
        torch.set_num_threads(run.threads)
    autocast = ctx.device.type == "cuda" and run.precision in ("auto", "bf16")
    _seed_all(run.seed)  # the same initial weights in every process
    model = recipe.build_model().to(ctx.device)
    optimizer = build_optimizer(model, optim)
    state = TrainState()
    if resume:
        state = load_checkpoint(
            latest_checkpoint(run_dir), model, optimizer, rank=ctx.rank, world_size=ctx.world_size
        )
        log.info("resuming %s at step %d (epoch %d)", run_dir, state.step, state.epoch)
    else:
        _seed_all(run.seed * 1000 + 1 + ctx.rank)  # each process its own masking/dropout noise
    wrapped: torch.nn.Module = model
    if ctx.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    spec = DataSpec(run.batch_size, ctx.rank, ctx.world_size, run.seed)
    train_src = recipe.build_data("train", spec)
    if train_src is None:
        raise ConfigError(f"recipe '{recipe.name}' has no training data")
    val_src = recipe.build_data("val", DataSpec(run.batch_size, 0, 1, run.seed))

    metrics_path = run_dir / METRICS
    if ctx.is_main:
        rows = [r for r in _read_metrics(metrics_path) if r.get("step", 0) <= state.step]
        write_text_atomic(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
    end = min(run.steps, run.stop_at) if run.stop_at else run.steps
    bar = None
    if progress and ctx.is_main:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=min(state.step, end), unit="step", dynamic_ncols=True)

    acc = optim.accumulate
    sums: dict[str, float] = {}
    n_sums = 0
    t_start = t_log = time.perf_counter()
    samples_start = samples_log = state.samples
    last: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    model.train()
    batches = _Batches(train_src, state, run.batch_size)
    try:
        while state.step < end:
            lr = lr_at(state.step, optim.lr, schedule, run.steps)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            optimizer.zero_grad(set_to_none=True)
            for micro in range(acc):
                batch = _move(batches.next(), ctx.device)
                sync = ctx.world_size == 1 or micro == acc - 1
                no_sync = contextlib.nullcontext() if sync else wrapped.no_sync()  # type: ignore[operator]
                with no_sync:
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                        losses = recipe.step(wrapped, batch)
                    loss = losses["loss"]
                    if not torch.isfinite(loss.detach()).all():
                        raise FacexprError(
                            f"step {state.step + 1}: the loss is {loss.item()} (diverged); "
                            "lower optim.lr or set optim.grad_clip"
                        )
                    (loss.float() / acc).backward()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_sums += 1
            if optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
            optimizer.step()
            state.step += 1
            if bar is not None:
                bar.update(1)
            done = state.step == end
            if state.step % run.log_every == 0 or done:
                now = time.perf_counter()
                row = _reduce_mean({k: v / n_sums for k, v in sums.items()}, ctx)
                ips = (state.samples - samples_log) / max(now - t_log, 1e-9)
                row = {
                    "step": state.step,
                    "epoch": state.epoch,
                    "lr": lr,
                    **row,
                    "samples_per_s": ips,
                    "time_s": now - t_start,
                }
                last = row
                sums, n_sums, t_log, samples_log = {}, 0, now, state.samples
                if ctx.is_main:
                    with open(metrics_path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    if bar is not None:
                        bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{ips:.0f}")
            if (run.eval_every and state.step % run.eval_every == 0) or done:
                ev = _evaluate(recipe, model, val_src, run_dir, state.step, ctx)
                if ev:
                    last_eval = ev
            if state.step % run.checkpoint_every == 0 or done:
                save_checkpoint(
                    run_dir,
                    model,
                    optimizer,
                    state,
                    rank=ctx.rank,
                    world_size=ctx.world_size,
                    keep=run.keep_checkpoints,
                    barrier=ctx.barrier if ctx.world_size > 1 else None,
                )
                if ctx.is_main:
                    _plot(run_dir)
    finally:
        batches.close()
        if bar is not None:
            bar.close()
    if ctx.is_main:
        export_weights(model, run_dir / "model.safetensors")
        recipe.export(model, run_dir)
    elapsed = time.perf_counter() - t_start
    return FitResult(
        run_dir=run_dir,
        steps=state.step,
        final_metrics=last,
        eval_metrics=last_eval,
        images_per_s=(state.samples - samples_start) / max(elapsed, 1e-9),
    )


def _evaluate(
    recipe: Recipe,
    model: torch.nn.Module,
    val_src: BatchSource | None,
    run_dir: Path,
    step: int,
    ctx: Distributed,
) -> dict[str, float]:
    """Evaluates and draws on rank 0 under a forked RNG (training's RNG stream is untouched)."""
    out: dict[str, float] = {}
    pic = None
    if ctx.is_main and val_src is not None:
        devices = [ctx.device.index] if ctx.device.type == "cuda" else []
        model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            state_py, state_np = random.getstate(), np.random.get_state()  # noqa: NPY002  (the global RNG that code may use)
            try:
                out = {f"eval/{k}": float(v) for k, v in recipe.evaluate(model, val_src).items()}
                pic = recipe.visualise(model, val_src, run_dir / "visuals" / f"step-{step:08d}.png")
            finally:
                random.setstate(state_py)
                np.random.set_state(state_np)  # noqa: NPY002  (the global RNG that code may use)
        model.train()
        if out:
            with open(run_dir / METRICS, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, **out}) + "\n")
        if pic is not None:
            log.info("wrote %s", pic)
    ctx.barrier()
    return out


def _plot(run_dir: Path) -> None:
    rows = _read_metrics(run_dir / METRICS)
    if rows:
        draw_curves(rows, run_dir / "loss.png")

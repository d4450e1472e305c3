"""Builds a run and starts the loop: config, run folder, lock, recipe -> :func:`engine.fit`.

Kept apart from :mod:`facexpr.train.engine` (the loop), as MAE keeps ``main_pretrain`` apart from
``engine_pretrain``: this module decides *what* to train and *where*; the engine only trains.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from facexpr.core.errors import ConfigError
from facexpr.io._files import FolderLock, write_text_atomic
from facexpr.train.config import TrainConfig, dump_config, load_config
from facexpr.train.engine import Distributed, FitResult, fit, setup_distributed
from facexpr.train.recipe import get_recipe

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "resolve_config", "train"]

CONFIG = "config.yaml"
# What may change when a run is resumed: how long it runs and how often it reports. Anything
# else (model, data, batch, optimiser, schedule, seed) would break the bit-exact continuation.
RESUMABLE = ("run.steps", "run.stop_at", "run.log_every", "run.eval_every", "run.checkpoint_every",
             "run.keep_checkpoints", "run.threads")  # fmt: skip


def resolve_config(
    recipe: str, config: str | Path | None = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Returns the resolved config of a recipe (defaults, then ``config``, then ``overrides``).

    Raises:
        ConfigError: unknown recipe, unknown key, wrong type (naming the key and the file).
    """
    cls = get_recipe(recipe)
    return load_config(recipe, cls.ModelConfig, cls.DataConfig, config, overrides)


def _check_resume_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in RESUMABLE:
            raise ConfigError(
                f"--set {key}: cannot change on --resume (it would not continue the same run); "
                f"only {', '.join(RESUMABLE)} can"
            )


def train(
    recipe: str,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = False,
) -> FitResult:
    """Trains a recipe into a run folder, or resumes the run in ``resume``.

    Args:
        recipe: a registered recipe name ('mae', 'expression') or 'package.module:Class'.
        config: YAML config file (not with ``resume``: the run's own ``config.yaml`` is used).
        overrides: ``KEY=VALUE`` overrides (on resume only ``run.steps`` and reporting keys).
        out: the new run folder (default: ``runs/RECIPE``); must not hold a run already.
        resume: a run folder to continue from its newest checkpoint.
        progress: tqdm bar on stderr.

    Returns:
        the :class:`FitResult`.

    Raises:
        ConfigError: bad config, an existing run in ``out``, a resume with another recipe.
        ModelError: a corrupt checkpoint (named).
        InputError: the run folder is locked by another run.
    """
    if resume is not None:
        if config is not None:
            raise ConfigError("--config cannot be given with --resume (the run's config is used)")
        if out is not None and Path(out) != Path(resume):
            raise ConfigError("--out cannot differ from --resume (a run continues in its folder)")
        run_dir = Path(resume)
        saved = run_dir / CONFIG
        if not saved.is_file():
            raise ConfigError(f"{saved}: not found; is {run_dir} a facexpr training run?")
        _check_resume_overrides(overrides)
        cfg = resolve_config(recipe, saved, overrides)
    else:
        cfg = resolve_config(recipe, config, overrides)
        run_dir = Path(out) if out is not None else Path("runs") / recipe
    ctx = setup_distributed(cfg.run)
    lock = FolderLock(run_dir, "facexpr train") if ctx.is_main else contextlib.nullcontext()
    try:
        with lock:
            return _train_locked(recipe, cfg, run_dir, resume is not None, ctx, progress)
    finally:
        if ctx.initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_locked(
    recipe: str,
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    ctx: Distributed,
    progress: bool,
) -> FitResult:
    if ctx.is_main:
        if not resume and (run_dir / CONFIG).exists():
            raise ConfigError(
                f"{run_dir}: already holds a training run; continue it with --resume "
                f"{run_dir}, or choose another --out"
            )
        write_text_atomic(run_dir / CONFIG, dump_config(cfg))
    ctx.barrier()
    cls = get_recipe(recipe)
    rec = cls(cfg.model, cfg.data)
    return fit(
        rec,
        cfg.run,
        cfg.optim,
        cfg.schedule,
        run_dir,
        resume=resume,
        ctx=ctx,
        progress=progress,
    )

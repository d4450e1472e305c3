"""``facexpr train RECIPE``: train a model with the one training loop (``facexpr.train``)."""

from __future__ import annotations

import argparse
import json
import os
import sys

RECIPE_HELP = (
    "'mae' (stage 1: masked-autoencoder pretraining on face shards), 'expression' (stage 2: "
    "triplet fine-tuning into the expression embedding), 'heads' (the analysis heads), "
    "'renderer' (the multi-avatar neural renderer), 'animator' (the multi-avatar animator), "
    "'normalizer' (Norface identity normalisation), or 'package.module:Class'"
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``train`` command to the ``facexpr`` parser; returns its parser."""
    t = subparsers.add_parser(
        "train",
        help="train a model (MAE pretraining, expression embedding) from a YAML recipe",
        description="Train a model. The config is the recipe's defaults, then --config FILE, then "
        "each --set KEY=VALUE. The run folder gets config.yaml (the resolved config), "
        "metrics.jsonl, loss.png, checkpoints/ and, at the end, model.safetensors. --resume "
        "continues a run bit-exactly from its newest checkpoint. Multi-process: start it with "
        "`torchrun --nproc-per-node N -m facexpr.cli.main train ...`.",
    )
    t.add_argument("recipe", metavar="RECIPE", help=RECIPE_HELP)
    t.add_argument("--config", "-c", metavar="FILE", help="YAML config file")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set optim.lr=3e-4 (repeatable)",
    )
    t.add_argument("--out", "-o", metavar="RUN_DIR", help="new run folder (default runs/RECIPE)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--base",
        metavar="RENDERER",
        help="renderer only: the trained renderer (run folder or renderer.safetensors) that "
        "--add-avatar extends (sets model.base)",
    )
    t.add_argument(
        "--add-avatar",
        dest="add_avatars",
        action="append",
        default=[],
        metavar="GLB_OR_NAME",
        help="renderer and animator: add this avatar (a glTF/GLB file with morph targets, or an "
        "avatar name), training only its own input or output layer and identity code, so the "
        "other avatars stay exactly as they were (repeatable). Renderer: to --base (sets "
        "data.add_avatars); animator: to the finished animator of --set model.init=RUN_DIR",
    )
    return t


def _renderer_overrides(args: argparse.Namespace) -> list[str]:
    """Returns the ``--set`` overrides that ``--base`` and ``--add-avatar`` stand for."""
    from facexpr.core.errors import ConfigError

    if not args.base and not args.add_avatars:
        return []
    if args.recipe != "renderer":
        raise ConfigError(
            "--base and --add-avatar are options of `facexpr train renderer` (and --add-avatar "
            "of `facexpr train animator`) only"
        )
    if args.resume:
        raise ConfigError("--base and --add-avatar cannot be given with --resume")
    out = []
    if args.base:
        out.append(f"model.base={args.base}")
    if args.add_avatars:
        out.append(f"data.add_avatars={json.dumps(list(args.add_avatars))}")
    return out


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr train``; returns the exit code (errors propagate to ``main``: exit 2)."""
    from facexpr.core.errors import ConfigError
    from facexpr.train.main import train

    rank = int(os.environ.get("RANK", "0"))
    overrides = list(args.overrides)
    if args.recipe == "animator" and args.add_avatars:
        if args.base:
            raise ConfigError(
                "--base is an option of `facexpr train renderer`; the animator "
                "takes its finished run as --set model.init=RUN_DIR"
            )
        listed = ", ".join(json.dumps(a) for a in args.add_avatars)
        overrides.append(f"model.add_avatars=[{listed}]")
    else:
        overrides.extend(_renderer_overrides(args))
    result = train(
        args.recipe,
        config=args.config,
        overrides=overrides,
        out=args.out,
        resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty() and rank == 0,
    )
    if rank == 0:
        loss = result.final_metrics.get("loss")
        if loss is None:
            print(
                f"{result.run_dir}: already at step {result.steps}; nothing to train "
                "(raise run.steps or run.stop_at to continue)"
            )
            return 0
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.eval_metrics.items()))
        print(
            f"{result.run_dir}: {result.steps} steps, loss {loss:.4f}, "
            f"{result.images_per_s:.1f} samples/s" + (f"; {shown}" if shown else "")
        )
    return 0

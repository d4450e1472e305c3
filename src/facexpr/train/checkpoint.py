"""Checkpoints without pickle: safetensors for every tensor, JSON for everything else.

A checkpoint is a folder ``RUN/checkpoints/step-000500/``::

    model.safetensors        the model's state_dict (what ``facexpr.nn`` loads as weights)
    optimizer.safetensors    every tensor of the optimiser's state (``state.<param>.<name>``)
    optimizer.json           the rest of its state_dict: param groups (lr, betas, ...), scalars
    state.json               step, epoch, batch position in the epoch, python/numpy RNG states
    rng-<rank>.safetensors   torch CPU (and CUDA) generator states of each process

It is written into a hidden temporary folder and renamed into place in one step, so a crash never
leaves a half-written checkpoint under its final name; ``latest.json`` names the newest one.
Nothing is ever unpickled: ``torch.load`` is not used at all, so a checkpoint from an untrusted
source can at worst fail to load (a :class:`ModelError` naming the file), never run code.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from facexpr.core.errors import InputError, ModelError
from facexpr.io._checks import BadJSON, loads_json, open_regular
from facexpr.io._files import commit_temp, unique_temp, write_text_atomic

__all__ = [
    "LATEST",
    "TrainState",
    "confine",
    "export_weights",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "save_checkpoint",
]

LATEST = "latest.json"
FORMAT = "facexpr-checkpoint"
VERSION = 1

MAX_JSON_BYTES = 16 << 20
"""Largest JSON file of a checkpoint read, bytes (they hold a few KB)."""


def confine(path: Path, root: Path, what: str = "run folder") -> Path:
    """Returns ``path`` if it (links followed) lies inside ``root``; checkpoints come from
    folders that may have been copied from elsewhere, and a link must not make us read or show
    a file outside them.

    Raises:
        ModelError: the path leads outside ``root`` (through a link, '..' or an absolute name).
    """
    try:
        real = path.resolve()
        inside = real.is_relative_to(root.resolve())
    except (OSError, RuntimeError) as e:  # RuntimeError: a link loop on older Pythons
        raise ModelError(f"{path}: cannot resolve the path ({e})") from None
    if not inside:
        kind = "is a link that leads" if path.is_symlink() else "leads"
        raise ModelError(f"{path}: {kind} outside the {what} {root}; refused")
    return path


@dataclass
class TrainState:
    """Where a run is: the loop's position, saved with every checkpoint.

    Attributes:
        step: optimiser steps done.
        epoch: the data epoch being read.
        batch: micro-batches of ``epoch`` already consumed.
        samples: samples seen over all processes.
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0
    samples: int = 0


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = unique_temp(path)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        commit_temp(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _optimizer_parts(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = v
            else:
                scalars.setdefault(str(pid), {})[name] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _rng_json() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002  (the global RNG that code may use)
    return {
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state()
    return out


def save_checkpoint(
    run_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    *,
    rank: int = 0,
    world_size: int = 1,
    keep: int = 2,
    barrier: Any = None,
) -> Path:
    """Writes a checkpoint of the run at ``state.step`` and returns its folder.

    In DDP every process calls this: each writes its own ``rng-<rank>.safetensors``, rank 0 the
    rest. ``barrier`` (a callable) synchronises the processes before rank 0 renames the folder.

    Args:
        run_dir: the run folder.
        model: the bare model (not the DDP wrapper).
        optimizer: its optimiser.
        state: the loop's position after the step.
        rank: this process's rank.
        world_size: number of processes.
        keep: newest checkpoints to keep; older ones are deleted.
        barrier: called with no arguments to wait for every process, or None in one process.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    name = f"step-{state.step:08d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.partial"
    if rank == 0:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    if barrier is not None:
        barrier()
    _save_tensors(tmp / f"rng-{rank}.safetensors", _rng_tensors())
    write_text_atomic(tmp / f"rng-{rank}.json", json.dumps(_rng_json()))
    if rank == 0:
        # save_model handles tied (shared) tensors, which save_file refuses.
        export_weights(model, tmp / "model.safetensors")
        tensors, rest = _optimizer_parts(optimizer.state_dict())
        _save_tensors(tmp / "optimizer.safetensors", tensors)
        write_text_atomic(tmp / "optimizer.json", json.dumps(rest))
        meta = {"format": FORMAT, "version": VERSION, "world_size": world_size, **vars(state)}
        write_text_atomic(tmp / "state.json", json.dumps(meta, indent=1))
    if barrier is not None:
        barrier()
    if rank == 0:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)  # a folder rename: the checkpoint appears whole or not at all
        write_text_atomic(ckpt_root / LATEST, json.dumps({"checkpoint": name}))
        old = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
        for p in old[: max(0, len(old) - keep)]:
            shutil.rmtree(p, ignore_errors=True)
    if barrier is not None:
        barrier()
    return final


def export_weights(model: torch.nn.Module, path: str | Path) -> Path:
    """Writes the model's weights to ``path`` (safetensors) atomically; returns ``path``."""
    path = Path(path)
    tmp = unique_temp(path)
    try:
        save_model(model, str(tmp))
        commit_temp(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def latest_checkpoint(run_dir: str | Path) -> Path:
    """Returns the newest checkpoint folder of a run.

    Raises:
        ModelError: no checkpoint there, or ``latest.json`` unreadable (named).
    """
    run = Path(run_dir)
    root = run / "checkpoints"
    latest = root / LATEST
    if not latest.exists() and not latest.is_symlink():
        raise ModelError(f"{latest}: no checkpoint to resume from (was the run started here?)")
    index = _load_json(confine(latest, run))
    name = index.get("checkpoint") if isinstance(index, dict) else None
    if not isinstance(name, str) or not name.startswith("step-") or not name[5:].isdigit():
        raise ModelError(
            f"{latest}: corrupt checkpoint index: 'checkpoint' must name a step-NNNNNNNN folder "
            f"inside {root}, got {name!r}; refused"
        )
    path = root / name
    if not path.is_dir():
        raise ModelError(f"{latest}: names checkpoint '{name}', which is missing")
    return confine(path, run)


def _check_file(path: Path) -> None:
    """Checks that a checkpoint file exists and is a regular file (no FIFO or device)."""
    try:
        open_regular(path, "checkpoint file").close()
    except InputError as e:
        raise ModelError(str(e)) from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    _check_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(
            f"{path}: corrupt checkpoint file, not readable safetensors ({e})"
        ) from None


def _load_json(path: Path) -> Any:
    try:
        with open_regular(path, "checkpoint file") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except InputError as e:
        raise ModelError(str(e)) from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read the checkpoint file ({e.strerror})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ModelError(f"{path}: checkpoint file is larger than {MAX_JSON_BYTES} bytes; refused")
    try:
        return loads_json(raw)
    except BadJSON as e:
        raise ModelError(f"{path}: corrupt checkpoint file, not readable JSON ({e})") from None


def load_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Loads a ``model.safetensors`` into ``model`` (strict: same keys and shapes).

    Raises:
        ModelError: the file is missing, corrupt or does not match the model (named).
    """
    path = Path(path)
    try:
        open_regular(path, "weights file").close()
    except InputError as e:
        raise ModelError(str(e)) from None
    try:
        # load_model (not load_file + load_state_dict) restores tied tensors save_model deduped.
        load_model(model, str(path), strict=True)
    except SafetensorError as e:
        raise ModelError(f"{path}: corrupt weights file, not readable safetensors ({e})") from None
    except (RuntimeError, OSError, ValueError) as e:
        raise ModelError(f"{path}: weights do not fit the model ({e})") from None


def load_checkpoint(
    ckpt: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> TrainState:
    """Restores model, optimiser and RNG states from a checkpoint; returns the loop position.

    Raises:
        ModelError: a missing or corrupt file (named), a checkpoint written by another number of
            processes, or weights that do not fit the model.
    """
    ckpt = Path(ckpt)
    for name in ("state.json", "model.safetensors", "optimizer.safetensors", "optimizer.json"):
        confine(ckpt / name, ckpt, "checkpoint folder")
    for name in (f"rng-{rank}.safetensors", f"rng-{rank}.json"):
        confine(ckpt / name, ckpt, "checkpoint folder")
    meta = _load_json(ckpt / "state.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{ckpt / 'state.json'}: not a facexpr checkpoint")
    if meta.get("world_size") != world_size:
        raise ModelError(
            f"{ckpt}: written by {meta.get('world_size')} processes; resume it with as many "
            f"(this run has {world_size})"
        )
    load_model_weights(model, ckpt / "model.safetensors")
    tensors = _load_tensors(ckpt / "optimizer.safetensors")
    rest = _load_json(ckpt / "optimizer.json")
    try:
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
        for pid, scal in rest["scalars"].items():
            state.setdefault(int(pid), {}).update(scal)
        optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"{ckpt / 'optimizer.json'}: optimiser state does not fit ({e})") from None
    rng_t = _load_tensors(ckpt / f"rng-{rank}.safetensors")
    rng_j = _load_json(ckpt / f"rng-{rank}.json")
    try:
        version, mt, gauss = rng_j["python"]
        random.setstate((version, tuple(mt), gauss))
        name, keys, pos, has_gauss, cached = rng_j["numpy"]
        np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))  # noqa: NPY002  (the global RNG that code may use)
        torch.set_rng_state(rng_t["torch_cpu"])
        if "torch_cuda" in rng_t and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng_t["torch_cuda"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"{ckpt / f'rng-{rank}.json'}: corrupt RNG state ({e})") from None
    try:
        return TrainState(
            step=int(meta["step"]),
            epoch=int(meta["epoch"]),
            batch=int(meta["batch"]),
            samples=int(meta["samples"]),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{ckpt / 'state.json'}: corrupt loop state ({e})") from None

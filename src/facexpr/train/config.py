"""Training configs: YAML files mapped onto nested dataclasses, with ``--set a.b=v`` overrides.

A config file has up to six top-level keys::

    recipe: mae            # optional; must match the recipe being run
    model: {...}           # the recipe's model dataclass
    data: {...}            # the recipe's data dataclass
    optim: {...}           # OptimConfig
    schedule: {...}        # ScheduleConfig
    run: {...}             # RunConfig

Every key is checked against its dataclass: an unknown key is a :class:`ConfigError` that names the
key, the file and the closest known key; a value of the wrong type names the key, the file, the
expected type and the value. Values are typed by the dataclass field, so ``--set optim.lr=3e-4``
is a float and ``--set data.root=123`` stays a string. PyYAML reads ``3e-4`` (no dot) as a string,
so a float field also takes a string that ``float()`` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from facexpr.core.errors import ConfigError

__all__ = [
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
]

SECTIONS = ("model", "data", "optim", "schedule", "run")


@dataclass
class OptimConfig:
    """The optimiser.

    Attributes:
        name: 'adamw' or 'sgd' (momentum 0.9).
        lr: peak learning rate (after warm-up), for the effective batch.
        weight_decay: decoupled weight decay; not applied to biases, norms and tokens (1-d).
        betas: AdamW's (beta1, beta2).
        grad_clip: clip the gradient's global L2 norm to this; 0 turns clipping off.
        accumulate: micro-batches whose gradients are summed before each optimiser step.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1.5e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 0.0
    accumulate: int = 1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must lie in [0, 1), got {self.betas}")
        if self.grad_clip < 0:
            raise ConfigError(f"optim.grad_clip must be >= 0 (0: off), got {self.grad_clip}")
        if self.accumulate < 1:
            raise ConfigError(f"optim.accumulate must be >= 1, got {self.accumulate}")


@dataclass
class ScheduleConfig:
    """The learning-rate schedule, a pure function of the optimiser step.

    Attributes:
        name: 'cosine' (decays to ``min_lr_ratio * lr`` at the last step) or 'constant'.
        warmup_steps: linear warm-up from 0 over this many optimiser steps.
        min_lr_ratio: the cosine's floor, as a fraction of ``optim.lr``.
    """

    name: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class RunConfig:
    """How long, how big and where: everything the loop needs that is not the model or data.

    Attributes:
        steps: optimiser steps in the whole run (the schedule spans them).
        stop_at: stop (with a checkpoint) after this step, to split a long run into sessions
            continued with ``--resume``; 0 runs to ``steps``.
        batch_size: samples per micro-batch over all processes (each of N DDP processes takes
            ``batch_size / N``); the effective batch is ``batch_size * optim.accumulate``.
        seed: seeds the model's initialisation, the data order and every RNG.
        log_every: optimiser steps between lines of ``metrics.jsonl``.
        eval_every: optimiser steps between evaluations (0: only at the end).
        checkpoint_every: optimiser steps between checkpoints (the last step always saves one).
        keep_checkpoints: how many of the latest checkpoints to keep (older ones are deleted).
        precision: 'auto' (bf16 autocast on CUDA, fp32 elsewhere), 'fp32' or 'bf16' (CUDA only).
        device: 'auto' (CUDA when available), 'cpu' or 'cuda'.
        threads: torch CPU threads (0: torch's default).
    """

    steps: int = 1000
    stop_at: int = 0
    batch_size: int = 64
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"run.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "threads", "stop_at"):
            if getattr(self, name) < 0:
                raise ConfigError(f"run.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """A whole training config: the recipe's model and data sections plus the loop's own.

    Attributes:
        recipe: name of the recipe this config is for.
        model: the recipe's model dataclass.
        data: the recipe's data dataclass.
        optim: the optimiser.
        schedule: the learning-rate schedule.
        run: length, batch, seed, logging, precision and device.
    """

    recipe: str
    model: Any
    data: Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, key: str, where: str) -> Any:
    """Returns ``value`` as type ``tp``, or raises a ConfigError naming ``key`` and ``where``."""

    def bad() -> ConfigError:
        return ConfigError(f"{where}: key '{key}' must be {_type_name(tp)}, got {value!r}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key, where)
            except ConfigError as e:
                errors.append(e)
        raise bad()
    if origin is Literal:
        if value in args:
            return value
        raise bad()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad()
        return config_from_dict(tp, value, where, prefix=f"{key}.")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]", where) for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad()
        return tuple(
            _coerce(a, v, f"{key}[{i}]", where)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is list:
        if not isinstance(value, list | tuple):
            raise bad()
        return [_coerce(args[0], v, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad()
        return {
            _coerce(args[0], k, f"{key}.{k}", where): _coerce(args[1], v, f"{key}.{k}", where)
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if tp is Any:
        return value
    raise ConfigError(f"{where}: key '{key}' has a type the config loader cannot read: {tp}")


def _unknown_key(where: str, key: str, known: Sequence[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    prefix = key[: len(key) - len(leaf)]
    close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.5)
    hint = (
        f" (did you mean '{prefix}{close[0]}'?)"
        if close
        else f" (known: {', '.join(prefix + k for k in known)})"
    )
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


def config_from_dict(cls: type, data: Mapping[str, Any], where: str, prefix: str = "") -> Any:
    """Returns an instance of dataclass ``cls`` from a mapping, every key and type checked.

    Args:
        cls: a dataclass whose fields carry type hints.
        data: key -> value (nested mappings for nested dataclasses).
        where: the file (or '--set') named in errors.
        prefix: dotted path of ``data`` inside the whole config, for error messages.

    Raises:
        ConfigError: unknown key (with the closest match), wrong type, or a value the
            dataclass's ``__post_init__`` rejects (the message gets ``where`` in front).
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise _unknown_key(where, f"{prefix}{k}", names)
        kwargs[k] = _coerce(hints[k], v, f"{prefix}{k}", where)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where}: {e}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Returns a dataclass config as plain YAML-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections, got {data!r}")
    return data


def _field_type(cls: type, dotted: str, where: str) -> Any:
    """Returns the type hint of a dotted key (``optim.lr``) under dataclass ``cls``."""
    tp: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"{where}: key '{'.'.join(parts[:i])}' has no sub-keys")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            raise _unknown_key(where, ".".join(parts[: i + 1]), names)
        tp = typing.get_type_hints(tp)[part]
    return tp


def _is_text(tp: Any) -> bool:
    if tp is str:
        return True
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return all(isinstance(a, str) for a in args)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        return len(others) == 1 and _is_text(others[0])
    return False


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: type) -> dict[str, Any]:
    """Returns ``data`` with ``--set`` overrides applied (``["optim.lr=3e-4", ...]``).

    The text after '=' is read as YAML (``[1, 2]``, ``true``, ``null``), except for string
    fields, which take it verbatim; the field's type then checks it (:func:`config_from_dict`).
    ``schema`` is a dataclass describing the whole config (its fields are the sections).

    Raises:
        ConfigError: no '=', unknown key (with the closest match).
    """
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for item in overrides:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=3e-4")
        tp = _field_type(schema, key, "--set")
        if _is_text(tp) and text != "null":
            value: Any = text
        else:
            try:
                value = yaml.safe_load(text) if text else ""
            except yaml.YAMLError as e:
                raise ConfigError(f"--set {key}: cannot read {text!r} ({e})") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[parts[-1]] = value
    return out


def _schema(model_cls: type, data_cls: type) -> type:
    """Returns a dataclass whose fields are the config's sections, for typing dotted keys."""
    return dataclasses.make_dataclass(
        "Config",
        [
            ("recipe", str, field(default="")),
            ("model", model_cls, field(default=None)),
            ("data", data_cls, field(default=None)),
            ("optim", OptimConfig, field(default=None)),
            ("schedule", ScheduleConfig, field(default=None)),
            ("run", RunConfig, field(default=None)),
        ],
    )


def load_config(
    recipe: str,
    model_cls: type,
    data_cls: type,
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """Returns the resolved config of a recipe: defaults, then the YAML file, then overrides.

    Args:
        recipe: the recipe's name; a file's ``recipe:`` key must match it.
        model_cls: the recipe's model dataclass.
        data_cls: the recipe's data dataclass.
        path: YAML file, or None for the dataclass defaults.
        overrides: ``KEY=VALUE`` strings (``--set``), applied after the file.

    Raises:
        ConfigError: unreadable file, unknown key or wrong type (naming the key and the file),
            a file written for another recipe.
    """
    where = "defaults" if path is None else str(path)
    data = {} if path is None else _read_yaml(Path(path))
    schema = _schema(model_cls, data_cls)
    for k in data:
        if k not in (*SECTIONS, "recipe"):
            raise _unknown_key(where, k, ["recipe", *SECTIONS])
    if data.get("recipe", recipe) != recipe:
        raise ConfigError(f"{where}: this config is for recipe '{data['recipe']}', not '{recipe}'")
    data = apply_overrides(data, overrides, schema)
    classes = {
        "model": model_cls,
        "data": data_cls,
        "optim": OptimConfig,
        "schedule": ScheduleConfig,
        "run": RunConfig,
    }
    sections = {}
    for name, cls in classes.items():
        value = data.get(name) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: section '{name}' must be a mapping, got {value!r}")
        src = "--set" if path is None and value else where
        sections[name] = config_from_dict(cls, value, src, prefix=f"{name}.")
    return TrainConfig(recipe=recipe, **sections)


def dump_config(cfg: TrainConfig) -> str:
    """Returns the resolved config as YAML text (loadable again with :func:`load_config`)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)

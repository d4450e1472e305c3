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
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from facexpr.core.errors import ConfigError, InputError

__all__ = [
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "check_number",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
]

SECTIONS = ("model", "data", "optim", "schedule", "run")

MAX_YAML_BYTES = 1 << 20
"""Largest config file read, bytes (recipes are a few hundred bytes)."""

MAX_YAML_DEPTH = 50
"""Deepest nesting of mappings and lists accepted in a config file."""

MAX_YAML_NODES = 100_000
"""Most values a config file may expand to, aliases counted each time they are used."""


def check_number(
    name: str,
    value: float,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> None:
    """Checks that a config number is finite and inside its bounds.

    NaN compares false with everything, so ``value <= 0`` alone lets ``.nan`` through; every
    float option of a config is checked here instead.

    Args:
        name: the dotted key, for the message (``optim.lr``).
        value: the number.
        gt: exclusive lower bound. ge: inclusive lower bound.
        lt: exclusive upper bound. le: inclusive upper bound.

    Raises:
        ConfigError: NaN, infinite, or out of bounds (the message gives the range).
    """
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (gt is None or value > gt)
        and (ge is None or value >= ge)
        and (lt is None or value < lt)
        and (le is None or value <= le)
    )
    if not ok:
        rng = " and ".join(parts)
        finite = isinstance(value, int | float) and math.isfinite(value)
        what = rng if finite and rng else f"a finite number{' ' + rng if rng else ''}"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


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
        encoder_lr_scale: the learning rate of the parameters under ``model.encoder`` (a
            pretrained encoder) over ``lr`` (the heads'); 1 trains everything alike.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1.5e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 0.0
    accumulate: int = 1
    encoder_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        check_number("optim.lr", self.lr, gt=0)
        check_number("optim.encoder_lr_scale", self.encoder_lr_scale, gt=0, le=1)
        check_number("optim.weight_decay", self.weight_decay, ge=0)
        for i, b in enumerate(self.betas):
            check_number(f"optim.betas[{i}]", b, ge=0, lt=1)
        check_number("optim.grad_clip", self.grad_clip, ge=0)  # 0: off
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
        check_number("schedule.min_lr_ratio", self.min_lr_ratio, ge=0, le=1)


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
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise bad() from None
        else:
            raise bad()
        if not math.isfinite(number):
            # No option of a training config means anything as NaN or infinity.
            raise ConfigError(f"{where}: key '{key}' must be a finite number, got {value!r}")
        return number
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


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Returns how many values ``node`` stands for with every alias expanded (memoised)."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise ValueError("an alias refers to the value that contains it")
        return sizes[key]
    sizes[key] = -1
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(c, sizes) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        n = 1
    sizes[key] = min(n, MAX_YAML_NODES + 1)
    return sizes[key]


def _safe_yaml(text: str, where: str) -> Any:
    """Returns ``yaml.safe_load(text)``, bounded for untrusted text.

    The nesting depth is checked on the event stream first (the composer recurses once a level,
    so 100,000 levels would exhaust the stack), then the composed document's size with every
    alias expanded (a few lines of nested aliases, the "billion laughs", stand for 10^9 values
    that later code would walk).

    Raises:
        ConfigError: not valid YAML, nested deeper than MAX_YAML_DEPTH, or more than
            MAX_YAML_NODES values once aliases are expanded.
    """
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(
                        f"{where}: nested more than {MAX_YAML_DEPTH} levels deep; refused"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}) > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where}: expands to more than {MAX_YAML_NODES} values (aliases counted "
                    "each time they are used); refused"
                )
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None
    except ValueError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    from facexpr.io._checks import open_regular

    try:
        with open_regular(path, "config file") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except InputError as e:
        problem = "config file not found" if e.problem.endswith("is missing") else e.problem
        raise ConfigError(f"{path}: {problem}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: config file is larger than {MAX_YAML_BYTES} bytes; refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    data = _safe_yaml(text, str(path))
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
            value = _safe_yaml(text, f"--set {key}") if text else ""
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

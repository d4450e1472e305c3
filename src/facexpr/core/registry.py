"""Models by name, as in timm: ``create_model("mini_xception.fer2013", pretrained=True)``.

A builder registered with :func:`register_model` makes an architecture; a tag after the dot picks
a weights file described by a :class:`WeightsCard` (where it lies, its sha256, input size,
normalisation, labels, licence), so preprocessing follows from the name. ``nn/__init__.py``'s
explicit imports fill the registry.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facexpr.core.errors import ConfigError


@dataclass(frozen=True)
class WeightsCard:
    """What a pretrained weights file is.

    Attributes:
        tag: the name after the dot ("fer2013").
        loader: returns the model with these weights loaded (may raise InputError when the file
            is missing, with the command that makes it).
        input_size: (H, W) px the model expects.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel std divided by.
        labels: output class names, if a classifier.
        license: licence of the weights.
        source: where they come from.
        notes: anything a user must know (e.g. "training-time teacher only, not shipped").
    """

    tag: str
    loader: Callable[[], Any]
    input_size: tuple[int, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    notes: str = ""


@dataclass
class _Entry:
    builder: Callable[..., Any]
    cards: dict[str, WeightsCard] = field(default_factory=dict)
    default_tag: str | None = None


_MODELS: dict[str, _Entry] = {}


def register_model(
    name: str, *, cards: tuple[WeightsCard, ...] = (), default_tag: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Returns a decorator registering an architecture builder under ``name``.

    Raises:
        ConfigError: the name is taken.
    """

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ConfigError(f"model name '{name}' is already registered")
        tags = {c.tag: c for c in cards}
        _MODELS[name] = _Entry(builder, tags, default_tag or (cards[0].tag if cards else None))
        return builder

    return deco


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Returns the sorted registered names matching a glob ("arch" or, with weights, "arch.tag")."""
    names = []
    for arch, entry in _MODELS.items():
        if pretrained:
            names += [f"{arch}.{t}" for t in entry.cards]
        else:
            names.append(arch)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _lookup(name: str) -> tuple[_Entry, str, str | None]:
    arch, _, tag = name.partition(".")
    if arch not in _MODELS:
        close = difflib.get_close_matches(arch, list(_MODELS), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint}; see facexpr.core.registry.list_models()")
    entry = _MODELS[arch]
    tag = tag or entry.default_tag
    if tag is not None and tag not in entry.cards and entry.cards:
        raise ConfigError(f"model '{arch}' has no weights '{tag}' (has: {', '.join(entry.cards)})")
    return entry, arch, tag


def weights_card(name: str) -> WeightsCard:
    """Returns the card of "arch.tag" (or the architecture's default weights)."""
    entry, arch, tag = _lookup(name)
    if tag is None or tag not in entry.cards:
        raise ConfigError(f"model '{arch}' has no pretrained weights")
    return entry.cards[tag]


def create_model(name: str, *, pretrained: bool = False, **kwargs: Any) -> Any:
    """Returns the model ``name`` ("arch" or "arch.tag"), with its weights if ``pretrained``.

    Raises:
        ConfigError: unknown name or tag (with close matches).
    """
    entry, _, _ = _lookup(name)
    if pretrained:
        if kwargs:
            raise ConfigError("pretrained models take no builder arguments")
        return weights_card(name).loader()
    return entry.builder(**kwargs)

"""What a recipe is (model + data + loss) and the registry of recipes by name.

A recipe is a small class: the loop (:mod:`facexpr.train.engine`) is the same for every model;
what differs is how to build the model and its data and what one step's losses are. A recipe is
constructed with its two config sections (its ``ModelConfig`` and ``DataConfig`` dataclasses) and
never sees the rest of the config.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from facexpr.core.errors import ConfigError
from facexpr.train.data import BatchSource

__all__ = ["DataSpec", "Recipe", "get_recipe", "list_recipes", "register_recipe"]


@dataclass(frozen=True)
class DataSpec:
    """How the loop wants its data split: global micro-batch size, process rank and count, seed.

    Attributes:
        batch_size: global micro-batch size over all processes.
        rank: this process's rank.
        world_size: number of processes.
        seed: the run's seed (data order and augmentation).
    """

    batch_size: int
    rank: int = 0
    world_size: int = 1
    seed: int = 0


class Recipe:
    """Base class of recipes. Subclasses set the class attributes and implement ``build_model``,
    ``build_data`` and ``step``; ``evaluate`` and ``visualise`` are optional.

    Attributes:
        name: the recipe's name (``facexpr train NAME``).
        ModelConfig: dataclass of the ``model:`` section.
        DataConfig: dataclass of the ``data:`` section.
    """

    name: ClassVar[str] = ""
    ModelConfig: ClassVar[type]
    DataConfig: ClassVar[type]

    def __init__(self, model: Any, data: Any) -> None:
        self.model_cfg = model
        self.data_cfg = data

    def build_model(self) -> torch.nn.Module:
        """Returns the model to train (on CPU; the loop moves it)."""
        raise NotImplementedError

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> BatchSource | None:
        """Returns the batches of a split (None: the recipe has no such split)."""
        raise NotImplementedError

    def step(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Returns one micro-batch's losses: ``'loss'`` (what is minimised) and any others to log.

        ``model`` may be the DDP wrapper: call it (``model(x)``) so gradients are synchronised.
        """
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, data: BatchSource) -> dict[str, float]:
        """Returns evaluation metrics of the bare model on ``data`` (default: none)."""
        return {}

    def visualise(self, model: torch.nn.Module, data: BatchSource, path: Path) -> Path | None:
        """Writes a picture of what the model does (e.g. reconstructions) to ``path`` (PNG), or
        returns None when the recipe has none."""
        return None

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        """Writes what later stages use (beyond ``model.safetensors``) at the end of a run, e.g.
        the bare encoder; returns the files written (default: none)."""
        return []


_RECIPES: dict[str, str] = {
    # name -> "module:Class", imported on first use so `facexpr train --help` stays light.
    "mae": "facexpr.train.recipes.mae:MAERecipe",
    "expression": "facexpr.train.recipes.expression:ExpressionRecipe",
    "heads": "facexpr.train.recipes.heads:HeadsRecipe",
    "animator": "facexpr.train.recipes.animator:AnimatorRecipe",
    "renderer": "facexpr.train.recipes.renderer:RendererRecipe",
    "normalizer": "facexpr.train.recipes.normalizer:NormalizerRecipe",
}


def register_recipe(name: str, target: str) -> None:
    """Registers a recipe class by ``"module:Class"`` under ``name``."""
    _RECIPES[name] = target


def list_recipes() -> list[str]:
    """Returns the registered recipe names, sorted."""
    return sorted(_RECIPES)


def get_recipe(name: str) -> type[Recipe]:
    """Returns a recipe class by registered name or by ``"package.module:Class"``.

    Raises:
        ConfigError: unknown name (with the closest matches) or a path that does not import.
    """
    target = _RECIPES.get(name)
    if target is None:
        if ":" not in name:
            close = difflib.get_close_matches(name, list(_RECIPES), n=2)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise ConfigError(
                f"unknown recipe '{name}'{hint}; known: {', '.join(list_recipes())}, or give "
                "'package.module:Class'"
            )
        target = name
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"recipe '{name}': cannot import {target} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Recipe)):
        raise ConfigError(f"recipe '{name}': {target} is not a facexpr.train.recipe.Recipe")
    return cls

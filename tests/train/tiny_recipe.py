"""A tiny regression recipe for the engine tests: a 2-layer MLP fitting a fixed linear map.

Importable by path ("tiny_recipe:TinyRecipe") from subprocesses (torchrun) with this folder on
``sys.path``. ``model.noise > 0`` makes each step draw from the torch, numpy and python global
RNGs and each sample's augmentation from its own generator, so a resume that failed to restore any
of them would diverge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.train.data import IndexedBatches
from facexpr.train.recipe import DataSpec, Recipe


@dataclass
class TinyModelConfig:
    hidden: int = 16
    noise: float = 0.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ConfigError(f"model.hidden must be >= 1, got {self.hidden}")


@dataclass
class TinyDataConfig:
    n_train: int = 64
    n_val: int = 32
    dim: int = 8
    augment: float = 0.0


def _make(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.linspace(-1, 1, dim)
    x = torch.randn(n, dim, generator=g)
    return x, (x @ w).unsqueeze(1) + 0.01 * torch.randn(n, 1, generator=g)


class TinyRecipe(Recipe):
    name = "tiny"
    ModelConfig = TinyModelConfig
    DataConfig = TinyDataConfig

    def build_model(self) -> torch.nn.Module:
        d, h = self.data_cfg.dim, self.model_cfg.hidden
        return torch.nn.Sequential(
            torch.nn.Linear(d, h),
            torch.nn.Tanh(),
            torch.nn.Dropout(self.model_cfg.dropout),
            torch.nn.Linear(h, 1),
        )

    def build_data(self, split, spec: DataSpec):
        n = self.data_cfg.n_train if split == "train" else self.data_cfg.n_val
        x, y = _make(n, self.data_cfg.dim, 1 if split == "train" else 2)
        amp = self.data_cfg.augment

        def fetch(idx, rngs):
            xs = x[torch.from_numpy(idx)]
            if amp:
                jitter = np.stack([r.normal(size=x.shape[1]) for r in rngs]).astype(np.float32)
                xs = xs + amp * torch.from_numpy(jitter)
            return {"x": xs, "y": y[torch.from_numpy(idx)]}

        if split == "train":
            return IndexedBatches(
                n, fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        return IndexedBatches(n, fetch, n, shuffle=False)

    def step(self, model, batch):
        x = batch["x"]
        if self.model_cfg.noise:
            global_noise = float(np.random.standard_normal()) + random.gauss(0, 1)  # noqa: NPY002
            x = x + self.model_cfg.noise * (torch.randn_like(x) + global_noise)
        pred = model(x)
        loss = torch.nn.functional.mse_loss(pred, batch["y"])
        n = torch.tensor(float(len(x)))  # this process's share of the batch, logged
        return {"loss": loss, "abs_err": (pred - batch["y"]).abs().mean(), "n": n}

    def evaluate(self, model, data):
        batch = next(iter(data.batches(0)))
        torch.randn(3)  # evaluation may use the RNG; the engine must isolate it
        return {"mse": float(torch.nn.functional.mse_loss(model(batch["x"]), batch["y"]))}

    def visualise(self, model, data, path: Path):
        return None

"""Recipe ``expression``: stage 2, triplet fine-tuning into the 16-d expression embedding.

FreeAvatar / the Global Expression Encoder's second stage with FEC's loss (Vemulapalli and Agarwal
2019, arXiv:1811.11283): the ``expression`` model of ``facexpr.nn`` (a ViT encoder, started from
stage 1's ``encoder.safetensors``, plus an L2-normalised embedding head) learns from triplets
(:mod:`facexpr.train.triplets`) with the symmetric triplet loss and a margin per triplet type.
Identity is never the cue: the three faces of a triplet are three different people.

Batches are dicts: ``images`` (3B, 3, H, W) uint8, the B anchors then the B positives then the B
negatives; ``margin`` (B,) float32; ``type`` B names. Evaluation reports triplet accuracy overall
and per type on the triplets of held-out subjects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.io.shards import decode_png
from facexpr.nn import FACE_MEAN, FACE_STD, create_model
from facexpr.nn.losses import triplet_accuracy, triplet_loss
from facexpr.nn.vit import VIT_VARIANTS
from facexpr.train.augment import FaceAugment, normalise, to_uint8_chw
from facexpr.train.checkpoint import load_model_weights
from facexpr.train.data import IndexedBatches, held_out
from facexpr.train.recipe import DataSpec, Recipe
from facexpr.train.triplets import ImagePool, Triplets, load_pool, mine_triplets, read_triplets

__all__ = ["ExpressionDataConfig", "ExpressionModelConfig", "ExpressionRecipe", "MineConfig"]


@dataclass
class ExpressionModelConfig:
    """The expression encoder.

    Attributes:
        encoder: a registered fxvit encoder.
        img_size: input side in px.
        depth: encoder blocks (0: the encoder's own).
        dim: embedding width.
        hidden_dim: the head's hidden width (0: one linear layer).
        init: stage 1's weights: a ``facexpr train mae`` run folder (its ``encoder.safetensors``)
            or an encoder ``.safetensors`` file; empty starts from random weights.
    """

    encoder: str = "fxvit_tiny_d6_p16_112"
    img_size: int = 112
    depth: int = 0
    dim: int = 16
    hidden_dim: int = 512
    init: str = ""

    def __post_init__(self) -> None:
        if self.encoder not in VIT_VARIANTS:
            raise ConfigError(
                f"model.encoder '{self.encoder}' is not an fxvit encoder "
                f"(known: {', '.join(VIT_VARIANTS)})"
            )
        for name in ("depth", "hidden_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {getattr(self, name)}")
        if self.dim < 1:
            raise ConfigError(f"model.dim must be >= 1, got {self.dim}")


@dataclass
class MineConfig:
    """One kind of mined triplets (see :func:`facexpr.train.triplets.mine_triplets`).

    Attributes:
        label: numeric label to mine by, e.g. 'arkit' (fitted blendshapes of ``facexpr dataset
            build``), 'emotion_soft' (FER+ votes), a teacher's blendshape scores, rig weights.
            Only the datasets that have it take part.
        type: the triplets' type name (its margin is ``data.margins[type]``).
        n: training triplets (held-out subjects get ``n * val_percent / 100``, at least 64).
        min_gap: label-distance gap between the positive and the negative.
        candidates: candidates drawn per anchor.
        negative: 'closest' (the nearest candidate beyond the gap: harder triplets) or 'random'.
    """

    label: str
    type: str = "teacher"
    n: int = 20000
    min_gap: float = 0.1
    candidates: int = 32
    negative: Literal["random", "closest"] = "closest"

    def __post_init__(self) -> None:
        if self.n < 0 or self.candidates < 2 or self.min_gap < 0:
            raise ConfigError(
                f"data.mine '{self.label}': n must be >= 0, candidates >= 2, min_gap >= 0"
            )


@dataclass
class ExpressionDataConfig:
    """The triplets.

    Attributes:
        shards: image datasets (shard folders); a triplets file names a key that is in several
            of them as "D:KEY".
        mine: the kinds of triplets mined by label distance (each a :class:`MineConfig`).
        triplets: JSON-lines triplet files over the shards' keys.
        margins: margin per triplet type.
        val_percent: share of subjects held out (stable hash of the anchor's subject).
        scale: random resized crop's area share (min, max).
        flip: random horizontal flips (the same decision for the three faces is not needed:
            expression similarity is mirror-invariant).
        eval_triplets: held-out triplets evaluated at most.
    """

    shards: list[str] = field(default_factory=list)
    mine: list[MineConfig] = field(default_factory=list)
    triplets: list[str] = field(default_factory=list)
    margins: dict[str, float] = field(
        default_factory=lambda: {
            "teacher": 0.1,
            "synthetic": 0.1,
            "ferplus": 0.1,
            "video": 0.1,
            "one_class": 0.1,
            "two_class": 0.1,
            "three_class": 0.2,
        }
    )
    val_percent: float = 5.0
    scale: tuple[float, float] = (0.85, 1.0)
    flip: bool = True
    eval_triplets: int = 2000

    def __post_init__(self) -> None:
        if not 0 <= self.val_percent < 100:
            raise ConfigError(f"data.val_percent must be in [0, 100), got {self.val_percent}")
        if any(m < 0 for m in self.margins.values()):
            raise ConfigError(f"data.margins must be >= 0, got {self.margins}")


class ExpressionRecipe(Recipe):
    """Stage 2: triplet fine-tuning (see the module docstring)."""

    name = "expression"
    ModelConfig = ExpressionModelConfig
    DataConfig = ExpressionDataConfig

    def __init__(self, model: ExpressionModelConfig, data: ExpressionDataConfig) -> None:
        super().__init__(model, data)
        self._pool: ImagePool | None = None
        self._splits: dict[str, Triplets] = {}

    def build_model(self) -> torch.nn.Module:
        m: ExpressionModelConfig = self.model_cfg
        kwargs: dict[str, object] = {"img_size": m.img_size}
        if m.depth:
            kwargs["depth"] = m.depth
        model = create_model(
            "expression", encoder=m.encoder, dim=m.dim, hidden_dim=m.hidden_dim or None, **kwargs
        )
        if m.init:
            path = Path(m.init)
            if path.is_dir():
                path = path / "encoder.safetensors"
            load_model_weights(model.encoder, path)
        return model

    def _triplets(self) -> tuple[ImagePool, dict[str, Triplets]]:
        if self._pool is not None:
            return self._pool, self._splits
        d: ExpressionDataConfig = self.data_cfg
        if not d.shards:
            raise ConfigError("data.shards is empty: give the image datasets the triplets use")
        if not d.mine and not d.triplets:
            raise ConfigError("give data.mine (labels to mine triplets by) and/or data.triplets")
        pool = load_pool(d.shards, sorted({m.label for m in d.mine}))
        val = np.asarray([held_out(s, d.val_percent) for s in pool.subjects.astype(str)], bool)
        parts: dict[str, list[Triplets]] = {"train": [], "val": []}
        for k, mc in enumerate(d.mine):
            n_val = max(64, mc.n * d.val_percent // 100) if d.val_percent else 0
            for split, allowed, n in (("train", ~val, mc.n), ("val", val, n_val)):
                if n:
                    t = mine_triplets(
                        pool,
                        mc.label,
                        allowed,
                        int(n),
                        type_name=mc.type,
                        min_gap=mc.min_gap,
                        candidates=mc.candidates,
                        negative=mc.negative,
                        seed=2 * k + (split == "val"),
                    )
                    parts[split].append(t)
        for f in d.triplets:
            t = read_triplets(f, pool)
            in_val = val[t.anchor] | val[t.positive] | val[t.negative]
            parts["train"].append(t.select(~in_val))
            parts["val"].append(t.select(val[t.anchor] & val[t.positive] & val[t.negative]))
        splits = {k: Triplets.concat(v) for k, v in parts.items()}
        unknown = sorted(set(splits["train"].types) | set(splits["val"].types)) if splits else []
        unknown = [t for t in unknown if t not in d.margins]
        if unknown:
            raise ConfigError(
                f"triplet type '{unknown[0]}' has no margin in data.margins "
                f"(has: {', '.join(d.margins)})"
            )
        if not len(splits["train"]):
            raise ConfigError("no training triplets (mining found none, or the files are empty)")
        self._pool, self._splits = pool, splits
        return pool, splits

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> IndexedBatches | None:
        pool, splits = self._triplets()
        t = splits[split]
        if split == "val":
            t = t.select(np.arange(len(t)) < self.data_cfg.eval_triplets)
            if not len(t):
                return None
        train = split == "train"
        aug = FaceAugment(self.model_cfg.img_size, self.data_cfg.scale, self.data_cfg.flip)
        margins = self.data_cfg.margins

        def image(i: int, rng: np.random.Generator | None) -> np.ndarray:
            return aug(decode_png(pool.png[i], f"{pool.keys[i]}.png"), rng)

        def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, object]:
            use = rngs if train else [None] * len(idx)
            imgs = [
                image(int(getattr(t, role)[j]), r)
                for role in ("anchor", "positive", "negative")
                for j, r in zip(idx, use, strict=True)
            ]
            types = [str(t.types[j]) for j in idx]
            return {
                "images": to_uint8_chw(imgs),
                "margin": torch.tensor([margins[k] for k in types], dtype=torch.float32),
                "type": types,
            }

        if train:
            return IndexedBatches(
                len(t), fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        return IndexedBatches(len(t), fetch, min(64, len(t)), shuffle=False)

    def _embed(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, ...]:
        emb = model(normalise(batch["images"], FACE_MEAN, FACE_STD))
        return tuple(emb.chunk(3))

    def step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        a, p, n = self._embed(model, batch)
        loss = triplet_loss(a.float(), p.float(), n.float(), batch["margin"])
        return {"loss": loss, "acc": triplet_accuracy(a.detach(), p.detach(), n.detach())}

    def evaluate(self, model: torch.nn.Module, data: IndexedBatches) -> dict[str, float]:
        device = next(model.parameters()).device
        right: dict[str, list[float]] = {}
        losses = []
        for batch in data.batches(0):
            a, p, n = self._embed(model, {"images": batch["images"].to(device)})
            d_ap = (a - p).pow(2).sum(1)
            ok = (d_ap < (a - n).pow(2).sum(1)) & (d_ap < (p - n).pow(2).sum(1))
            losses.append(float(triplet_loss(a, p, n, batch["margin"].to(device))) * len(ok))
            for kind, v in zip(batch["type"], ok.tolist(), strict=True):
                right.setdefault(kind, []).append(float(v))
        every = [v for vs in right.values() for v in vs]
        out = {"acc": float(np.mean(every)), "loss": sum(losses) / len(every)}
        out.update({f"acc/{k}": float(np.mean(v)) for k, v in sorted(right.items())})
        return out

"""Recipe ``mae``: stage 1, masked-autoencoder pretraining of a ViT encoder on face shards.

MAE-Face's first stage (He et al. 2022, arXiv:2111.06377, on faces as MAE-Face does): a ViT from
``facexpr.nn`` wrapped in :class:`facexpr.nn.MaskedAutoencoder` (75 % of patches masked, a light
decoder, per-patch normalised pixel loss) learns from unlabelled aligned faces: any number of
shard datasets (``facexpr dataset build``, ``dataset ferplus``, ``synth``) mixed by ratio
(:class:`facexpr.train.mixing.ShardMix`), at 112 px with light augmentation. Each evaluation
writes a reconstructions PNG (rows: input, masked input, reconstruction with the visible patches
pasted back) of held-out faces; the end of the run
writes ``encoder.safetensors``, the bare encoder that stage 2 (``expression``) starts from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.io._files import write_text_atomic
from facexpr.nn import FACE_MEAN, FACE_STD, MaskedAutoencoder, create_model
from facexpr.nn.vit import VIT_VARIANTS
from facexpr.train.augment import FaceAugment, normalise, to_uint8_chw
from facexpr.train.checkpoint import export_weights
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches, held_out
from facexpr.train.mixing import ShardIndex, ShardMix
from facexpr.train.plots import write_image_grid
from facexpr.train.recipe import DataSpec, Recipe

__all__ = ["MAEDataConfig", "MAEModelConfig", "MAERecipe"]


@dataclass
class MAEModelConfig:
    """The encoder and its MAE wrapper.

    Attributes:
        encoder: a registered fxvit encoder (``facexpr.nn.list_models("fxvit_*")``).
        img_size: input side in px.
        depth: encoder blocks (0: the encoder's own depth).
        drop_path_rate: stochastic depth of the encoder.
        decoder_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_heads: decoder attention heads.
        mask_ratio: share of patches masked.
        norm_pix_loss: regress per-patch normalised pixels.
    """

    encoder: str = "fxvit_tiny_d6_p16_112"
    img_size: int = 112
    depth: int = 0
    drop_path_rate: float = 0.0
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        if self.encoder not in VIT_VARIANTS:
            raise ConfigError(
                f"model.encoder '{self.encoder}' is not an fxvit encoder "
                f"(known: {', '.join(VIT_VARIANTS)})"
            )
        if self.depth < 0:
            raise ConfigError(f"model.depth must be >= 0 (0: the encoder's), got {self.depth}")
        check_number("model.drop_path_rate", self.drop_path_rate, ge=0, lt=1)
        check_number("model.mask_ratio", self.mask_ratio, gt=0, lt=1)


@dataclass
class MAEDataConfig:
    """The pretraining faces.

    Attributes:
        shards: dataset folders (the shard format), mixed by ``weights``.
        weights: mixing ratio per folder (empty: equal).
        scale: random resized crop's area share (min, max).
        flip: random horizontal flips.
        val_percent: share of subjects held out for evaluation (by a stable hash of the id).
        eval_batches: held-out batches per evaluation.
        n_per_epoch: samples per epoch of the mix (0: all samples of all datasets once).
    """

    shards: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    scale: tuple[float, float] = (0.8, 1.0)
    flip: bool = True
    val_percent: float = 2.0
    eval_batches: int = 2
    n_per_epoch: int = 0

    def __post_init__(self) -> None:
        check_number("data.val_percent", self.val_percent, ge=0, lt=100)
        for i, w in enumerate(self.weights):
            check_number(f"data.weights[{i}]", w, gt=0)
        if self.eval_batches < 1:
            raise ConfigError(f"data.eval_batches must be >= 1, got {self.eval_batches}")
        if self.weights and len(self.weights) != len(self.shards):
            raise ConfigError(
                f"data.weights {self.weights} must give one ratio per folder of data.shards "
                f"({len(self.shards)})"
            )


class MAERecipe(Recipe):
    """Stage 1: MAE pretraining (see the module docstring)."""

    name = "mae"
    ModelConfig = MAEModelConfig
    DataConfig = MAEDataConfig

    def __init__(self, model: MAEModelConfig, data: MAEDataConfig) -> None:
        super().__init__(model, data)
        self._indexes: list[ShardIndex] | None = None

    def build_model(self) -> MaskedAutoencoder:
        m: MAEModelConfig = self.model_cfg
        kwargs: dict[str, object] = {"img_size": m.img_size, "drop_path_rate": m.drop_path_rate}
        if m.depth:
            kwargs["depth"] = m.depth
        encoder = create_model(m.encoder, **kwargs)
        return MaskedAutoencoder(
            encoder,
            decoder_dim=m.decoder_dim,
            decoder_depth=m.decoder_depth,
            decoder_num_heads=m.decoder_heads,
            mask_ratio=m.mask_ratio,
            norm_pix_loss=m.norm_pix_loss,
        )

    def _mix(self, split: str, seed: int) -> ShardMix | None:
        d: MAEDataConfig = self.data_cfg
        if not d.shards:
            raise ConfigError(
                "data.shards is empty: give the face datasets, e.g. --set "
                "'data.shards=[data/utkface]' (build one with `facexpr dataset build`)"
            )
        if self._indexes is None:
            self._indexes = [ShardIndex(p) for p in d.shards]
        parts, ratios = {}, {}
        for i, ix in enumerate(self._indexes):
            keep = {s for s in ix.subject_ids if held_out(s, d.val_percent) == (split == "val")}
            if not keep:
                continue
            name = f"{i}:{Path(d.shards[i]).name}"
            parts[name] = (
                ix
                if len(keep) == len(set(ix.subject_ids))
                else ShardIndex(d.shards[i], subjects=keep)
            )
            ratios[name] = d.weights[i] if d.weights else 1.0
        if not parts:
            if split == "train":
                raise ConfigError("data.val_percent holds out every subject: no training faces")
            return None
        n = (d.n_per_epoch or None) if split == "train" else None
        return ShardMix(parts, ratios, n=n, size=self.model_cfg.img_size, seed=seed)

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> IndexedBatches | None:
        d: MAEDataConfig = self.data_cfg
        if split == "val" and d.val_percent == 0:
            return None
        mix = self._mix(split, spec.seed)
        if mix is None:
            return None
        train = split == "train"
        aug = FaceAugment(self.model_cfg.img_size, d.scale, d.flip)

        def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> torch.Tensor:
            use = rngs if train else [None] * len(idx)
            return to_uint8_chw(
                [aug(np.asarray(mix[int(i)].image), r) for i, r in zip(idx, use, strict=True)]
            )

        if train:
            return IndexedBatches(
                len(mix), fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        bs = min(spec.batch_size, 16, len(mix))
        return IndexedBatches(min(len(mix), bs * d.eval_batches), fetch, bs, shuffle=False)

    def step(self, model: torch.nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, _, _ = model(normalise(batch, FACE_MEAN, FACE_STD))
        return {"loss": loss}

    def evaluate(self, model: torch.nn.Module, data: IndexedBatches) -> dict[str, float]:
        torch.manual_seed(0)  # the same masks at every evaluation (the RNG is forked here)
        losses = [float(model(normalise(b, FACE_MEAN, FACE_STD))[0]) for b in data.batches(0)]
        return {"loss": sum(losses) / len(losses)} if losses else {}

    def visualise(self, model: torch.nn.Module, data: IndexedBatches, path: Path) -> Path | None:
        batch = next(data.batches(0), None)
        if batch is None:
            return None
        torch.manual_seed(0)
        x = normalise(batch[:8].to(next(model.parameters()).device), FACE_MEAN, FACE_STD)
        rec = model.reconstruct(x, FACE_MEAN, FACE_STD)
        return write_image_grid([rec.original, rec.masked, rec.pasted], path)

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        enc = model.encoder
        weights = export_weights(enc, run_dir / "encoder.safetensors")
        info = run_dir / "encoder.json"
        write_text_atomic(
            info,
            json.dumps({"encoder": self.model_cfg.encoder, "config": enc.config_dict()}, indent=1),
        )
        return [weights, info]

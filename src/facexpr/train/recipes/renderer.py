"""Recipe ``renderer``: the multi-avatar neural renderer (:mod:`facexpr.nn.neural_renderer`).

Trains one generator for several avatars on (rig weights, render) pairs of the real renderer
(:mod:`facexpr.synth.rig_renders`: a fixed frontal view, cached once per avatar and split under
``data.cache``). The loss is FreeAvatar's (arXiv:2409.13180): L1 on the image plus weighted L1
on the eye and mouth boxes of each avatar. Evaluation reports L1 and PSNR on held-out rig
weights per avatar; pictures show real renders over neural ones; the end of the run writes
``renderer.safetensors`` and its card ``renderer.json`` (:func:`load_neural_renderer`).

Adding an avatar: with ``model.base`` (an exported renderer) and ``data.add_avatars`` (names or
glTF/GLB files) the run starts from the base renderer, adds an input layer and an identity code
per new avatar and trains only those (everything shared is frozen, there are no batch
statistics), so the other avatars' outputs stay bit-identical; the export holds all avatars.
``facexpr train renderer --base RUN --add-avatar person.glb`` sets both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.nn.neural_renderer import (
    BUILTIN_AVATARS,
    NeuralRenderer,
    load_neural_renderer,
    neural_renderer,
)
from facexpr.nn.registry import WeightsCard, read_card, sha256_file, weights_to_bytes
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches
from facexpr.train.plots import write_image_grid
from facexpr.train.recipe import DataSpec, Recipe

log = logging.getLogger(__name__)

__all__ = [
    "RendererDataConfig",
    "RendererModelConfig",
    "RendererRecipe",
    "avatar_name",
    "box_masks",
    "psnr",
    "renderer_loss",
]


@dataclass
class RendererModelConfig:
    """The generator.

    Attributes:
        size: output side, px (a power of two; FreeAvatar's is 256).
        latent_dim: shared expression latent width.
        id_dim: identity code length.
        style_dim: style vector width.
        base_channels: channels of the finest feature map.
        max_channels: channels of the coarsest ones.
        base: an exported renderer (``renderer.safetensors`` or its run folder) to add
            ``data.add_avatars`` to; its card fixes the architecture (the fields above are
            ignored); empty trains a new renderer.
    """

    size: int = 128
    latent_dim: int = 256
    id_dim: int = 16
    style_dim: int = 64
    base_channels: int = 12
    max_channels: int = 192
    base: str = ""

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ConfigError(f"model.size must be a power of two >= 16, got {self.size}")
        for name in ("latent_dim", "id_dim", "style_dim", "base_channels", "max_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class RendererDataConfig:
    """The (rig weights, render) pairs.

    Attributes:
        avatars: avatars of a new renderer: names (``facexpr.avatars.list_avatars()``) or
            glTF/GLB files with morph targets.
        add_avatars: avatars to add to ``model.base`` (then ``avatars`` is not used).
        n_train: training pairs per avatar.
        n_val: held-out pairs per avatar (other rig weights, same view).
        seed: data seed (which rig weights are drawn).
        p_single: share of single-shape activations.
        p_neutral: share of neutral faces.
        cache: folder of the rendered pairs (built on first use; delete it to rebuild).
        workers: rendering processes when building the cache.
        eye_weight: weight of the L1 on the eye boxes.
        mouth_weight: weight of the L1 on the mouth boxes.
    """

    avatars: list[str] = field(default_factory=lambda: list(BUILTIN_AVATARS))
    add_avatars: list[str] = field(default_factory=list)
    n_train: int = 640
    n_val: int = 48
    seed: int = 0
    p_single: float = 0.15
    p_neutral: float = 0.03
    cache: str = "data/renderer_cache"
    workers: int = 1
    eye_weight: float = 1.0
    mouth_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        check_number("data.p_single", self.p_single, ge=0, le=1)
        check_number("data.p_neutral", self.p_neutral, ge=0, le=1)
        check_number("data.eye_weight", self.eye_weight, ge=0)
        check_number("data.mouth_weight", self.mouth_weight, ge=0)
        for what in ("avatars", "add_avatars"):
            names = [avatar_name(a) for a in getattr(self, what)]
            if len(set(names)) != len(names):
                raise ConfigError(f"data.{what} names an avatar twice: {getattr(self, what)}")
        if not self.avatars and not self.add_avatars:
            raise ConfigError("data.avatars is empty: give the avatars to train")


def avatar_name(spec: str) -> str:
    """Returns the renderer's name of an avatar spec: a glTF/GLB file's stem, else the name."""
    p = Path(spec)
    return p.stem if p.suffix.lower() in (".glb", ".gltf") else spec


def box_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Returns (B, K, size, size) float masks of (B, K, 4) boxes (x0, y0, x1, y1, px)."""
    c = torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5
    x0, y0, x1, y1 = (boxes[..., k, None] for k in range(4))
    inx = ((c >= x0) & (c < x1)).float()  # (B, K, S)
    iny = ((c >= y0) & (c < y1)).float()
    return iny[..., :, None] * inx[..., None, :]


def renderer_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    boxes: torch.Tensor,
    eye_weight: float = 1.0,
    mouth_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Returns the losses of (B, 3, S, S) renders against targets in [0, 1].

    ``l1`` is the mean absolute error over the image, ``eyes`` and ``mouth`` over the pixels of
    each sample's (B, 2, 4) eye and mouth boxes; ``loss = l1 + eye_weight * eyes +
    mouth_weight * mouth``.
    """
    err = (out - target).abs()
    masks = box_masks(boxes, out.shape[-1])
    per_px = err.mean(1, keepdim=True)  # (B, 1, S, S)
    crop = (per_px * masks).sum((0, 2, 3)) / masks.sum((0, 2, 3)).clamp_min(1.0)  # (2,)
    l1 = err.mean()
    return {
        "loss": l1 + eye_weight * crop[0] + mouth_weight * crop[1],
        "l1": l1,
        "eyes": crop[0],
        "mouth": crop[1],
    }


def psnr(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns (B,) PSNR in dB of images in [0, 1] (peak 1)."""
    mse = ((out - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


@dataclass
class _Pairs:
    images: np.ndarray  # (N, S, S, 3) uint8
    weights: np.ndarray  # (N, Cmax) float32, zero-padded
    index: np.ndarray  # (N,) int64 avatar index in the model
    boxes: np.ndarray  # (N, 2, 4) float32


class RendererRecipe(Recipe):
    """The neural renderer (see the module docstring)."""

    name = "renderer"
    ModelConfig = RendererModelConfig
    DataConfig = RendererDataConfig

    def __init__(self, model: RendererModelConfig, data: RendererDataConfig) -> None:
        super().__init__(model, data)
        if model.base and not data.add_avatars:
            raise ConfigError(
                "model.base is set but data.add_avatars is empty: give the avatars to add "
                "(--add-avatar FILE)"
            )
        if data.add_avatars and not model.base:
            raise ConfigError(
                "data.add_avatars needs model.base, the renderer to add them to (--base RUN)"
            )
        self._base_card: WeightsCard | None = None
        if model.base:
            path = Path(model.base)
            self._base_file = path / "renderer.safetensors" if path.is_dir() else path
            self._base_card = read_card(self._base_file.with_suffix(".json"))
            taken = set(self._base_card.config.get("avatars", ()))
            dup = [a for a in data.add_avatars if avatar_name(a) in taken]
            if dup:
                raise ConfigError(
                    f"data.add_avatars: '{avatar_name(dup[0])}' is already an avatar of "
                    f"{self._base_file}"
                )
        self._specs = list(data.add_avatars) if model.base else list(data.avatars)
        self._cached: dict[str, Any] = {}
        self.last_eval: dict[str, float] = {}

    # ------------------------------------------------------------------ data
    @property
    def size(self) -> int:
        """Output side, px (the base renderer's when extending one)."""
        if self._base_card is not None:
            return int(self._base_card.config.get("size", 256))
        return self.model_cfg.size

    def _options(self) -> Any:
        from facexpr.synth.rig_renders import RigRenderOptions

        d: RendererDataConfig = self.data_cfg
        return RigRenderOptions(self.size, d.seed, d.p_single, d.p_neutral)

    def _split(self, split: str) -> list[Any]:
        """Returns the cached pairs of every avatar of ``split`` (rendered on first use)."""
        if split not in self._cached:
            from facexpr.synth.rig_renders import build_cache, load_cache

            d: RendererDataConfig = self.data_cfg
            n = d.n_train if split == "train" else d.n_val
            out = []
            for spec in self._specs:
                path = build_cache(d.cache, spec, split, n, self._options(), workers=d.workers)  # type: ignore[arg-type]
                out.append(load_cache(path))
            self._cached[split] = out
        return self._cached[split]

    def _pairs(self, split: str, index_of: dict[str, int]) -> _Pairs:
        parts = self._split(split)
        cmax = max(p.weights.shape[1] for p in parts)
        weights = np.concatenate(
            [np.pad(p.weights, ((0, 0), (0, cmax - p.weights.shape[1]))) for p in parts]
        )
        idx = np.concatenate(
            [
                np.full(len(p.weights), index_of[avatar_name(s)])
                for s, p in zip(self._specs, parts, strict=True)
            ]
        ).astype(np.int64)
        boxes = np.concatenate([np.broadcast_to(p.boxes, (len(p.weights), 2, 4)) for p in parts])
        images = np.concatenate([p.images for p in parts])
        if split != "train":
            # Avatars interleaved, so that every evaluation batch and picture shows each of them.
            within = np.concatenate([np.arange(len(p.weights)) for p in parts])
            order = np.lexsort((idx, within))
            images, weights, idx, boxes = images[order], weights[order], idx[order], boxes[order]
        return _Pairs(images, weights, idx, boxes)

    def _model_avatars(self) -> list[str]:
        base = list(self._base_card.config.get("avatars", ())) if self._base_card else []
        return base + [avatar_name(s) for s in self._specs]

    def build_model(self) -> NeuralRenderer:
        names = [avatar_name(s) for s in self._specs]
        n_shapes = [p.weights.shape[1] for p in self._split("train")]
        if self._base_card is not None:
            model = load_neural_renderer(self._base_file).train()
            for name, n in zip(names, n_shapes, strict=True):
                model.add_avatar(name, n)
            model.train_only(names)
            return model
        m: RendererModelConfig = self.model_cfg
        return neural_renderer(
            names, n_shapes, m.size, m.latent_dim, m.id_dim, m.style_dim, m.base_channels,
            m.max_channels,
        )  # fmt: skip

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> IndexedBatches | None:
        index_of = {n: i for i, n in enumerate(self._model_avatars())}
        pairs = self._pairs(split, index_of)

        def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, torch.Tensor]:
            return {
                "images": torch.from_numpy(pairs.images[idx]).permute(0, 3, 1, 2).contiguous(),
                "weights": torch.from_numpy(pairs.weights[idx]),
                "index": torch.from_numpy(pairs.index[idx]),
                "boxes": torch.from_numpy(np.ascontiguousarray(pairs.boxes[idx])),
            }

        n = len(pairs.index)
        if split == "train":
            return IndexedBatches(
                n, fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        return IndexedBatches(n, fetch, min(32, n), shuffle=False)

    # ------------------------------------------------------------------ loss
    def step(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        d: RendererDataConfig = self.data_cfg
        out = model(batch["index"], batch["weights"])
        target = batch["images"].float() / 255.0
        return renderer_loss(out, target, batch["boxes"], d.eye_weight, d.mouth_weight)

    def evaluate(self, model: torch.nn.Module, data: IndexedBatches) -> dict[str, float]:
        d: RendererDataConfig = self.data_cfg
        names = self._model_avatars()
        sums: dict[str, list[float]] = {}
        total: dict[str, float] = {"loss": 0.0, "l1": 0.0, "eyes": 0.0, "mouth": 0.0}
        nb = 0
        for batch in data.batches(0):
            out = model(batch["index"], batch["weights"])
            target = batch["images"].float() / 255.0
            losses = renderer_loss(out, target, batch["boxes"], d.eye_weight, d.mouth_weight)
            for k in total:
                total[k] += float(losses[k])
            nb += 1
            l1 = (out - target).abs().flatten(1).mean(1)
            for a, e, p in zip(batch["index"].tolist(), l1.tolist(), psnr(out, target).tolist(),
                               strict=True):  # fmt: skip
                sums.setdefault(names[a], [0.0, 0.0, 0.0])
                s = sums[names[a]]
                s[0], s[1], s[2] = s[0] + e, s[1] + p, s[2] + 1
        metrics = {k: v / max(nb, 1) for k, v in total.items()}
        for name, (e, p, c) in sorted(sums.items()):
            metrics[f"l1/{name}"] = e / c
            metrics[f"psnr/{name}"] = p / c
        if sums:
            metrics["psnr"] = sum(s[1] for s in sums.values()) / sum(s[2] for s in sums.values())
        self.last_eval = metrics
        return metrics

    def visualise(self, model: torch.nn.Module, data: IndexedBatches, path: Path) -> Path | None:
        batch = next(data.batches(0), None)
        if batch is None:
            return None
        # One held-out sample per avatar where the first batch has them.
        idx = batch["index"]
        pick = [int((idx == a).nonzero()[0]) for a in torch.unique(idx).tolist()][:8]
        out = model(idx[pick], batch["weights"][pick])
        return write_image_grid([batch["images"][pick].float() / 255.0, out], path)

    # ------------------------------------------------------------------ export
    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        weights = run_dir / "renderer.safetensors"
        write_bytes_atomic(weights, weights_to_bytes(model))
        card = renderer_card(model, sha256_file(weights), self.last_eval, str(run_dir))
        info = run_dir / "renderer.json"
        write_text_atomic(info, card.to_json())
        return [weights, info]


def renderer_card(
    model: NeuralRenderer, sha256: str, metrics: dict[str, float], run_dir: str
) -> WeightsCard:
    """Returns the card of a trained renderer's weights."""
    cfg = model.config_dict()
    return WeightsCard(
        tag=Path(run_dir).name,
        input_size=(model.size, model.size),
        file="renderer.safetensors",
        sha256=sha256,
        architecture=f"neural_renderer: {len(model.avatars)} avatars, {model.size} px",
        config=json.loads(json.dumps(cfg)),
        data=("renders of the avatars by facexpr's OpenGL renderer (facexpr.synth.rig_renders)",),
        metrics={k: float(v) for k, v in metrics.items()},
        source=f"facexpr train renderer (run {run_dir})",
        train_command="facexpr train renderer --config configs/renderer_tiny.yaml",
        notes="avatars: " + ", ".join(model.avatars),
    )

"""Recipe ``normalizer``: the Norface identity normaliser on rendered pairs.

Data: pair sets of :mod:`facexpr.synth.pairs` (``DIR/inputs`` + ``DIR/targets``, same keys). A
folder in ``data.pairs`` that holds no pair set yet is rendered first with the ``data.render``
options (then reused by later runs). Every pair is decoded into memory once (96 px pairs are
~55 KB each); identities are split by a stable hash of the identity name (``data.val_percent``),
so no person is on both sides.

Loss (:func:`facexpr.nn.normalizer.normalizer_losses`), weighted by ``model.weights``:

- ``pixel``: L1 between output and canonical target over the whole image;
- ``region``: L1 inside fixed eye and mouth boxes of the canonical crop (the expression lives
  there and is a small share of the pixels);
- ``expression``: squared error between the rig weights that the expression probe reads from
  the output and the labels. The probe's own weights are trained only by ``probe`` (the weights
  it reads from the clean targets): the output's gradient does not reach the probe, so the probe
  cannot learn to read whatever the normaliser draws;
- ``latent``: squared error between the rig weights read linearly from the input's pooled
  expression tokens and the labels: the encoder learns the expression from the first steps.

Each evaluation writes a PNG with rows input | output | target of held-out pairs. The end of the
run writes ``normalizer.json``, the weights card ``facexpr normalize --weights RUN_DIR`` reads to
rebuild the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.io._files import write_text_atomic
from facexpr.nn import FACE_MEAN, FACE_STD, create_model
from facexpr.nn.normalizer import normalizer_losses, region_mask
from facexpr.nn.registry import WeightsCard, sha256_file
from facexpr.nn.vit import VIT_VARIANTS
from facexpr.train.augment import normalise
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches, held_out
from facexpr.train.plots import write_image_grid
from facexpr.train.recipe import DataSpec, Recipe

__all__ = ["NormalizerDataConfig", "NormalizerModelConfig", "NormalizerRecipe", "load_pairs"]

CARD = "normalizer.json"


@dataclass
class NormalizerModelConfig:
    """The normaliser (:func:`facexpr.nn.normalizer.normalizer`) and its loss weights.

    Attributes:
        encoder: ``conv`` or an fxvit encoder name.
        img_size: input and output side, px (multiple of 16).
        dim: merge width.
        merge_depth: Expression Merging Module blocks.
        heads: attention heads.
        decoder_channels: the decoder's four stage widths.
        encoder_channels: the conv encoder's first three widths.
        init: with an fxvit encoder, a ``facexpr train mae`` run folder (its
            ``encoder.safetensors``), an encoder ``.safetensors`` file, or a model's file whose
            encoder tensors are under ``encoder.`` (``expression.safetensors`` of a ``heads``
            run); empty: random.
        weights: loss weights of ``pixel``, ``region``, ``expression``, ``probe`` and
            ``latent``.
        code: ``tokens`` (the decoder's merge attends to the input's tokens) or ``weights``
            (a bottleneck: the decoder draws only from the 53 rig weights read from the tokens).
        teacher_forcing: with ``code: weights``, the share of each training batch drawn from
            the true rig weights instead of the read-out (the decoder learns to draw
            expressions while the read-out is still poor); 0 for none. Evaluation never does.
    """

    encoder: str = "conv"
    img_size: int = 96
    dim: int = 96
    merge_depth: int = 2
    heads: int = 4
    decoder_channels: list[int] = field(default_factory=lambda: [96, 64, 32, 16])
    encoder_channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    init: str = ""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "pixel": 1.0, "region": 5.0, "expression": 10.0, "probe": 10.0, "latent": 10.0,
        }
    )  # fmt: skip
    code: str = "tokens"
    teacher_forcing: float = 0.0

    def __post_init__(self) -> None:
        if self.code not in ("tokens", "weights"):
            raise ConfigError(f"model.code must be 'tokens' or 'weights', got '{self.code}'")
        check_number("model.teacher_forcing", self.teacher_forcing, ge=0, le=1)
        if self.teacher_forcing and self.code != "weights":
            raise ConfigError("model.teacher_forcing needs model.code: weights")
        if self.encoder != "conv" and self.encoder not in VIT_VARIANTS:
            raise ConfigError(
                f"model.encoder '{self.encoder}' is neither 'conv' nor an fxvit encoder "
                f"({', '.join(VIT_VARIANTS)})"
            )
        if self.init and self.encoder == "conv":
            raise ConfigError("model.init loads a ViT encoder: set model.encoder to an fxvit name")
        known = {"pixel", "region", "expression", "probe", "latent"}
        unknown = sorted(set(self.weights) - known)
        if unknown:
            raise ConfigError(
                f"model.weights: unknown loss '{unknown[0]}' ({', '.join(sorted(known))})"
            )
        for k, v in self.weights.items():
            check_number(f"model.weights.{k}", v, ge=0)

    def builder_args(self) -> dict[str, object]:
        """Returns the ``create_model("normalizer", ...)`` arguments."""
        return {
            "encoder": self.encoder, "img_size": self.img_size, "dim": self.dim,
            "merge_depth": self.merge_depth, "heads": self.heads,
            "decoder_channels": list(self.decoder_channels),
            "encoder_channels": list(self.encoder_channels), "code": self.code,
        }  # fmt: skip


@dataclass
class NormalizerRenderConfig:
    """How a missing pair set is rendered (:class:`facexpr.synth.pairs.PairOptions`).

    Attributes:
        n: pairs.
        seed: pair seed.
        identities: ``ict`` or a folder of textured ``.glb`` avatars.
        n_identities: random ICT identities.
        identity_seed: seed of the random ICT identities.
    """

    n: int = 4000
    seed: int = 0
    identities: str = "ict"
    n_identities: int = 400
    identity_seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.n_identities < 1:
            raise ConfigError("data.render: n and n_identities must be >= 1")


@dataclass
class NormalizerDataConfig:
    """The pairs.

    Attributes:
        pairs: pair-set folders (each with ``inputs/`` and ``targets/``), all used.
        render: how a folder of ``pairs`` with no pair set yet is rendered.
        val_percent: share of identities held out for evaluation.
        eval_n: most held-out pairs per evaluation.
    """

    pairs: list[str] = field(default_factory=list)
    render: NormalizerRenderConfig = field(default_factory=NormalizerRenderConfig)
    val_percent: float = 5.0
    eval_n: int = 64

    def __post_init__(self) -> None:
        check_number("data.val_percent", self.val_percent, ge=0, lt=100)
        if self.eval_n < 1:
            raise ConfigError(f"data.eval_n must be >= 1, got {self.eval_n}")


@dataclass(frozen=True)
class Pairs:
    """Decoded pairs in memory.

    Attributes:
        inputs: (N, S, S, 3) uint8.
        targets: (N, S, S, 3) uint8.
        weights: (N, 53) float32 rig weights.
        subjects: (N,) identity names.
    """

    inputs: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    subjects: np.ndarray


def load_pairs(folder: str | Path, size: int) -> Pairs:
    """Returns every pair of a pair set, decoded.

    Raises:
        InputError: a missing or corrupt shard dataset (named).
        ConfigError: inputs and targets differ in keys, or the crops are not ``size`` px.
    """
    from facexpr.io.shards import ShardReader

    folder = Path(folder)
    parts = {}
    for part in ("inputs", "targets"):
        reader = ShardReader(folder / part, shuffle_buffer=0)
        parts[part] = {s.key: s for s in reader}
    keys = sorted(parts["inputs"])
    if keys != sorted(parts["targets"]):
        raise ConfigError(f"{folder}: inputs/ and targets/ hold different pairs")
    if not keys:
        raise ConfigError(f"{folder}: the pair set is empty")
    ins = np.stack([np.asarray(parts["inputs"][k].image) for k in keys])
    tgs = np.stack([np.asarray(parts["targets"][k].image) for k in keys])
    if ins.shape[1:3] != (size, size) or tgs.shape[1:3] != (size, size):
        raise ConfigError(
            f"{folder}: crops are {ins.shape[1]} px, model.img_size is {size}: render the pairs "
            "at that size"
        )
    w = np.stack([np.asarray(parts["inputs"][k].labels["ict_weights"], np.float32) for k in keys])
    subj = np.array([parts["inputs"][k].subject_id for k in keys])
    return Pairs(ins, tgs, w, subj)


class NormalizerRecipe(Recipe):
    """The Norface normaliser (see the module docstring)."""

    name = "normalizer"
    ModelConfig = NormalizerModelConfig
    DataConfig = NormalizerDataConfig

    def __init__(self, model: NormalizerModelConfig, data: NormalizerDataConfig) -> None:
        super().__init__(model, data)
        self._pairs: Pairs | None = None
        self._region: torch.Tensor | None = None

    def build_model(self) -> torch.nn.Module:
        m: NormalizerModelConfig = self.model_cfg
        model = create_model("normalizer", **m.builder_args())
        if m.code == "weights":
            # The read-out predicts z-scores of the training labels (a resumed run's buffers are
            # then overwritten by its checkpoint's, the same values).
            w = self._all_pairs().weights
            train = ~np.array([held_out(str(s), self.data_cfg.val_percent)
                               for s in self._all_pairs().subjects])  # fmt: skip
            w = torch.from_numpy(w[train] if train.any() else w)
            model.weight_mean.copy_(w.mean(0))
            model.weight_std.copy_(w.std(0).clamp_min(1e-3))
        if m.init:
            _load_encoder(model.encoder, Path(m.init))
        return model

    def _all_pairs(self) -> Pairs:
        if self._pairs is None:
            d: NormalizerDataConfig = self.data_cfg
            if not d.pairs:
                raise ConfigError(
                    "data.pairs is empty: give pair-set folders, e.g. --set "
                    "'data.pairs=[data/norface_pairs]' (rendered there when missing)"
                )
            loaded = [load_pairs(_ensure_pairs(p, d.render, self.model_cfg.img_size),
                                 self.model_cfg.img_size) for p in d.pairs]  # fmt: skip
            self._pairs = Pairs(*(np.concatenate([getattr(p, f) for p in loaded]) for f in
                                  ("inputs", "targets", "weights", "subjects")))  # fmt: skip
        return self._pairs

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> IndexedBatches | None:
        d: NormalizerDataConfig = self.data_cfg
        if split == "val" and d.val_percent == 0:
            return None
        p = self._all_pairs()
        val = np.array([held_out(str(s), d.val_percent) for s in p.subjects])
        idx = np.flatnonzero(val if split == "val" else ~val)
        if len(idx) == 0:
            if split == "train":
                raise ConfigError("data.val_percent holds out every identity: no training pairs")
            return None
        train = split == "train"

        def fetch(items: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, torch.Tensor]:
            # No flips: the canonical face is not exactly symmetric, and a mirrored target would
            # teach the average of it and its mirror image.
            ids = idx[items]
            return {
                "input": torch.from_numpy(p.inputs[ids]).permute(0, 3, 1, 2),
                "target": torch.from_numpy(p.targets[ids]).permute(0, 3, 1, 2),
                "weights": torch.from_numpy(p.weights[ids]),
            }

        if train:
            return IndexedBatches(len(idx), fetch, spec.batch_size, seed=spec.seed,
                                  rank=spec.rank, world_size=spec.world_size)  # fmt: skip
        n = min(len(idx), d.eval_n)
        bs = min(16, n)
        return IndexedBatches(n - n % bs, fetch, bs, shuffle=False)

    def _losses(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict:
        bare = model.module if hasattr(model, "module") else model
        x = normalise(batch["input"], FACE_MEAN, FACE_STD)
        target = batch["target"].float() / 255.0
        code = None
        tf = self.model_cfg.teacher_forcing
        if tf and model.training:
            # Rows drawn from the true weights; NaN rows keep the model's own read-out.
            w = batch["weights"].float()
            keep = torch.rand(w.shape[0], 1, device=w.device) < tf
            code = torch.where(keep, w, torch.full_like(w, float("nan")))
        out, w_lat = model(x, return_latent=True, code=code)
        if self._region is None or self._region.device != out.device:
            self._region = region_mask(out.shape[-1], out.device)
        w_out = w_tgt = None
        if bare.probe is not None:
            frozen = {k: v.detach() for k, v in bare.probe.named_parameters()}
            w_out = torch.func.functional_call(bare.probe, frozen, (out,))
            w_tgt = bare.probe(target)
        terms = normalizer_losses(out, target, region=self._region, weights_true=batch["weights"],
                                  weights_out=w_out, weights_target=w_tgt,
                                  weights_latent=w_lat,
                                  latent_scale=getattr(bare, "weight_std", None))  # fmt: skip
        if "latent" in terms and getattr(bare, "weight_std", None) is not None:
            # Logged only (no loss weight): the read-out's plain squared error, comparable with
            # the mean weights' (the standardised ``latent`` of the mean is ~1).
            terms["latent_mse"] = torch.nn.functional.mse_loss(w_lat.detach(), batch["weights"])
        return out, terms

    def step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict:
        _, terms = self._losses(model, batch)
        wts = self.model_cfg.weights
        loss = sum(wts.get(k, 0.0) * v for k, v in terms.items())
        return {"loss": loss, **terms}

    def evaluate(self, model: torch.nn.Module, data: IndexedBatches) -> dict[str, float]:
        sums: dict[str, float] = {}
        n = 0
        for batch in data.batches(0):
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            _, terms = self._losses(model, batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
        return {k: v / n for k, v in sums.items()} if n else {}

    def visualise(self, model: torch.nn.Module, data: IndexedBatches, path: Path) -> Path | None:
        batch = next(data.batches(0), None)
        if batch is None:
            return None
        dev = next(model.parameters()).device
        x = batch["input"][:8].to(dev)
        out = model(normalise(x, FACE_MEAN, FACE_STD))
        return write_image_grid([x.float() / 255.0, out, batch["target"][:8].float() / 255.0], path)

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        m: NormalizerModelConfig = self.model_cfg
        weights = run_dir / "model.safetensors"
        card = WeightsCard(
            tag=run_dir.name or "run",
            input_size=(m.img_size, m.img_size),
            mean=FACE_MEAN,
            std=FACE_STD,
            file=str(weights.resolve()),
            sha256=sha256_file(weights),
            architecture=f"normalizer: {m.encoder} encoder + Expression Merging Module + conv "
            f"decoder, {m.img_size} px",
            config=m.builder_args(),
            data=("facexpr.synth.pairs renders (ICT FaceKit, MIT; captured avatars if given)",),
            source="facexpr train normalizer",
            train_command="facexpr train normalizer --config configs/normalizer_tiny.yaml",
        )
        path = run_dir / CARD
        write_text_atomic(path, card.to_json())
        return [path]


def _ensure_pairs(folder: str, render: NormalizerRenderConfig, size: int) -> Path:
    """Returns ``folder``, rendering its pair set first if it holds none."""
    import logging

    path = Path(folder)
    if (path / "inputs" / "manifest.json").exists() and (
        path / "targets" / "manifest.json"
    ).exists():
        return path
    from facexpr.synth.pairs import PairOptions, generate_pairs

    logging.getLogger(__name__).info("%s: no pair set; rendering %d pairs", path, render.n)
    opts = PairOptions(
        n=render.n, size=size, render_size=max(size + 16, round(size * 1.5)), seed=render.seed,
        identities=render.identities, n_identities=render.n_identities,
        identity_seed=render.identity_seed,
    )  # fmt: skip
    generate_pairs(opts, path, overwrite=True)
    return path


def _load_encoder(encoder: torch.nn.Module, init: Path) -> None:
    """Loads a ViT encoder's weights from a MAE run folder or a ``.safetensors`` file; the fixed
    sin-cos position table is rebuilt when the run trained at another input size."""
    from safetensors.torch import load_file

    from facexpr.core.errors import ModelError
    from facexpr.train.checkpoint import confine

    path = confine(init / "encoder.safetensors", init) if init.is_dir() else init
    if not path.is_file():
        raise ModelError(f"{path}: encoder weights not found (model.init)")
    tensors = load_file(str(path))
    if any(k.startswith("encoder.") for k in tensors):
        # A whole model's file (an ``expression`` or ``analysis`` run): its encoder's tensors.
        tensors = {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}
    own = encoder.state_dict()
    if "pos_embed" in tensors and tensors["pos_embed"].shape != own["pos_embed"].shape:
        tensors["pos_embed"] = own["pos_embed"]
    try:
        encoder.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not fit the {type(encoder).__name__} ({e})") from None

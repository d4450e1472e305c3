"""Recipe ``expression``: stage 2, triplet fine-tuning into the 16-d expression embedding.

FreeAvatar / the Global Expression Encoder's second stage with FEC's loss (Vemulapalli and Agarwal
2019, arXiv:1811.11283): the ``expression`` model of ``facexpr.nn`` (a ViT encoder, started from
stage 1's ``encoder.safetensors``, plus an L2-normalised embedding head) learns from the triplet
sources of :mod:`facexpr.train.triplets` (synthetic rig weights, Blendshape V2 teacher vectors,
FER+ votes, video tracks, FEC), mixed by ratio, with the symmetric triplet loss and a margin per
triplet type. The sources vary identity inside each triplet, so identity is never the cue.

Batches are dicts: ``images`` (3B, 3, H, W) uint8, the B anchors then the B positives then the B
negatives; ``margin`` (B,) float32; ``type`` B type names; with ``model.aux_weight > 0`` also
``labels`` (3B, aux_dim) float32, the sources' label vectors in the same order, and ``has_label``
(3B,) bool (False where a source has none of that width). Evaluation reports triplet accuracy
overall and per type on triplets mined from the held-out subjects (the sources' ``test`` side).

Optional auxiliary loss (``model.aux_weight``, default 0: off): one linear head per labelled
triplet type (``rig``: the exact rig weights, ``teacher``: Blendshape V2 scores) regresses the
label vector from the encoder's pooled features or the embedding (``model.aux_input``; MSE on
all three faces), added to the triplet loss
times ``aux_weight``. An experiment against the collapse of the triplet loss alone (issue 12); the
heads train only and are left out of ``expression.safetensors`` (see
:meth:`ExpressionRecipe.export`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.nn import FACE_MEAN, FACE_STD, create_model
from facexpr.nn.losses import triplet_accuracy, triplet_loss
from facexpr.nn.vit import VIT_VARIANTS
from facexpr.train.augment import FaceAugment, normalise, to_uint8_chw
from facexpr.train.checkpoint import confine, load_model_weights
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches
from facexpr.train.recipe import DataSpec, Recipe
from facexpr.train.triplets import (
    DEFAULT_MARGINS,
    FecTriplets,
    RigTriplets,
    TeacherTriplets,
    TrackTriplets,
    TripletMix,
    TripletType,
    VoteTriplets,
)

__all__ = [
    "ExpressionDataConfig",
    "ExpressionModelConfig",
    "ExpressionRecipe",
    "TripletSourceConfig",
]


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
        aux_weight: weight of the auxiliary label regression (0: off, the triplet loss alone).
        aux_dims: triplet type -> width of its label vectors, one auxiliary head each (rig:
            the synth engine's 52 ARKit weights, teacher: Blendshape V2's 51 scores without
            neutral); types not named get no auxiliary loss.
        aux_input: what the auxiliary heads read: 'features' (the encoder's pooled features) or
            'embedding' (the unit-length embedding itself, so the labels shape it directly).
    """

    encoder: str = "fxvit_tiny_d6_p16_112"
    img_size: int = 112
    depth: int = 0
    dim: int = 16
    hidden_dim: int = 512
    init: str = ""
    aux_weight: float = 0.0
    aux_dims: dict[str, int] = field(default_factory=lambda: {"rig": 52, "teacher": 51})
    aux_input: Literal["features", "embedding"] = "features"

    def __post_init__(self) -> None:
        check_number("model.aux_weight", self.aux_weight, ge=0)
        if self.aux_input not in ("features", "embedding"):
            raise ConfigError(
                f"model.aux_input must be 'features' or 'embedding', got {self.aux_input!r}"
            )
        known = {t.name.lower() for t in TripletType}
        for t, width in self.aux_dims.items():
            if t not in known:
                names = ", ".join(sorted(known))
                raise ConfigError(f"model.aux_dims: unknown triplet type '{t}' (known: {names})")
            if width < 1:
                raise ConfigError(f"model.aux_dims.{t} must be >= 1, got {width}")
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
class TripletSourceConfig:
    """One triplet source of :mod:`facexpr.train.triplets`.

    Attributes:
        kind: 'rig' (synthetic rig weights), 'teacher' (Blendshape V2 vectors), 'votes' (FER+
            vote distributions), 'track' (video tracks) or 'fec' (FEC's annotated triplets).
        datasets: shard folders (not for 'fec').
        n: training triplets to mine (FEC: all its triplets are used).
        eval_n: triplets mined from the held-out subjects for evaluation (0: none).
        ratio: share of this source in the mix.
        field: the label to mine by, for 'rig', 'teacher' and 'track' ('': the source's own).
        pos_max: largest anchor-positive distance (None: the source's default).
        margin: least extra distance of the negative when mining (None: the source's default).
        fec_csv: FEC's annotation CSV ('fec').
        fec_images: the folder of its downloaded images ('fec').
        min_agreement: FEC triplets kept when the odd one got at least this share of votes.
    """

    kind: Literal["rig", "teacher", "votes", "track", "fec"]
    datasets: list[str] = field(default_factory=list)
    n: int = 10000
    eval_n: int = 500
    ratio: float = 1.0
    field: str = ""
    pos_max: float | None = None
    margin: float | None = None
    fec_csv: str = ""
    fec_images: str = ""
    min_agreement: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 1 or self.eval_n < 0 or not self.ratio > 0:
            raise ConfigError(
                f"data.sources '{self.kind}': n must be >= 1, eval_n >= 0 and ratio > 0"
            )
        check_number(f"data.sources '{self.kind}' ratio", self.ratio, gt=0)
        if self.pos_max is not None:
            check_number(f"data.sources '{self.kind}' pos_max", self.pos_max, gt=0)
        if self.margin is not None:
            check_number(f"data.sources '{self.kind}' margin", self.margin, ge=0)
        check_number(f"data.sources '{self.kind}' min_agreement", self.min_agreement, ge=0, le=1)
        if self.kind == "fec" and not (self.fec_csv and self.fec_images):
            raise ConfigError("data.sources 'fec' needs fec_csv and fec_images")
        if self.kind != "fec" and not self.datasets:
            raise ConfigError(f"data.sources '{self.kind}' needs datasets (shard folders)")


@dataclass
class ExpressionDataConfig:
    """The triplets.

    Attributes:
        sources: the triplet sources, mixed by their ``ratio``.
        n_per_epoch: triplets per epoch of the mix (0: the sources' total).
        margins: loss margin per triplet type (``TripletType`` names, lower case).
        test_share: share of subjects held out for evaluation (the sources' subject split).
        split_seed: seed of that split.
        scale: random resized crop's area share (min, max).
        flip: random horizontal flips (expression similarity is mirror-invariant).
        eval_triplets: held-out triplets evaluated at most.
    """

    sources: list[TripletSourceConfig] = field(default_factory=list)
    n_per_epoch: int = 0
    margins: dict[str, float] = field(
        default_factory=lambda: {t.name.lower(): float(m) for t, m in DEFAULT_MARGINS.items()}
    )
    test_share: float = 0.1
    split_seed: int = 0
    scale: tuple[float, float] = (0.85, 1.0)
    flip: bool = True
    eval_triplets: int = 2000

    def __post_init__(self) -> None:
        check_number("data.test_share", self.test_share, ge=0, lt=1)
        if self.n_per_epoch < 0:
            raise ConfigError(f"data.n_per_epoch must be >= 0, got {self.n_per_epoch}")
        known = {t.name.lower() for t in TripletType}
        bad = sorted(set(self.margins) - known)
        if bad:
            raise ConfigError(
                f"data.margins: unknown triplet type '{bad[0]}' (known: {', '.join(sorted(known))})"
            )
        for name, m in self.margins.items():
            check_number(f"data.margins.{name}", m, ge=0)


def _labels(items: list, dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """Returns ``labels`` (3B, max width) float32 (zero-padded) and ``has_label`` (3B,) bool of a
    batch's triplets, anchors then positives then negatives; False for types not in ``dims``.

    Raises:
        ConfigError: a triplet's labels differ in width from its type's ``model.aux_dims``.
    """
    labels = np.zeros((3 * len(items), max(dims.values(), default=1)), np.float32)
    has = np.zeros(3 * len(items), bool)
    for r in range(3):
        for i, t in enumerate(items):
            kind = t.type_id.name.lower()
            if kind not in dims or t.labels is None:
                continue
            if t.labels[r].shape != (dims[kind],):
                raise ConfigError(
                    f"model.aux_dims.{kind} is {dims[kind]} but the '{kind}' triplets carry "
                    f"labels of shape {t.labels[r].shape}; set model.aux_dims.{kind}"
                )
            labels[r * len(items) + i, : dims[kind]] = t.labels[r]
            has[r * len(items) + i] = True
    return {"labels": torch.from_numpy(labels), "has_label": torch.from_numpy(has)}


def _build_source(
    sc: TripletSourceConfig, split: str, d: ExpressionDataConfig, size: int, seed: int
):
    """Returns one triplet source of ``sc`` for the 'train' or 'test' side, or None."""
    if sc.kind == "fec":
        if split == "test":
            return None  # FEC has no subject ids to hold people out by; it trains only
        from facexpr.io.datasets.fec import FecDataset

        return FecTriplets(FecDataset(sc.fec_csv, sc.fec_images, size=size), sc.min_agreement)
    n = sc.n if split == "train" else sc.eval_n
    if n == 0 or (split == "test" and d.test_share == 0):
        return None
    kw: dict[str, object] = {
        "split": split if d.test_share else "all",
        "test_share": d.test_share or 0.2,
        "split_seed": d.split_seed,
        "seed": seed + (split == "test"),
        "size": size,
    }
    if sc.pos_max is not None:
        kw["pos_max"] = sc.pos_max
    if sc.margin is not None:
        kw["margin"] = sc.margin
    if sc.field:
        if sc.kind == "votes":
            raise ConfigError("data.sources 'votes' mines by emotion_soft; it takes no field")
        kw["field"] = sc.field
    cls = {"rig": RigTriplets, "teacher": TeacherTriplets, "votes": VoteTriplets,
           "track": TrackTriplets}[sc.kind]  # fmt: skip
    return cls(sc.datasets, n, **kw)


class ExpressionRecipe(Recipe):
    """Stage 2: triplet fine-tuning (see the module docstring)."""

    name = "expression"
    ModelConfig = ExpressionModelConfig
    DataConfig = ExpressionDataConfig

    def __init__(self, model: ExpressionModelConfig, data: ExpressionDataConfig) -> None:
        super().__init__(model, data)
        self._mixes: dict[str, TripletMix | None] = {}

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
                # A run folder may come from elsewhere: its file must not lead out of it.
                path = confine(path / "encoder.safetensors", path)
            load_model_weights(model.encoder, path)
        if m.aux_weight > 0:
            width = model.encoder.embed_dim if m.aux_input == "features" else m.dim
            model.aux = torch.nn.ModuleDict(
                {t: torch.nn.Linear(width, d) for t, d in m.aux_dims.items()}
            )
        return model

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        """Writes ``expression.safetensors``, the model without the training-only auxiliary heads
        (loads into ``create_model("expression", ...)``); nothing when there are none."""
        if not hasattr(model, "aux"):
            return []
        from facexpr.nn.expression import ExpressionEncoder
        from facexpr.train.checkpoint import export_weights

        bare = ExpressionEncoder(model.encoder, model.head)  # shares the tensors, no aux keys
        return [export_weights(bare, run_dir / "expression.safetensors")]

    def _mix(self, split: str, seed: int) -> TripletMix | None:
        if split not in self._mixes:
            d: ExpressionDataConfig = self.data_cfg
            if not d.sources:
                raise ConfigError(
                    "data.sources is empty: give triplet sources, e.g. "
                    "--set 'data.sources=[{kind: votes, datasets: [data/ferplus_train]}]'"
                )
            size = self.model_cfg.img_size
            sources, ratios = {}, {}
            for i, sc in enumerate(d.sources):
                src = _build_source(sc, split, d, size, seed + 101 * i)
                if src is not None:
                    sources[f"{i}:{sc.kind}"] = src
                    ratios[f"{i}:{sc.kind}"] = sc.ratio
            if not sources:
                self._mixes[split] = None
            else:
                n = d.n_per_epoch or None if split == "train" else None
                self._mixes[split] = TripletMix(sources, ratios, n=n, seed=seed)
        return self._mixes[split]

    def build_data(self, split: Literal["train", "val"], spec: DataSpec) -> IndexedBatches | None:
        train = split == "train"
        mix = self._mix("train" if train else "test", spec.seed)
        if mix is None:
            if train:
                raise ConfigError("no training triplets: every source is evaluation-only")
            return None
        margins = {t: self.data_cfg.margins.get(t.name.lower()) for t in TripletType}
        aug = FaceAugment(self.model_cfg.img_size, self.data_cfg.scale, self.data_cfg.flip)

        def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, object]:
            items = [mix[int(i)] for i in idx]
            use = rngs if train else [None] * len(items)
            imgs = [
                aug(getattr(t, role), r)
                for role in ("anchor", "positive", "negative")
                for t, r in zip(items, use, strict=True)
            ]
            missing = sorted({t.type_id.name.lower() for t in items if margins[t.type_id] is None})
            if missing:
                raise ConfigError(f"data.margins has no margin for triplet type '{missing[0]}'")
            batch = {
                "images": to_uint8_chw(imgs),
                "margin": torch.tensor([margins[t.type_id] for t in items], dtype=torch.float32),
                "type": [t.type_id.name.lower() for t in items],
            }
            if self.model_cfg.aux_weight > 0:
                batch.update(_labels(items, self.model_cfg.aux_dims))
            return batch

        if train:
            return IndexedBatches(
                len(mix), fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        n = min(len(mix), self.data_cfg.eval_triplets)
        return IndexedBatches(n, fetch, min(64, n), shuffle=False)

    def _embed(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, ...]:
        emb = model(normalise(batch["images"], FACE_MEAN, FACE_STD))
        return tuple(emb.chunk(3))

    def step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        if self.model_cfg.aux_weight <= 0:
            a, p, n = self._embed(model, batch)
            loss = triplet_loss(a.float(), p.float(), n.float(), batch["margin"])
            return {"loss": loss, "acc": triplet_accuracy(a.detach(), p.detach(), n.detach())}
        net = getattr(model, "module", model)  # DDP wraps the model
        # The pooled features, caught on the way through the (possibly wrapped) model's forward.
        caught: list[torch.Tensor] = []
        hook = net.encoder.register_forward_hook(lambda _m, _i, out: caught.append(out))
        try:
            a, p, n = self._embed(model, batch)
        finally:
            hook.remove()
        feats = caught[0] if self.model_cfg.aux_input == "features" else torch.cat([a, p, n])
        trip = triplet_loss(a.float(), p.float(), n.float(), batch["margin"])
        aux = self.aux_loss(net, feats, batch)
        return {
            "loss": trip + self.model_cfg.aux_weight * aux,
            "triplet": trip.detach(),
            "aux": aux.detach(),
            "acc": triplet_accuracy(a.detach(), p.detach(), n.detach()),
        }

    def aux_loss(self, net: torch.nn.Module, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        """Returns the auxiliary MSE: each labelled type's head on its faces' pooled features or
        embeddings (``feats`` (3B, C), ``model.aux_input``) against their label vectors, averaged
        over the faces that have one."""
        kinds = list(batch["type"]) * 3
        labels = batch["labels"].to(feats.device).float()
        err = feats.new_zeros(())
        count = 0
        for t, head in net.aux.items():
            pred = head(feats.float())
            rows = [i for i, k in enumerate(kinds) if k == t and bool(batch["has_label"][i])]
            # 0 * sum gives every head a gradient (zero) even in batches without its type.
            err = err + 0.0 * pred.sum()
            if rows:
                idx = torch.tensor(rows, device=feats.device)
                target = labels[idx, : pred.shape[1]]
                err = err + (pred[idx] - target).pow(2).mean(1).sum()
                count += len(rows)
        return err / max(count, 1)

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

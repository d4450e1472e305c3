"""Recipe ``heads``: the analysis model, every head on one encoder, trained together (issue 13).

``facexpr train heads --config configs/heads.yaml``: the ``analysis`` model of ``facexpr.nn``
(the foundation encoder, the 16-d expression embedding, emotion, valence-arousal, 52 ARKit
blendshapes, AUs through the Local AU Features Module) learns from labelled faces of several
datasets at once, each head from the fields its sources name (:mod:`facexpr.train.labels`), with
missing labels masked; the embedding learns from the triplet sources of the ``expression`` recipe
in the same step. So the embedding is shaped by dense labels too (the triplet loss alone
collapsed on CPU, issue 12), and the heads share what the embedding learns.

A step: ``run.batch_size`` labelled faces, mixed from the sources by ``ratio``, plus
``data.triplets_per_step`` triplets (drawn from the triplet mix by the batch's own seeded
generator, so a resumed run continues bit-exactly). Loss::

    w_emotion * soft CE + w_va * (1 - CCC) + w_blendshapes * MSE
      + w_aus * (BCE(occurrence) + MSE(intensity / 5)) + w_embedding * triplet

(``model.weights`` names the weights to change; the others keep their defaults.)

Under DDP (``torchrun``) a run is deterministic but **not** equal to one process with the same
global batch, as the ``expression`` recipe is: each process draws its own
``data.triplets_per_step`` triplets (N processes see N times as many per step), and the masked
means and the CCC are statistics of each process's share of the batch, which DDP then averages
(a mean of per-process means is not the mean over the whole batch when the labelled counts
differ, and CCC is not a mean at all).

Evaluation, on faces of subjects held out of every source (``test_share``) and on the
evaluation-only ``data.val`` sources, every selected face once (``<source>/n`` counts them):
emotion accuracy against the majority label, VA CCC, blendshape mean r over the channels that
move, AU occurrence F1 and intensity r; and triplet accuracy per type on every held-out triplet
(``triplet_n``). "Held out of every source": the triplet sources split their datasets by their
own rule (over the samples that carry their field, so not as a face source on the same dataset
would); a face source follows them, putting each person a triplet source placed on that side,
and splits only the other persons itself. A person still on two sides (two sources disagreeing)
is dropped from the side that would leak: no person on any training side is ever scored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facexpr.core.errors import ConfigError
from facexpr.nn import FACE_MEAN, FACE_STD, create_model
from facexpr.nn.analysis import HEADS
from facexpr.nn.losses import (
    masked_bce,
    masked_ccc_loss,
    masked_mse,
    masked_soft_ce,
    triplet_accuracy,
    triplet_loss,
)
from facexpr.nn.vit import VIT_VARIANTS
from facexpr.train.augment import FaceAugment, normalise, to_grey, to_uint8_chw
from facexpr.train.checkpoint import confine, load_model_weights
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches
from facexpr.train.labels import WIDTHS, check_labels, head_target, mirror_blendshapes
from facexpr.train.mixing import ShardIndex, resize_square
from facexpr.train.recipe import DataSpec, Recipe
from facexpr.train.recipes.expression import (
    ExpressionDataConfig,
    ExpressionRecipe,
    TripletSourceConfig,
)
from facexpr.train.triplets import TripletType, split_subjects

log = logging.getLogger(__name__)

__all__ = ["FaceSourceConfig", "HeadsDataConfig", "HeadsModelConfig", "HeadsRecipe"]

_TARGETS = ("emotion", "va", "blendshapes", "aus")
_DEFAULT_WEIGHTS = {"embedding": 1.0, "emotion": 1.0, "va": 0.5, "blendshapes": 10.0, "aus": 1.0}


@dataclass
class HeadsModelConfig:
    """The analysis model.

    Attributes:
        encoder: a registered fxvit encoder.
        img_size: input side in px.
        depth: encoder blocks (0: the encoder's own).
        heads: the heads to build (a subset of ``embedding, emotion, va, blendshapes, aus``).
        dim: embedding width.
        hidden_dim: hidden width of the heads.
        experts: Mixture-of-Experts size of the output layers (1: plain linear; Norface).
        au_dim: width of each AU's local feature (Local AU Features Module).
        init: starting weights: a ``facexpr train mae`` run folder (its ``encoder.safetensors``),
            an encoder ``.safetensors`` file, an analysis model's weights (a ``train heads``
            run's ``analysis.safetensors``, or ``pretrained:analysis`` / ``pretrained:analysis.TAG``
            for the shipped ones: the encoder and every head both models build), or empty
            (random).
        weights: loss weight per head; heads not named keep their default (embedding 1,
            emotion 1, va 0.5, blendshapes 10, aus 1).
        au_threshold: AU intensity (0-5) from which an AU counts as occurring (FACS A = 1).
    """

    encoder: str = "fxvit_tiny_d6_p16_112"
    img_size: int = 112
    depth: int = 0
    heads: list[str] = field(default_factory=lambda: list(HEADS))
    dim: int = 16
    hidden_dim: int = 256
    experts: int = 1
    au_dim: int = 32
    init: str = ""
    weights: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    au_threshold: float = 1.0

    def architecture(self) -> dict[str, object]:
        """Returns the ``create_model("analysis", ...)`` arguments of this model (what its
        card's ``config`` holds)."""
        arch: dict[str, object] = {
            "encoder": self.encoder, "heads": list(self.heads), "dim": self.dim,
            "hidden_dim": self.hidden_dim, "experts": self.experts, "au_dim": self.au_dim,
            "img_size": self.img_size,
        }  # fmt: skip
        if self.depth:
            arch["depth"] = self.depth
        return arch

    def __post_init__(self) -> None:
        if self.encoder not in VIT_VARIANTS:
            raise ConfigError(
                f"model.encoder '{self.encoder}' is not an fxvit encoder "
                f"(known: {', '.join(VIT_VARIANTS)})"
            )
        if not self.heads:
            raise ConfigError(f"model.heads is empty: name at least one of {', '.join(HEADS)}")
        for h in self.heads:
            if h not in HEADS:
                raise ConfigError(f"model.heads: unknown head '{h}' (known: {', '.join(HEADS)})")
        if len(set(self.heads)) != len(self.heads):
            raise ConfigError(f"model.heads names a head twice: {self.heads}")
        for k, w in self.weights.items():
            if k not in HEADS:
                raise ConfigError(f"model.weights: unknown head '{k}' (known: {', '.join(HEADS)})")
            check_number(f"model.weights.{k}", w, ge=0)
        # A partial mapping changes the heads it names; the others keep their defaults.
        self.weights = {**_DEFAULT_WEIGHTS, **self.weights}
        for name in ("dim", "hidden_dim", "experts", "au_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 0:
            raise ConfigError(f"model.depth must be >= 0, got {self.depth}")
        check_number("model.au_threshold", self.au_threshold, gt=0, le=5)


@dataclass
class FaceSourceConfig:
    """Labelled faces of one or more shard datasets.

    Attributes:
        datasets: shard folders.
        labels: head -> the field it is trained from (see :mod:`facexpr.train.labels`).
        ratio: share of this source in a batch.
        test_share: share of its subjects held out for evaluation (0: all train; for the
            evaluation-only ``data.val`` sources, ignored: everything is evaluated).
        eval_n: held-out faces evaluated at most (0: none).
        name: the name in logs and metrics (default: the first dataset's folder name).
    """

    datasets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    ratio: float = 1.0
    test_share: float = 0.1
    eval_n: int = 1000
    name: str = ""

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError("data.faces: a source needs datasets (shard folders)")
        if not self.labels:
            raise ConfigError(f"data.faces '{self.datasets[0]}': labels is empty")
        check_labels(self.labels, f"data.faces '{self.datasets[0]}'")
        check_number(f"data.faces '{self.datasets[0]}' ratio", self.ratio, gt=0)
        check_number(f"data.faces '{self.datasets[0]}' test_share", self.test_share, ge=0, lt=1)
        if not isinstance(self.eval_n, int) or self.eval_n < 0:
            raise ConfigError(
                f"data.faces '{self.datasets[0]}' eval_n must be >= 0, got {self.eval_n}"
            )
        if not self.name:
            self.name = Path(self.datasets[0]).name


@dataclass
class HeadsDataConfig:
    """The labelled faces and the triplets.

    Attributes:
        faces: labelled face sources, mixed by ``ratio``.
        val: evaluation-only sources (e.g. FER+ Valid), evaluated whole (up to ``eval_n``).
        triplets: triplet sources for the embedding (as the ``expression`` recipe's).
        triplets_per_step: triplets in each step (0: no triplet loss).
        margins: triplet margin per type.
        split_seed: seed of the subject split (the same rule as the ``expression`` recipe).
        scale: random resized crop's area share (min, max).
        flip: random horizontal flips (blendshape labels are mirrored with the image).
        grey: feed every training and evaluation face (triplets too) as its luminance
            (``train.augment.to_grey``), so colour and greyscale sources look alike; the
            exported card then says ``grey``, and ``analyze`` converts its crops the same way.
    """

    faces: list[FaceSourceConfig] = field(default_factory=list)
    val: list[FaceSourceConfig] = field(default_factory=list)
    triplets: list[TripletSourceConfig] = field(default_factory=list)
    triplets_per_step: int = 16
    margins: dict[str, float] = field(default_factory=lambda: ExpressionDataConfig().margins)
    split_seed: int = 0
    scale: tuple[float, float] = (0.85, 1.0)
    flip: bool = True
    grey: bool = False

    def __post_init__(self) -> None:
        if self.triplets_per_step < 0:
            raise ConfigError(f"data.triplets_per_step must be >= 0, got {self.triplets_per_step}")
        names = [sc.name for sc in self.faces] + [f"val:{sc.name}" for sc in self.val]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"data.faces: two sources are named '{twice[0]}' (their figures would be mixed); "
                "give each a distinct name"
            )


PRETRAINED_PREFIX = "pretrained:"


def _is_analysis_file(path: Path) -> bool:
    """Whether a safetensors file holds a whole analysis model (its tensors are named
    ``encoder.*`` and the heads'), not a bare encoder."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return any(k.startswith("encoder.") for k in f.keys())  # noqa: SIM118
    except Exception:  # unreadable: the strict loader then names the problem
        return False


def init_from_analysis(model: torch.nn.Module, path: Path, card=None) -> list[str]:
    """Loads an analysis model's weights into ``model``: every encoder tensor (all must be
    there, same shapes) and every head both models build (all of that head's tensors, same
    shapes). Heads ``model`` builds that the file lacks keep their fresh initialisation.
    Returns the heads taken from the file.

    Raises:
        ModelError: the file is unreadable, fails its card's sha256, lacks encoder tensors or
            has a shared head of another shape (named).
    """
    from safetensors.torch import load_file

    from facexpr.core.errors import ModelError
    from facexpr.nn.registry import sha256_file

    if card is not None and card.sha256 and sha256_file(path) != card.sha256:
        raise ModelError(f"{path}: sha256 differs from card '{card.tag}': corrupt or other weights")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises several types
        raise ModelError(f"{path}: not a readable safetensors file ({e})") from None
    state = model.state_dict()
    groups: dict[str, list[str]] = {}
    for k in state:
        groups.setdefault(_module_of(k), []).append(k)
    taken = []
    for group, keys in sorted(groups.items()):
        have = [k for k in keys if k in tensors]
        if group == "encoder" and len(have) != len(keys):
            missing = sorted(set(keys) - set(have))
            raise ModelError(
                f"{path}: {len(missing)} encoder tensors are missing (e.g. '{missing[0]}'): "
                "not weights of this encoder"
            )
        if not have:
            continue
        if len(have) != len(keys):
            raise ModelError(
                f"{path}: head '{group}' is only partly there ({len(have)} of {len(keys)} tensors)"
            )
        for k in keys:
            if tuple(tensors[k].shape) != tuple(state[k].shape):
                raise ModelError(
                    f"{path}: '{k}' has shape {tuple(tensors[k].shape)}, this model needs "
                    f"{tuple(state[k].shape)} (model settings differ from the file's)"
                )
            with torch.no_grad():
                state[k].copy_(tensors[k].to(state[k].dtype))
        if group != "encoder":
            taken.append(group)
    log.info("model.init %s: encoder%s", path, "".join(f" + {h}" for h in taken))
    return taken


def _module_of(key: str) -> str:
    """The top-level module a state-dict key belongs to (``encoder``, a head's module)."""
    return key.split(".", 1)[0]


_Key = tuple[str, str]  # (resolved dataset folder, subject id or '#index'): one person


def _dir_key(ix: ShardIndex) -> str:
    return str(ix.dir.resolve())


class _Faces:
    """The labelled faces of one source side: refs, per-head targets and masks.

    Args:
        sc: the source.
        indexes: its datasets, opened.
        refs: the (dataset, sample) pairs of this side.
        limit: keep at most this many (seeded choice), None: all.
        seed: that choice's seed.

    Raises:
        ConfigError: a label field in none of the source's datasets, or a value of the wrong
            size (naming the dataset and the sample).
    """

    def __init__(
        self,
        sc: FaceSourceConfig,
        indexes: list[ShardIndex],
        refs: list[tuple[int, int]],
        limit: int | None,
        seed: int,
    ) -> None:
        self.name = sc.name
        self.indexes = indexes
        for head, fname in sc.labels.items():
            if not any(fname in ix.fields for ix in indexes):
                have = sorted({f for ix in indexes for f in ix.fields})
                raise ConfigError(
                    f"data.faces '{sc.name}': labels.{head} reads '{fname}', which none of its "
                    f"datasets has (they have: {', '.join(have)})"
                )
        self.targets: dict[str, np.ndarray] = {}
        self.masks: dict[str, np.ndarray] = {}
        for head, fname in sc.labels.items():
            t = np.zeros((len(refs), WIDTHS[head]), np.float32)
            m = np.zeros((len(refs), WIDTHS[head]), bool)
            for k, (di, i) in enumerate(refs):
                lab = self.indexes[di].labels[i]
                v = lab.get(fname)
                if v is None or not np.all(np.isfinite(np.asarray(v, np.float32))):
                    continue
                inten = lab.get("emotion_intensity") if fname == "emotion_mix" else None
                try:
                    t[k], m[k] = head_target(
                        head, fname, v, None if inten is None else float(inten)
                    )
                except ConfigError as e:
                    where = f"{self.indexes[di].dir}: sample '{self.indexes[di].keys[i]}'"
                    raise ConfigError(f"data.faces '{sc.name}': {where}: {e}") from None
            self.targets[head], self.masks[head] = t, m
        has_any = np.zeros(len(refs), bool)
        for m in self.masks.values():
            has_any |= m.any(1)
        keep = np.flatnonzero(has_any)
        if limit is not None and len(keep) > limit:
            keep = np.sort(np.random.default_rng(seed).permutation(keep)[:limit])
        self.refs = [refs[int(k)] for k in keep]
        self.targets = {h: t[keep] for h, t in self.targets.items()}
        self.masks = {h: m[keep] for h, m in self.masks.items()}

    def __len__(self) -> int:
        return len(self.refs)

    def image(self, k: int, size: int) -> np.ndarray:
        di, i = self.refs[k]
        return resize_square(self.indexes[di].image(i), size)


class _Split:
    """One face source's samples, split subject-exclusively into train and test sides (the
    same rule as the triplet sources: ``split_subjects`` over ``dataset:subject`` ids)."""

    def __init__(self, sc: FaceSourceConfig, seed: int, evaluate_all: bool) -> None:
        self.sc = sc
        self.indexes = [ShardIndex(d) for d in sc.datasets]
        refs, subj = [], []
        for di, ix in enumerate(self.indexes):
            for i in range(len(ix)):
                s = ix.subject_ids[i]
                refs.append((di, i))
                subj.append(f"{di}:{s}" if s else f"{di}:#{i}")
        self.keys: list[_Key] = [
            (_dir_key(self.indexes[int(k.split(":", 1)[0])]), k.split(":", 1)[1]) for k in subj
        ]
        if evaluate_all:  # a data.val source: everything is evaluated
            self.train, self.test = [], list(range(len(refs)))
        elif not sc.test_share:
            self.train, self.test = list(range(len(refs))), []
        else:
            try:
                test_ids = split_subjects(subj, sc.test_share, seed)["test"]
            except ConfigError as e:
                raise ConfigError(f"data.faces '{sc.name}' test_share: {e}") from None
            self.test = [k for k, s in enumerate(subj) if s in test_ids]
            self.train = [k for k, s in enumerate(subj) if s not in test_ids]
        self._test_set = set(self.test)
        self.refs = refs

    def follow(self, train: set[_Key], test: set[_Key]) -> None:
        """Puts the persons a triplet source already placed on the same side (training wins
        when two triplet sources disagree); the others keep this source's own split. A source
        without a test side (``test_share`` 0) keeps everyone on its training side."""
        if not self.test:
            return
        side = ["test" if k in self._test_set else "train" for k in range(len(self.keys))]
        for k, key in enumerate(self.keys):
            if key in train:
                side[k] = "train"
            elif key in test:
                side[k] = "test"
        self.train = [k for k, v in enumerate(side) if v == "train"]
        self.test = [k for k, v in enumerate(side) if v == "test"]

    def side_keys(self, side: str) -> set[_Key]:
        return {self.keys[k] for k in (self.train if side == "train" else self.test)}

    def faces(self, side: str, drop: set[_Key], limit: int | None, seed: int) -> _Faces:
        """Returns this source's faces of ``side`` without the persons in ``drop``."""
        picked = self.train if side == "train" else self.test
        kept = [k for k in picked if self.keys[k] not in drop]
        if len(kept) < len(picked):
            log.info(
                "data.faces '%s': %d of %d %s faces left out, their persons are on another "
                "source's %s side", self.sc.name, len(picked) - len(kept), len(picked), side,
                "test" if side == "train" else "training",
            )  # fmt: skip
        return _Faces(self.sc, self.indexes, [self.refs[k] for k in kept], limit, seed)


def _triplet_keys(mix) -> set[_Key]:
    """Returns the persons a triplet mix's sources draw from (FEC has no subject ids: none)."""
    out: set[_Key] = set()
    for src in [] if mix is None else mix.sources:
        keys = getattr(src, "subject_keys", None)
        if keys is None:
            continue
        dirs = [_dir_key(ix) for ix in src.indexes]
        for k in set(keys):
            di, _, rest = k.partition(":")
            out.add((dirs[int(di)], rest))
    return out


class _EvalBatches:
    """Every item once, in order, in batches of ``batch_size`` (the last one may be smaller:
    evaluation must not drop faces)."""

    def __init__(self, n: int, fetch, batch_size: int) -> None:
        self.n, self.fetch, self.batch_size = n, fetch, batch_size

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[dict[str, object]]:
        for b in range(start, len(self)):
            idx = np.arange(b * self.batch_size, min(self.n, (b + 1) * self.batch_size))
            yield self.fetch(idx)


@dataclass
class _EvalData:
    """What evaluation reads: the held-out faces and the held-out triplets (either may be
    None)."""

    faces: _EvalBatches | None
    triplets: _EvalBatches | None

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[dict[str, object]]:
        for part in (self.faces, self.triplets):
            if part is not None:
                yield from part.batches(epoch, start)


class HeadsRecipe(Recipe):
    """The analysis heads (see the module docstring)."""

    name = "heads"
    ModelConfig = HeadsModelConfig
    DataConfig = HeadsDataConfig

    def __init__(self, model: HeadsModelConfig, data: HeadsDataConfig) -> None:
        super().__init__(model, data)
        self._splits: list[_Split] | None = None
        self._sides: dict[str, list[_Faces]] = {}
        self._trip = None
        trains_embedding = bool(data.triplets) and data.triplets_per_step > 0
        if "embedding" in model.heads and not trains_embedding:
            raise ConfigError(
                "model.heads has 'embedding' but no triplets train it (data.triplets is empty or "
                "data.triplets_per_step is 0): add triplet sources or drop 'embedding'"
            )
        if data.triplets and "embedding" not in model.heads:
            raise ConfigError(
                "data.triplets are given but model.heads has no 'embedding' to train on them: "
                "add 'embedding' or remove data.triplets"
            )
        if trains_embedding:
            d = ExpressionDataConfig(
                sources=data.triplets, margins=data.margins, split_seed=data.split_seed,
                scale=data.scale, flip=data.flip,
            )  # fmt: skip
            from facexpr.train.recipes.expression import ExpressionModelConfig

            self._trip = ExpressionRecipe(ExpressionModelConfig(img_size=model.img_size), d)

    # -- model ------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        m: HeadsModelConfig = self.model_cfg
        model = create_model("analysis", **m.architecture())
        if not m.init:
            return model
        if m.init.startswith(PRETRAINED_PREFIX):
            name = m.init[len(PRETRAINED_PREFIX) :]
            if name.partition(".")[0] != "analysis":
                raise ConfigError(
                    f"model.init '{m.init}': only shipped analysis weights can start this "
                    "recipe (pretrained:analysis or pretrained:analysis.TAG)"
                )
            from facexpr.nn import weights_card

            card = weights_card(name)
            path = card.path()
            if not path.is_file() or not card.sha256:
                raise ConfigError(f"model.init '{m.init}': no such weights are shipped ({path})")
            init_from_analysis(model, path, card)
            return model
        path = Path(m.init)
        if path.is_dir():
            path = confine(path / "encoder.safetensors", path)
        if _is_analysis_file(path):
            init_from_analysis(model, path)
        else:
            load_model_weights(model.encoder, path)
        return model

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        """Writes ``analysis.safetensors`` (the whole model) with its card ``analysis.json``
        (the run's architecture) and, with an embedding head,
        ``expression.safetensors`` (encoder + embedding head: loads into
        ``create_model("expression", ...)``)."""
        import dataclasses

        from facexpr.io._files import write_text_atomic
        from facexpr.nn.analysis import ANALYSIS_CARD
        from facexpr.nn.expression import ExpressionEncoder
        from facexpr.train.checkpoint import export_weights

        out = [export_weights(model, run_dir / "analysis.safetensors")]
        # Its card beside it, so `--heads-weights RUN/analysis.safetensors` rebuilds this
        # architecture (heads subset, sizes) rather than the default one.
        m: HeadsModelConfig = self.model_cfg
        card = dataclasses.replace(
            ANALYSIS_CARD, config=m.architecture(), sha256="", file="analysis.safetensors",
            grey=self.data_cfg.grey,
            input_size=(m.img_size, m.img_size),
            source=f"facexpr train heads run {run_dir.name} (not shipped)",
        )  # fmt: skip
        write_text_atomic(run_dir / "analysis.json", card.to_json())
        out.append(run_dir / "analysis.json")
        if model.head is not None:
            bare = ExpressionEncoder(model.encoder, model.head)
            out.append(export_weights(bare, run_dir / "expression.safetensors"))
        return out

    # -- data -------------------------------------------------------------------------------

    def _check_sources(self) -> None:
        d: HeadsDataConfig = self.data_cfg
        if not d.faces:
            raise ConfigError(
                "data.faces is empty: give labelled face sources, e.g. "
                "{datasets: [data/ferplus_train], labels: {emotion: emotion_soft}}"
            )
        heads = set(self.model_cfg.heads)
        for where, sources in (("data.faces", d.faces), ("data.val", d.val)):
            for sc in sources:
                unused = sorted(set(sc.labels) - heads)
                if unused:
                    raise ConfigError(
                        f"{where} '{sc.name}': labels for '{unused[0]}', which model.heads "
                        f"does not build (it builds: {', '.join(self.model_cfg.heads)})"
                    )

    def _side(self, split: str, seed: int) -> list[_Faces]:
        """Returns the faces of the 'train' or 'test' side of every source (see the module
        docstring for the hold-out across sources)."""
        if split in self._sides:
            return self._sides[split]
        d: HeadsDataConfig = self.data_cfg
        self._check_sources()
        trip_keys = {"train": set(), "test": set()}
        if self._trip is not None:
            trip_keys = {k: _triplet_keys(self._trip._mix(k, seed)) for k in trip_keys}
        if self._splits is None:
            self._splits = [_Split(sc, d.split_seed, False) for sc in d.faces]
            for sp in self._splits:
                sp.follow(trip_keys["train"], trip_keys["test"])
            self._splits += [_Split(sc, d.split_seed, True) for sc in d.val]
        splits = self._splits[: len(d.faces)]
        other = "test" if split == "train" else "train"
        # Persons on the other side of any source; the val sources only evaluate.
        drop = set().union(*(s.side_keys(other) for s in splits)) | trip_keys[other]
        if split == "train":
            sides = [s.faces("train", drop, None, d.split_seed) for s in splits]
            for s in sides:
                if len(s) == 0:
                    raise ConfigError(f"data.faces '{s.name}': no training face carries its labels")
        else:
            sides = [
                s.faces("test", drop, s.sc.eval_n, d.split_seed) for s in splits if s.sc.test_share
            ]
            for s in self._splits[len(d.faces) :]:
                f = s.faces("test", set(), s.sc.eval_n, d.split_seed)
                f.name = f"val:{s.sc.name}"
                sides.append(f)
        self._sides[split] = [s for s in sides if len(s)]
        return self._sides[split]

    def _collate(self, faces: list[tuple[_Faces, int, np.ndarray, bool]]) -> dict[str, object]:
        batch: dict[str, object] = {"images": to_uint8_chw([f[2] for f in faces])}
        for head in _TARGETS:
            t = np.zeros((len(faces), WIDTHS[head]), np.float32)
            m = np.zeros((len(faces), WIDTHS[head]), bool)
            for r, (src, k, _img, flipped) in enumerate(faces):
                if head in src.targets:
                    t[r], m[r] = src.targets[head][k], src.masks[head][k]
                    # AU targets need no change: the head's AUs are two-sided (tests check).
                    if flipped and head == "blendshapes":
                        t[r], m[r] = mirror_blendshapes(t[r]), mirror_blendshapes(m[r])
            batch[head] = torch.from_numpy(t)
            batch[f"{head}_mask"] = torch.from_numpy(m)
        batch["source"] = [f[0].name for f in faces]
        return batch

    def _triplet_batch(self, items: list, rngs: list | None) -> dict[str, object]:
        aug = FaceAugment(self.model_cfg.img_size, self.data_cfg.scale, self.data_cfg.flip)
        margins = {t: self.data_cfg.margins.get(t.name.lower()) for t in TripletType}
        missing = sorted({t.type_id.name.lower() for t in items if margins[t.type_id] is None})
        if missing:
            raise ConfigError(f"data.margins has no margin for triplet type '{missing[0]}'")
        use = rngs if rngs is not None else [None] * len(items)
        look = to_grey if self.data_cfg.grey else (lambda im: im)
        return {
            "triplet_images": to_uint8_chw(
                [
                    look(aug(getattr(t, role), r))
                    for role in ("anchor", "positive", "negative")
                    for t, r in zip(items, use, strict=True)
                ]
            ),
            "margin": torch.tensor([margins[t.type_id] for t in items], dtype=torch.float32),
            "type": [t.type_id.name.lower() for t in items],
        }

    def build_data(
        self, split: Literal["train", "val"], spec: DataSpec
    ) -> IndexedBatches | _EvalData | None:
        train = split == "train"
        sides = self._side("train" if train else "test", spec.seed)
        size = self.model_cfg.img_size
        aug = FaceAugment(size, self.data_cfg.scale, flip=False)
        flip = self.data_cfg.flip
        grey = self.data_cfg.grey
        if train:
            ratios = np.array([sc.ratio for sc in self.data_cfg.faces], np.float64)
            # One epoch: every face of the largest source (by ratio) once; the others drawn at
            # their ratio, cycling.
            n = int(max(len(s) / (r / ratios.sum()) for s, r in zip(sides, ratios, strict=True)))
            rng = np.random.default_rng(spec.seed)
            which = rng.choice(len(sides), size=n, p=ratios / ratios.sum())
            pos = np.zeros(n, np.int64)
            for si, s in enumerate(sides):
                sel = np.flatnonzero(which == si)
                pos[sel] = rng.permutation(np.resize(np.arange(len(s)), len(sel)))
        else:
            which = np.concatenate([np.full(len(s), si) for si, s in enumerate(sides)] or [[]])
            pos = np.concatenate([np.arange(len(s)) for s in sides] or [[]])
            n = len(which)
        trip = self._trip._mix("train" if train else "test", spec.seed) if self._trip else None
        per_step = self.data_cfg.triplets_per_step

        def fetch_faces(idx: np.ndarray, rngs: list[np.random.Generator | None]):
            faces = []
            for j, i in enumerate(idx):
                src = sides[int(which[i])]
                img = src.image(int(pos[i]), size)
                r = rngs[j]
                img = aug(img, r)
                if grey:
                    img = to_grey(img)
                flipped = bool(flip and r is not None and r.random() < 0.5)
                if flipped:
                    img = np.ascontiguousarray(img[:, ::-1])
                faces.append((src, int(pos[i]), img, flipped))
            return self._collate(faces)

        if train:

            def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, object]:
                batch = fetch_faces(idx, rngs)
                if trip is not None:
                    # The first face's generator (already advanced by its augmentation) draws
                    # the step's triplets: a pure function of (seed, epoch, batch, item).
                    g = rngs[0]
                    items = [trip[int(k)] for k in g.integers(0, len(trip), per_step)]
                    batch.update(self._triplet_batch(items, [g] * len(items)))
                return batch

            return IndexedBatches(
                n, fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        face_part = (
            _EvalBatches(n, lambda idx: fetch_faces(idx, [None] * len(idx)), 64) if n else None
        )
        trip_part = None
        if trip is not None and len(trip):
            trip_part = _EvalBatches(
                len(trip), lambda idx: self._triplet_batch([trip[int(k)] for k in idx], None), 64
            )
        if face_part is None and trip_part is None:
            return None
        return _EvalData(face_part, trip_part)

    # -- losses -----------------------------------------------------------------------------

    def _forward(self, model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return model(normalise(images, FACE_MEAN, FACE_STD))

    def losses(self, out: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        """Returns each built head's masked loss on a batch's labelled faces."""
        m: HeadsModelConfig = self.model_cfg
        dev = next(iter(out.values())).device

        def get(k: str) -> torch.Tensor:
            return batch[k].to(dev)

        res: dict[str, torch.Tensor] = {}
        if "emotion" in out:
            res["emotion"] = masked_soft_ce(out["emotion"].float(), get("emotion"),
                                            get("emotion_mask"))  # fmt: skip
        if "va" in out:
            res["va"] = masked_ccc_loss(out["va"].float(), get("va"), get("va_mask"))
        if "blendshapes" in out:
            res["blendshapes"] = masked_mse(
                out["blendshapes"].float(), get("blendshapes"), get("blendshapes_mask")
            )
        if "au_logits" in out:
            inten, mask = get("aus"), get("aus_mask")
            occ = (inten >= m.au_threshold).float()
            res["aus"] = masked_bce(out["au_logits"].float(), occ, mask) + masked_mse(
                out["au_intensity"].float() / 5.0, inten / 5.0, mask
            )
        return res

    def step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        m: HeadsModelConfig = self.model_cfg
        images = batch["images"]
        n_faces = images.shape[0]
        if "triplet_images" in batch:
            images = torch.cat([images, batch["triplet_images"].to(images.device)])
        out = self._forward(model, images)
        face_out = {k: v[:n_faces] for k, v in out.items()}
        parts = self.losses(face_out, batch)
        logs: dict[str, torch.Tensor] = {}
        if "embedding" in out:
            if "triplet_images" in batch:
                a, p, n = out["embedding"][n_faces:].float().chunk(3)
                parts["embedding"] = triplet_loss(a, p, n, batch["margin"].to(a.device))
                logs["acc"] = triplet_accuracy(a.detach(), p.detach(), n.detach())
            else:
                parts["embedding"] = 0.0 * out["embedding"].sum()
        loss = sum(m.weights.get(k, 1.0) * v for k, v in parts.items())
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}, **logs}

    # -- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, data: _EvalData) -> dict[str, float]:
        """Returns per source ``<source>/<figure>`` and ``<source>/n`` (faces scored), and
        ``triplet_acc``, ``triplet_acc/<type>``, ``triplet_n`` on the held-out triplets."""
        from facexpr.train.head_metrics import head_metrics

        device = next(model.parameters()).device
        collected: dict[str, dict[str, list[np.ndarray]]] = {}
        trip_right: dict[str, list[float]] = {}
        for batch in data.batches(0):
            if "images" in batch:
                out = self._forward(model, batch["images"].to(device))
                for r, src in enumerate(batch["source"]):
                    c = collected.setdefault(src, {})
                    for k, v in out.items():
                        c.setdefault(f"pred_{k}", []).append(v[r].float().cpu().numpy())
                    for h in _TARGETS:
                        c.setdefault(h, []).append(batch[h][r].numpy())
                        c.setdefault(f"{h}_mask", []).append(batch[f"{h}_mask"][r].numpy())
            if "triplet_images" in batch:
                emb = self._forward(model, batch["triplet_images"].to(device))["embedding"]
                a, p, n = emb.float().chunk(3)
                d_ap = (a - p).pow(2).sum(1)
                ok = (d_ap < (a - n).pow(2).sum(1)) & (d_ap < (p - n).pow(2).sum(1))
                for kind, v in zip(batch["type"], ok.tolist(), strict=True):
                    trip_right.setdefault(kind, []).append(float(v))
        res: dict[str, float] = {}
        for src, c in collected.items():
            arrays = {k: np.stack(v) for k, v in c.items()}
            res[f"{src}/n"] = float(len(c["emotion"]))
            for k, v in head_metrics(arrays, self.model_cfg.au_threshold).items():
                res[f"{src}/{k}"] = v
        every = [v for vs in trip_right.values() for v in vs]
        if every:
            res["triplet_acc"] = float(np.mean(every))
            res["triplet_n"] = float(len(every))
            res.update({f"triplet_acc/{k}": float(np.mean(v)) for k, v in trip_right.items()})
        return res

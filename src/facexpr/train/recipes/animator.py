"""Recipe ``animator``: the multi-avatar animator (FreeAvatar, issue 15) on cached encoder features.

``facexpr train animator --config configs/animator_tiny.yaml``: the actors are synthetic faces
rendered with known rig weights (``facexpr synth`` shards, their ``ict_weights``); the frozen
``expression`` encoder's output of every crop (and of its mirror image) is computed once into a
cache file (``data.cache_dir``, keyed by the dataset's manifest and the encoder file's sha256),
so a step is a small MLP on cached vectors.

Targets per avatar: an avatar on ICT's rig (the built-ins) learns the actor's ICT weights; any
other rig (a glTF avatar) the actor's weights mapped through ARKit names, as the exporter maps
them (:func:`facexpr.avatars.export.weights_for_channels`).

Loss per avatar, summed over the avatars trained (FreeAvatar's weights)::

    10 * rig L2  +  0.2 * symmetry  [+ 1 * image L1 + 0.2 * expression consistency]

The bracketed terms need a neural renderer (``data.renderer``: a checkpoint of
``facexpr.nn.neural_renderer``); they apply to the avatars the renderer knows. Image L1 compares
the neural render of the predicted rig with the neural render of the target rig; expression
consistency compares the frozen encoder's embedding of the actor with that of the neural render.
Temporal smoothness (:func:`facexpr.nn.losses.animator.temporal_smoothness`) needs sequences of
one actor; the synthetic shards hold independent faces, so ``model.weights.temporal`` must stay 0
with them (the recipe refuses a positive weight rather than ignore it).

Adding an avatar: ``model.init`` names a finished animator run (or its ``animator.safetensors``)
and ``model.add_avatars`` the new avatars; only their codes and output layers train, so the other
avatars' outputs stay exactly as they were (``facexpr train animator --add-avatar FILE.glb``).

Evaluation: on actors of the subjects held out of the training datasets (``data.test_share``
percent of the identities) and on every actor of ``data.val`` (other identities): rig-weight MAE
and mean Pearson r over the channels that move, per avatar trained.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from facexpr.avatars.spec import avatar_name, load_avatar
from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.nn.animator import MultiAvatarAnimator, expression_features, load_expression_encoder
from facexpr.nn.losses.animator import (
    expression_consistency,
    image_l1,
    rig_l2,
    symmetry_loss,
)
from facexpr.train.augment import normalise, to_grey, to_uint8_chw
from facexpr.train.config import check_number
from facexpr.train.data import IndexedBatches, held_out
from facexpr.train.mixing import resize_square
from facexpr.train.recipe import DataSpec, Recipe

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_AVATARS",
    "AnimatorDataConfig",
    "AnimatorModelConfig",
    "AnimatorRecipe",
    "FeatureCache",
    "avatar_targets",
    "feature_cache",
    "mirror_permutation",
]

DEFAULT_AVATARS = ("ict", *(f"ict_{k:03d}" for k in range(8)), "ict_toon")
_LOSSES = ("rig", "symmetry", "temporal", "image", "expression")
_DEFAULT_WEIGHTS = {"rig": 10.0, "symmetry": 0.2, "temporal": 0.0, "image": 1.0, "expression": 0.2}
_CACHE_VERSION = 2  # 2: crops of a grey encoder fed as luminance


@dataclass
class AnimatorModelConfig:
    """The animator and the encoder it reads.

    Attributes:
        avatars: avatars to drive: registered names or .glb/.gltf files (with morph targets).
        hidden: hidden width.
        depth: residual FiLM blocks.
        code_dim: width of each avatar's identity code.
        dropout: dropout in the blocks.
        encoder_weights: the frozen ``expression`` encoder (a safetensors file, card beside it);
            empty: the shipped one.
        init: start from a finished animator (a run folder or its ``animator.safetensors``).
        add_avatars: avatars to add to ``init`` (names or glTF files); only they train.
        weights: loss weights (rig 10, symmetry 0.2, temporal 0, image 1, expression 0.2).
    """

    avatars: list[str] = field(default_factory=lambda: list(DEFAULT_AVATARS))
    hidden: int = 256
    depth: int = 2
    code_dim: int = 16
    dropout: float = 0.1
    encoder_weights: str = ""
    init: str = ""
    add_avatars: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if not self.avatars and not self.init:
            raise ConfigError("model.avatars is empty: name at least one avatar")
        for name in ("hidden", "code_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 0:
            raise ConfigError(f"model.depth must be >= 0, got {self.depth}")
        check_number("model.dropout", self.dropout, ge=0, lt=1)
        for k, w in self.weights.items():
            if k not in _LOSSES:
                raise ConfigError(
                    f"model.weights: unknown loss '{k}' (known: {', '.join(_LOSSES)})"
                )
            check_number(f"model.weights.{k}", w, ge=0)
        self.weights = {**_DEFAULT_WEIGHTS, **self.weights}
        if self.weights["temporal"] > 0:
            raise ConfigError(
                "model.weights.temporal > 0 needs sequences of one actor; the synthetic shards "
                "hold independent faces (set it to 0)"
            )
        if self.add_avatars and not self.init:
            raise ConfigError(
                "model.add_avatars needs model.init: the finished animator to add them to "
                "(--set model.init=RUN_DIR)"
            )


@dataclass
class AnimatorDataConfig:
    """The actors.

    Attributes:
        datasets: synthetic shard folders with ``ict_weights`` (``facexpr synth``).
        val: evaluation-only shard folders (actors of identities never trained on).
        test_share: percent of the training datasets' identities held out for evaluation.
        cache_dir: where the encoder features are cached (gitignored ``runs/``).
        renderer: a neural renderer checkpoint (``facexpr.nn.neural_renderer``) for the image
            and expression-consistency losses; empty: rig and symmetry losses only.
        eval_n: most actors evaluated per source (0: all).
        encode_batch: faces per encoder call while building the cache.
        avatars_per_step: avatars trained in one step, drawn at random from those trained
            (0: all of them every step; the built-ins share ICT's rig and targets, so a few per
            step train them all at a fraction of the cost).
    """

    datasets: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test_share: float = 10.0
    cache_dir: str = "runs/.cache/animator"
    renderer: str = ""
    eval_n: int = 0
    encode_batch: int = 64
    avatars_per_step: int = 0

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError(
                "data.datasets is empty: give synthetic shard folders, e.g. [data/synth_pairs]"
            )
        check_number("data.test_share", self.test_share, ge=0, lt=100)
        if self.eval_n < 0:
            raise ConfigError(f"data.eval_n must be >= 0, got {self.eval_n}")
        if self.encode_batch < 1:
            raise ConfigError(f"data.encode_batch must be >= 1, got {self.encode_batch}")
        if self.avatars_per_step < 0:
            raise ConfigError(f"data.avatars_per_step must be >= 0, got {self.avatars_per_step}")


# -- avatars ------------------------------------------------------------------------------------


def avatar_targets(channel_names: tuple[str, ...]) -> np.ndarray:
    """Returns the (C, 53) float32 matrix taking an actor's ICT weights to an avatar's targets.

    ICT channels as they are; any other rig through ARKit names (the exporter's mapping).

    Raises:
        InputError: none of the channels has an ARKit name (nothing to learn).
    """
    from facexpr.avatars.export import weights_for_channels
    from facexpr.core.arkit import ICT_CHANNELS

    eye = np.eye(len(ICT_CHANNELS), dtype=np.float32)
    m = weights_for_channels(channel_names, eye).T  # (C, 53): column j = ICT channel j alone
    if not np.abs(m).sum() > 0:
        raise ConfigError(
            f"none of the rig's {len(channel_names)} channels has an ARKit name: the animator "
            "has nothing to learn for it"
        )
    return np.ascontiguousarray(m, np.float32)


_SIDES = (("_L", "_R"), ("Left", "Right"), (".L", ".R"), ("_l", "_r"))


def mirror_permutation(channel_names: tuple[str, ...]) -> np.ndarray:
    """Returns the (C,) int64 permutation swapping each left channel with its right one
    (``eyeBlink_L`` / ``eyeBlink_R``, ``mouthSmileLeft`` / ``mouthSmileRight``, ``jawLeft`` /
    ``jawRight``); channels without a partner map to themselves."""
    index = {n: i for i, n in enumerate(channel_names)}
    perm = np.arange(len(channel_names), dtype=np.int64)
    for i, name in enumerate(channel_names):
        for a, b in _SIDES:
            for x, y in ((a, b), (b, a)):
                other = name[: -len(x)] + y if name.endswith(x) else None
                if other is not None and other in index:
                    perm[i] = index[other]
    return perm


# -- the feature cache --------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureCache:
    """The encoder's output for every actor of one dataset, in stored order.

    Attributes:
        features: (N, D) float32 animator input (embedding then pooled features).
        mirrored: (N, D) float32 the same of the horizontally flipped crop.
        ict: (N, 53) float32 the actor's ICT weights.
        subjects: (N,) subject ids.
        keys: (N,) sample keys.
    """

    features: np.ndarray
    mirrored: np.ndarray
    ict: np.ndarray
    subjects: np.ndarray
    keys: np.ndarray


def _encoder_sha(path: str) -> str:
    from facexpr.nn.registry import sha256_file

    return sha256_file(path) if path else "shipped"


def feature_cache(
    dataset_dir: str | Path,
    encoder_weights: str,
    cache_dir: str | Path,
    *,
    batch: int = 64,
    encoder: Any = None,
) -> FeatureCache:
    """Returns the cached encoder features of a dataset, computing and caching them if absent.

    The cache file's name is a hash of the dataset's manifest, the encoder file's sha256 and the
    cache version, so another dataset or encoder never reads stale features.

    Raises:
        InputError: the dataset is unreadable or its samples lack ``ict_weights`` (named).
        ModelError: the encoder does not load.
    """
    from facexpr.io._files import write_bytes_atomic
    from facexpr.io.shards import MANIFEST, ShardReader

    dataset_dir = Path(dataset_dir)
    manifest = dataset_dir / MANIFEST
    if not manifest.is_file():
        raise InputError(dataset_dir, "not a facexpr dataset (no manifest.json)")
    h = hashlib.sha256()
    h.update(manifest.read_bytes())
    h.update(_encoder_sha(encoder_weights).encode())
    h.update(str(_CACHE_VERSION).encode())
    cache = Path(cache_dir) / f"{dataset_dir.name}-{h.hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return FeatureCache(**{k: z[k] for k in FeatureCache.__dataclass_fields__})
    if encoder is None:
        encoder, card = load_expression_encoder(encoder_weights or None)
    else:
        card = encoder.card
    size, mean, std = int(card.input_size[0]), card.mean, card.std
    reader = ShardReader(dataset_dir, shuffle_buffer=0, verify=False)
    feats, mirrored, ict, subjects, keys = [], [], [], [], []
    crops: list[np.ndarray] = []

    def flush() -> None:
        # An encoder trained on luminance (its card says grey) sees the crops as it was trained.
        look = [to_grey(c) for c in crops] if card.grey else crops
        x = normalise(to_uint8_chw(look), mean, std)
        with torch.no_grad():
            feats.append(expression_features(encoder, x).numpy())
            mirrored.append(expression_features(encoder, x.flip(-1)).numpy())
        crops.clear()

    for s in reader:
        if "ict_weights" not in s.labels:
            raise InputError(
                dataset_dir, f"sample {s.key} has no ict_weights: not a synthetic dataset"
            )
        crops.append(resize_square(np.asarray(s.image), size))
        ict.append(np.asarray(s.labels["ict_weights"], np.float32))
        subjects.append(s.subject_id)
        keys.append(s.key)
        if len(crops) >= batch:
            flush()
    if crops:
        flush()
    if not keys:
        raise InputError(dataset_dir, "holds no samples")
    out = FeatureCache(
        features=np.concatenate(feats).astype(np.float32),
        mirrored=np.concatenate(mirrored).astype(np.float32),
        ict=np.stack(ict),
        subjects=np.array(subjects),
        keys=np.array(keys),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: getattr(out, k) for k in FeatureCache.__dataclass_fields__})
    write_bytes_atomic(cache, buf.getvalue())
    log.info("cached the encoder features of %d actors of %s in %s", len(keys), dataset_dir, cache)
    return out


# -- the recipe ---------------------------------------------------------------------------------


@dataclass
class _EvalSet:
    """The held-out actors of one source (all features in memory)."""

    name: str
    features: torch.Tensor
    ict: torch.Tensor

    def batches(self, epoch: int, start: int = 0):
        yield from ()  # evaluate() reads the tensors directly


class _EvalData:
    def __init__(self, sets: list[_EvalSet]) -> None:
        self.sets = sets

    def batches(self, epoch: int, start: int = 0):
        yield from ()


def _init_path(init: str) -> Path:
    p = Path(init)
    return p / "animator.safetensors" if p.is_dir() else p


class AnimatorRecipe(Recipe):
    """See the module docstring."""

    name = "animator"
    ModelConfig = AnimatorModelConfig
    DataConfig = AnimatorDataConfig

    def __init__(self, model: AnimatorModelConfig, data: AnimatorDataConfig) -> None:
        super().__init__(model, data)
        self._avatars: dict[str, Any] = {}
        self._targets: dict[str, torch.Tensor] = {}
        self._mirror: dict[str, torch.Tensor] = {}
        self._trained: list[str] = []
        self._encoder: Any = None
        self._renderer: Any = None
        self._renderer_loaded = False
        self._caches: dict[str, FeatureCache] = {}

    # -- parts ------------------------------------------------------------------------------

    def encoder(self) -> Any:
        """Returns the frozen expression encoder (loaded once)."""
        if self._encoder is None:
            self._encoder, card = load_expression_encoder(self.model_cfg.encoder_weights or None)
            self._encoder.card = card
        return self._encoder

    def renderer(self) -> Any:
        """Returns the neural renderer of ``data.renderer``, or None without one."""
        if not self._renderer_loaded:
            self._renderer_loaded = True
            if self.data_cfg.renderer:
                from facexpr.nn.neural_renderer import load_neural_renderer

                self._renderer = load_neural_renderer(self.data_cfg.renderer).eval()
                for p in self._renderer.parameters():
                    p.requires_grad_(False)
        return self._renderer

    def set_renderer(self, renderer: torch.nn.Module | None) -> None:
        """Uses ``renderer`` (a frozen module with the neural renderer's interface) for the image
        and expression losses, in place of ``data.renderer``."""
        self._renderer, self._renderer_loaded = renderer, True

    def _add(self, spec: str) -> tuple[str, int]:
        avatar = load_avatar(spec)
        name = avatar_name(spec)
        names = tuple(avatar.channel_names)
        self._avatars[name] = avatar
        self._targets[name] = torch.from_numpy(avatar_targets(names))
        self._mirror[name] = torch.from_numpy(mirror_permutation(names))
        return name, len(names)

    def build_model(self) -> torch.nn.Module:
        m: AnimatorModelConfig = self.model_cfg
        enc = self.encoder()
        in_dim = int(enc.head.dim) + int(enc.encoder.embed_dim)
        if m.init:
            from facexpr.nn.animator import load_animator

            model, _ = load_animator(_init_path(m.init))
            if model.in_dim != in_dim:
                raise ModelError(
                    f"{m.init}: the animator reads {model.in_dim} features, the encoder gives "
                    f"{in_dim}: use the encoder it was trained with"
                )
            for name in model.avatars:
                spec = next((s for s in m.avatars if avatar_name(s) == name), name)
                try:
                    self._add(spec)
                except (ConfigError, InputError) as e:  # kept in the model, not trained here
                    log.warning("animator avatar '%s' is not trained in this run: %s", name, e)
            new = []
            for spec in m.add_avatars:
                name, n = self._add(spec)
                if name in model.avatars:
                    raise ConfigError(f"model.add_avatars: the animator already drives '{name}'")
                model.add_avatar(name, n)
                new.append(name)
            if new:
                model.train_only(new)
                self._trained = new
            else:
                self._trained = [a for a in model.avatars if a in self._targets]
            return model.train()
        pairs = [self._add(spec) for spec in m.avatars]
        self._trained = [n for n, _ in pairs]
        if len(set(self._trained)) != len(self._trained):
            raise ConfigError(f"model.avatars names an avatar twice: {m.avatars}")
        return MultiAvatarAnimator(
            pairs,
            in_dim=in_dim,
            hidden=m.hidden,
            depth=m.depth,
            code_dim=m.code_dim,
            dropout=m.dropout,
        )

    # -- data -------------------------------------------------------------------------------

    def _cache(self, dataset: str) -> FeatureCache:
        if dataset not in self._caches:
            self._caches[dataset] = feature_cache(
                dataset,
                self.model_cfg.encoder_weights,
                self.data_cfg.cache_dir,
                batch=self.data_cfg.encode_batch,
                encoder=self.encoder(),
            )
        return self._caches[dataset]

    def _side(self, train: bool) -> list[tuple[str, FeatureCache, np.ndarray]]:
        out = []
        for ds in self.data_cfg.datasets:
            c = self._cache(ds)
            out_mask = np.array([held_out(s, self.data_cfg.test_share) for s in c.subjects])
            out.append((ds, c, np.flatnonzero(~out_mask if train else out_mask)))
        return out

    def build_data(
        self, split: Literal["train", "val"], spec: DataSpec
    ) -> IndexedBatches | _EvalData | None:
        if split == "train":
            parts = self._side(True)
            x = np.concatenate([c.features[i] for _, c, i in parts])
            xm = np.concatenate([c.mirrored[i] for _, c, i in parts])
            ict = np.concatenate([c.ict[i] for _, c, i in parts])
            if len(x) == 0:
                raise ConfigError("data.datasets: every identity is held out (lower test_share)")
            tx, txm, tict = torch.from_numpy(x), torch.from_numpy(xm), torch.from_numpy(ict)

            def fetch(idx: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, torch.Tensor]:
                del rngs
                t = torch.from_numpy(np.asarray(idx, np.int64))
                return {"features": tx[t], "mirrored": txm[t], "ict": tict[t]}

            return IndexedBatches(
                len(x), fetch, spec.batch_size, seed=spec.seed, rank=spec.rank,
                world_size=spec.world_size,
            )  # fmt: skip
        sets = []
        rng = np.random.default_rng(spec.seed)
        n_max = self.data_cfg.eval_n
        for ds, c, idx in self._side(False):
            sets.append((f"{Path(ds).name}-heldout", c, idx))
        for ds in self.data_cfg.val:
            c = self._cache(ds)
            sets.append((Path(ds).name, c, np.arange(len(c.keys))))
        out = []
        for name, c, idx in sets:
            if len(idx) == 0:
                continue
            if n_max and len(idx) > n_max:
                idx = np.sort(rng.choice(idx, n_max, replace=False))
            out.append(
                _EvalSet(name, torch.from_numpy(c.features[idx]), torch.from_numpy(c.ict[idx]))
            )
        return _EvalData(out) if out else None

    # -- loss -------------------------------------------------------------------------------

    def step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        w = self.model_cfg.weights
        x, xm, ict = batch["features"], batch["mirrored"], batch["ict"]
        renderer = self.renderer()
        out: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        sums = dict.fromkeys(("rig", "symmetry", "image", "expression"), 0.0)
        n_img = 0
        names = self._trained
        k = self.data_cfg.avatars_per_step
        if 0 < k < len(names):
            # The global torch RNG: seeded by the engine, restored on resume.
            names = [names[int(i)] for i in torch.randperm(len(names))[:k]]
        for name in names:
            target = ict @ self._targets[name].to(x.device).T
            pred = model(x, name)
            rig = rig_l2(pred, target)
            loss = w["rig"] * rig
            sums["rig"] += float(rig.detach())
            if w["symmetry"] > 0:
                sym = symmetry_loss(pred, model(xm, name), self._mirror[name].to(x.device))
                loss = loss + w["symmetry"] * sym
                sums["symmetry"] += float(sym.detach())
            if renderer is not None and name in renderer.avatars:
                img, expr = self._render_losses(renderer, name, pred, target, x)
                loss = loss + w["image"] * img + w["expression"] * expr
                sums["image"] += float(img.detach())
                sums["expression"] += float(expr.detach())
                n_img += 1
            total = total + loss
        n = max(1, len(names))
        out["loss"] = total / n
        out["rig"] = torch.tensor(sums["rig"] / n)
        out["symmetry"] = torch.tensor(sums["symmetry"] / n)
        if n_img:
            out["image"] = torch.tensor(sums["image"] / n_img)
            out["expression"] = torch.tensor(sums["expression"] / n_img)
        return out

    def _render_losses(
        self,
        renderer: torch.nn.Module,
        name: str,
        pred: torch.Tensor,
        target: torch.Tensor,
        x: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (image L1, expression consistency) of the neural render of ``pred``."""
        enc = self.encoder()
        renderer.to(x.device)
        enc.to(x.device)
        render = renderer(name, pred)
        with torch.no_grad():
            wanted = renderer(name, target)
        img = image_l1(render, wanted)
        card = enc.card
        size = int(card.input_size[0])
        small = torch.nn.functional.interpolate(
            render, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        m = torch.tensor(card.mean, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(card.std, device=x.device).view(1, -1, 1, 1)
        emb = enc.head(enc.encoder((small - m) / s))
        dim = int(enc.head.dim)
        expr = expression_consistency(x[:, :dim], emb)
        return img, expr

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, model: torch.nn.Module, data: Any) -> dict[str, float]:
        from facexpr.core.metrics import pcc, per_column

        out: dict[str, float] = {}
        model.eval()
        for es in data.sets:
            maes, rs = [], []
            for name in self._trained:
                target = (es.ict @ self._targets[name].T).numpy()
                pred = model(es.features, name).numpy()
                maes.append(float(np.abs(pred - target).mean()))
                r = per_column(pcc, target, pred)  # NaN for a channel that never moves
                rs.append(float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"))
            out[f"{es.name}/rig_mae"] = float(np.mean(maes))
            out[f"{es.name}/rig_r"] = float(np.nanmean(rs))
            out[f"{es.name}/n"] = float(len(es.features))
        return out

    # -- export -----------------------------------------------------------------------------

    def export(self, model: torch.nn.Module, run_dir: Path) -> list[Path]:
        """Writes ``animator.safetensors`` and its card ``animator.json`` (the avatars, the
        encoder's sha256 and the last evaluation)."""
        from facexpr.io._files import write_text_atomic
        from facexpr.nn.animator import ANIMATOR_CARD
        from facexpr.nn.registry import sha256_file
        from facexpr.train.checkpoint import export_weights

        path = export_weights(model, run_dir / "animator.safetensors")
        metrics: dict[str, float] = {}
        mfile = run_dir / "metrics.jsonl"
        if mfile.is_file():
            for line in mfile.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                metrics.update({k: v for k, v in row.items() if k.startswith("eval/")})
        enc = self.model_cfg.encoder_weights
        card = ANIMATOR_CARD.__class__(
            **{
                **ANIMATOR_CARD.to_dict(),
                "tag": run_dir.name,
                "file": str(path.resolve()),
                "sha256": sha256_file(path),
                "config": {**model.config(), "encoder_sha256": _encoder_sha(enc)},
                "metrics": metrics,
                "source": f"facexpr train animator (run {run_dir})",
                "input_size": tuple(self.encoder().card.input_size),
            }
        )
        card_path = run_dir / "animator.json"
        write_text_atomic(card_path, card.to_json())
        return [path, card_path]

"""Norface training pairs: one expression on a random identity (input) and on the canonical face.

Norface (Liu et al., "Norface: Improving Facial Expression Analysis by Identity Normalization",
ECCV 2024, arXiv:2407.15617) learns to map any face to one common identity with the same
expression, a fixed pose and a fixed background. Real data has no such pairs; a rig gives them
exactly: for a sampled expression (ICT FaceKit weights from :class:`ExpressionSampler`),

- the **input** is that expression on a random identity (a random ICT FaceKit identity, or a
  textured ``.glb`` avatar of a captured real person), with a random head pose, light and
  background;
- the **target** is the same weights on the canonical identity (a built-in ICT avatar,
  ``ict_000`` by default, fixed skin), frontal, under a fixed light, on a plain background.

Both are cropped as the face front-end crops real faces (the synthetic engine's alignment,
:func:`facexpr.faces.align.align_face` from the 68 points the front-end would find), so the
normaliser sees real crops framed as it was trained. Pair ``i`` depends only on ``(seed, i)``
(its own ``SeedSequence``), and the target only on the weights: two identities with the same
weights have the same target, byte for byte.

:func:`generate_pairs` writes pairs as two shard datasets with the same keys
(``DIR/inputs`` and ``DIR/targets``, :mod:`facexpr.io.shards`), for training runs to reuse.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES, ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import LabelField, Manifest, Sample, encode_png
from facexpr.synth.compose import BackgroundKind, draw_background
from facexpr.synth.engine import check_scene_options
from facexpr.synth.expressions import ExpressionSampler, ExpressionSamplerOptions

log = logging.getLogger(__name__)

__all__ = [
    "PAIR_SCHEMA",
    "PairOptions",
    "PairSample",
    "PairScene",
    "generate_pairs",
    "list_identity_files",
    "render_input",
    "render_pair",
    "render_target",
]

PAIR_SCHEMA: tuple[LabelField, ...] = (
    LabelField("ict_weights", (53,), "float32", "ICT FaceKit expression weights in [0, 1] shown "
               "by both images, facexpr.core.arkit.ICT_CHANNELS order"),
    LabelField("arkit_weights", (52,), "float32", "ARKit blendshape weights in [0, 1], "
               "facexpr.core.arkit.ARKIT_NAMES order"),
    LabelField("identity", (), "int64", "identity index of the input within the pair set"),
    LabelField("landmarks68", (68, 2), "float32", "iBUG 68 landmarks (x, y) in px of this "
               "aligned crop, projected from the mesh"),
)  # fmt: skip

#: The fixed light of every target (frontal, a little from above).
CANONICAL_LIGHT: dict[str, Any] = {
    "direction": (0.0, 0.3, 1.0), "intensity": 0.75, "ambient": 0.4, "color": (1.0, 1.0, 1.0),
}  # fmt: skip


@dataclass(frozen=True)
class PairOptions:
    """Options of a Norface pair set.

    Attributes:
        n: number of pairs.
        size: side of both aligned crops, px.
        render_size: side of the rendered frames before alignment, px (>= size).
        seed: pair-set seed.
        identities: ``"ict"`` (random ICT FaceKit identities, ``n_identities`` of them) or a
            folder of textured ``.glb`` avatars (``facexpr avatar capture`` or ``facexpr synth
            identities --format glb`` output) or of compact bank entries (``KEY.npz`` +
            ``KEY.png``, ``facexpr synth identities`` output; a ``bank.json`` there is not
            needed), one identity each.
        n_identities: random ICT identities with ``identities="ict"``.
        identity_seed: seed of the random ICT identities (another seed: other people, for
            held-out evaluation).
        canonical: built-in avatar name of the canonical identity.
        canonical_skin: RGB skin albedo in [0, 1] of the canonical identity.
        canonical_background: RGB in [0, 1] of the targets' plain background.
        yaw_range: degrees of the input's head yaw, drawn uniformly.
        pitch_range: degrees.
        roll_range: degrees.
        skin_tones: RGB skin albedos of random ICT identities (one per identity, +-5 % jitter).
        backgrounds: background kinds of the inputs ('solid', 'gradient', 'noise').
        expressions: expression mixture options.
        antialias: renderer multisampling (0, 2, 4 or 8).
    """

    n: int = 1000
    size: int = 96
    render_size: int = 144
    seed: int = 0
    identities: str = "ict"
    n_identities: int = 200
    identity_seed: int = 0
    canonical: str = "ict_000"
    canonical_skin: tuple[float, float, float] = (0.85, 0.66, 0.55)
    canonical_background: tuple[float, float, float] = (0.5, 0.5, 0.5)
    yaw_range: tuple[float, float] = (-30.0, 30.0)
    pitch_range: tuple[float, float] = (-15.0, 15.0)
    roll_range: tuple[float, float] = (-12.0, 12.0)
    skin_tones: tuple[tuple[float, float, float], ...] = (
        (0.95, 0.80, 0.70), (0.88, 0.70, 0.58), (0.78, 0.58, 0.45), (0.65, 0.46, 0.34),
        (0.50, 0.34, 0.24), (0.36, 0.24, 0.17),
    )  # fmt: skip
    backgrounds: tuple[BackgroundKind, ...] = ("solid", "gradient", "noise")
    expressions: ExpressionSamplerOptions = field(default_factory=ExpressionSamplerOptions)
    antialias: int = 2

    def __post_init__(self) -> None:
        check_scene_options("PairOptions", self)
        if self.n_identities < 1:
            raise ConfigError(f"PairOptions.n_identities must be >= 1, got {self.n_identities}")
        bad = [k for k in self.backgrounds if k not in ("solid", "gradient", "noise")]
        if bad or not self.backgrounds:
            raise ConfigError(
                f"PairOptions.backgrounds: unknown kind(s) {bad} (solid, gradient, noise)"
            )
        for name in ("canonical_skin", "canonical_background"):
            c = getattr(self, name)
            if len(c) != 3 or not all(0 <= v <= 1 for v in c):
                raise ConfigError(f"PairOptions.{name} must be RGB in [0, 1], got {c}")
        if not self.identities:
            raise ConfigError("PairOptions.identities: give 'ict' or a folder of .glb avatars")


@dataclass(frozen=True, slots=True)
class PairSample:
    """One Norface pair.

    Attributes:
        index: pair index.
        input: (size, size, 3) uint8 RGB aligned crop of the random identity.
        target: (size, size, 3) uint8 RGB aligned crop of the canonical identity.
        ict_weights: (53,) float32 rig weights both show.
        arkit_weights: (52,) float32 ARKit weights.
        identity: index of the input's identity.
        subject_id: the input identity's name.
        input_landmarks: (68, 2) float32 px in the input crop.
        target_landmarks: (68, 2) float32 px in the target crop.
        provenance: the draws that made the pair.
    """

    index: int
    input: np.ndarray
    target: np.ndarray
    ict_weights: np.ndarray
    arkit_weights: np.ndarray
    identity: int
    subject_id: str
    input_landmarks: np.ndarray
    target_landmarks: np.ndarray
    provenance: dict[str, Any]


def list_identity_files(folder: str | Path) -> tuple[Path, ...]:
    """Returns the sorted ``.glb`` files and compact bank entries (``.npz`` with a ``.png``
    beside it) of an identity folder.

    Raises:
        InputError: the folder is missing, not a folder, or holds no avatar.
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "identity folder not found" if not folder.exists() else "is not a folder"
        raise InputError(folder, problem)
    files = tuple(sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() == ".glb" or (p.suffix == ".npz" and p.with_suffix(".png").is_file())
    ))  # fmt: skip
    if not files:
        raise InputError(
            folder,
            "no .glb avatars in the identity folder (make them with  facexpr avatar capture "
            "PHOTO -o NAME.glb  or  facexpr synth identities SOURCE -o DIR)",
        )
    return files


@cache
def _atlas_first_copy() -> tuple[int, np.ndarray]:
    """Returns (vertex count, first copy of each ICT vertex) of ICT FaceKit's seam-split atlas
    rig, the topology of captured avatars (:func:`facexpr.avatars.texture.atlas_rig`)."""
    from facexpr.avatars.ict import load_ict

    ict = load_ict()
    _, src = ict.split_uv_seams()
    first = np.full(ict.n_vertices, -1, np.int64)
    first[src[::-1]] = np.arange(len(src))[::-1]
    return len(src), first


def _landmark_ids(rig: Any, where: str) -> np.ndarray | None:
    """Returns the vertex ids of the front-end's 68 points on an ICT-topology rig (plain or
    seam-split as captured avatars are), or None to use the rig's own 68 landmark vertices.

    Raises:
        InputError: the rig has neither (named by ``where``).
    """
    from facexpr.avatars.fitting import correspondence  # imports torch: only when rendering

    ids = np.asarray(correspondence()["ibug68"], np.int64)
    from facexpr.avatars.ict import ICT_PARTS

    n_ict = ICT_PARTS["eyelashes"][1]
    if rig.n_vertices == n_ict:
        return ids
    n_atlas, first = _atlas_first_copy()
    if rig.n_vertices == n_atlas:
        return first[ids]
    if rig.landmark_vertices is not None:
        return None
    raise InputError(
        where,
        f"the avatar has {rig.n_vertices} vertices, not ICT FaceKit's topology, and no 68 "
        "landmark vertices: it cannot be aligned as the front-end aligns faces",
    )


def _channel_map(avatar: Any, where: str) -> np.ndarray | None:
    """Returns None when the avatar's channels are ICT FaceKit's 53, else the (C, 52) ARKit map.

    Raises:
        InputError: the avatar has neither the ICT channels nor ARKit-named ones.
    """
    names = tuple(avatar.channel_names)
    if names == tuple(ICT_CHANNELS):
        return None
    if set(ARKIT_NAMES) & set(names):
        return np.asarray(avatar.arkit_matrix(), np.float32)
    raise InputError(
        where, "the avatar's morph targets are neither ICT FaceKit's 53 channels nor ARKit names"
    )


class PairScene:
    """A renderer and the identities of a pair set (one per process).

    Raises:
        InputError: a bad identity folder or avatar file (named).
        MissingDependencyError: the renderer's packages are missing.
    """

    def __init__(self, options: PairOptions) -> None:
        from facexpr.avatars.avatar import get_avatar
        from facexpr.avatars.render import Renderer, RenderOptions

        self.options = options
        self.files: tuple[Path, ...] = ()
        if options.identities == "ict":
            self.names = [f"ict-s{options.identity_seed}-{k:05d}" for k in
                          range(options.n_identities)]  # fmt: skip
        else:
            self.files = list_identity_files(options.identities)
            self.names = [p.stem for p in self.files]
        self.canonical = get_avatar(options.canonical)
        # framing 2.4 as the synthetic engine: turned heads stay inside the render.
        self.renderer = Renderer(
            RenderOptions(
                width=options.render_size,
                height=options.render_size,
                framing=2.4,
                samples=options.antialias,
            )
        )
        self._cache: dict[int, tuple[Any, Any, np.ndarray | None, np.ndarray | None]] = {}

    def close(self) -> None:
        """Releases the renderer."""
        self.renderer.close()

    def __enter__(self) -> PairScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identity(self, k: int) -> tuple[Any, Any, np.ndarray | None, np.ndarray | None]:
        """Returns (avatar, skin or None, landmark ids or None, ARKit map or None) of identity k."""
        if k not in self._cache:
            from facexpr.avatars.avatar import avatar_from_gltf, get_avatar

            o = self.options
            if self.files:
                where = str(self.files[k])
                if self.files[k].suffix == ".npz":  # a compact identity bank entry
                    from facexpr.synth._bank_entry import load_compact_avatar

                    av = load_compact_avatar(self.files[k], name=self.names[k])
                else:
                    av = avatar_from_gltf(self.files[k], name=self.names[k])
                skin = None
            else:
                where = self.names[k]
                rng = np.random.default_rng(
                    np.random.SeedSequence(o.identity_seed, spawn_key=(1, k))
                )
                base = get_avatar("ict")
                z = rng.standard_normal(base.rig.n_identity).astype(np.float32)
                av = get_avatar("ict", identity=z)
                tone = o.skin_tones[int(rng.integers(len(o.skin_tones)))]
                skin = tuple(float(np.clip(c * rng.uniform(0.95, 1.05), 0, 1)) for c in tone)
            entry = (av, skin, _landmark_ids(av.rig, where), _channel_map(av, where))
            if len(self._cache) >= 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = entry
        return self._cache[k]


def _weights_for(channel_map: np.ndarray | None, ict: np.ndarray, arkit: np.ndarray) -> np.ndarray:
    if channel_map is None:
        return ict
    # An ARKit-named rig: least squares from the ARKit weights through its (C, 52) map.
    w, *_ = np.linalg.lstsq(channel_map.T, arkit, rcond=None)
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def _aligned(result: Any, ids: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    from facexpr.faces.align import align_face

    src = result.project(ids) if ids is not None else np.asarray(result.landmarks68, np.float32)
    crop, m = align_face(result.image, src.astype(np.float32), size)
    lm = src.astype(np.float64) @ m[:, :2].T.astype(np.float64) + m[:, 2]
    return crop, lm.astype(np.float32)


def render_target(scene: PairScene, ict_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns the canonical crop (size, size, 3) uint8 of rig weights and its 68 landmarks."""
    o = scene.options
    ids = _landmark_ids(scene.canonical.rig, o.canonical)
    result = scene.renderer.render(
        scene.canonical, ict_weights, pose=(0.0, 0.0, 0.0), light=CANONICAL_LIGHT,
        background=o.canonical_background, skin=o.canonical_skin,
    )  # fmt: skip
    return _aligned(result, ids, o.size)


def render_input(
    scene: PairScene,
    identity: int,
    ict_weights: np.ndarray,
    arkit_weights: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Returns an input crop: the weights on ``identity`` with a pose, light and background
    drawn from ``rng``, as (crop, its 68 landmarks, the draws).

    Raises:
        InputError: the identity's avatar cannot be used (named).
    """
    from facexpr.synth.engine import _draw_light

    o = scene.options
    pose = tuple(float(rng.uniform(*r)) for r in (o.pitch_range, o.yaw_range, o.roll_range))
    light = _draw_light(rng, "random")
    kind = o.backgrounds[int(rng.integers(len(o.backgrounds)))]
    bg = draw_background(rng, kind, o.render_size, o.render_size)
    avatar, skin, ids, cmap = scene.identity(identity)
    w = _weights_for(cmap, ict_weights, arkit_weights)
    result = scene.renderer.render(avatar, w, pose=pose, light=light, background=bg, skin=skin)
    crop, lm = _aligned(result, ids, o.size)
    draws = {"render_pose": [round(v, 4) for v in pose], "background": kind, "light": light}
    return crop, lm, draws


def render_pair(scene: PairScene, index: int) -> PairSample:
    """Returns pair ``index`` (deterministic in (seed, index)).

    Raises:
        InputError: an identity avatar cannot be used (named).
    """
    o = scene.options
    rng = np.random.default_rng(np.random.SeedSequence(o.seed, spawn_key=(3, index)))
    k = int(rng.integers(len(scene.names)))
    expr = ExpressionSampler(rng, o.expressions).sample()
    inp, lm_in, draws = render_input(scene, k, expr.ict_weights, expr.arkit_weights, rng)
    target, lm_t = render_target(scene, expr.ict_weights)
    prov = {
        "seed": o.seed,
        "index": index,
        "identity": scene.names[k],
        "expression": expr.kind,
        **draws,
    }
    return PairSample(index, inp, target, expr.ict_weights, expr.arkit_weights, k,
                      scene.names[k], lm_in, lm_t, prov)  # fmt: skip


def generate_pairs(
    options: PairOptions, out_dir: str | Path, *, progress: bool = False, overwrite: bool = False
) -> tuple[Manifest, Manifest]:
    """Renders a pair set into ``out_dir/inputs`` and ``out_dir/targets`` (same keys, same
    labels but the landmarks); returns their manifests.

    Raises:
        ConfigError: ``out_dir`` holds a dataset and not ``overwrite``.
        InputError: a bad identity folder or avatar, or another run writing there.
        MissingDependencyError: the renderer's packages are missing.
    """
    from facexpr.io.shard_writer import ShardWriter

    out = Path(out_dir)
    opts = asdict(options)
    opts["expressions"] = asdict(options.expressions)
    attrs = {"options": opts, "created_for": "Norface identity normalisation pairs"}
    with PairScene(options) as scene:
        writers = [
            ShardWriter(
                out / part,
                samples_per_shard=1000,
                schema=PAIR_SCHEMA,
                created_by="facexpr.synth.pairs",
                attributes={**attrs, "part": part},
                overwrite=overwrite,
            )
            for part in ("inputs", "targets")
        ]
        it: Any = range(options.n)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="pairs", unit="pair")
        try:
            for i in it:
                p = render_pair(scene, i)
                base = {"ict_weights": p.ict_weights, "arkit_weights": p.arkit_weights,
                        "identity": p.identity}  # fmt: skip
                for wr, img, lm in ((writers[0], p.input, p.input_landmarks),
                                    (writers[1], p.target, p.target_landmarks)):  # fmt: skip
                    wr.write(Sample(f"{i:09d}", encode_png(img, 3), {**base, "landmarks68": lm},
                                    "synth:pairs", p.subject_id, p.provenance))  # fmt: skip
        except BaseException:
            for wr in writers:
                wr.abort()
            raise
        return writers[0].close(), writers[1].close()

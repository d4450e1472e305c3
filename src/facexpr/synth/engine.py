"""Synthetic labelled faces: random identity, expression, pose, light and background, rendered.

:func:`generate` draws every sample from its own seed, ``SeedSequence(seed, spawn_key=(0, i))``,
so the dataset depends only on the options and the seed, not on the number of workers: the same
seed gives the same bytes. Workers (``multiprocessing``, spawn) each open their own GL context;
samples come back in order and are written as :mod:`facexpr.io.shards`.

Each sample: an identity (ICT FaceKit identity coefficients from N(0, 1), one ``subject_id`` per
identity, identities shared by many samples), an expression from :class:`ExpressionSampler`, a head
pose, a light, a skin tone and a background, rendered at ``render_size`` and cropped to ``size``
exactly as the face front-end crops real faces (:func:`facexpr.faces.align.align_face`, same
template), from 68 landmarks placed where the front-end places them: for ICT FaceKit avatars, the
vertices measured to correspond to the front-end's iBUG-68 points
(:func:`facexpr.avatars.fitting.correspondence`), not ICT's own landmark vertices, which sit up to
2 cm away. Models trained on these crops then see real crops framed the same way.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.align import align_face
from facexpr.io.shard_writer import ShardWriter
from facexpr.io.shards import LabelField, Manifest, Sample, encode_png, subject_split
from facexpr.synth.bank import BANK_FILE, Bank, BankAvatars, load_bank, person_split
from facexpr.synth.compose import BackgroundKind, draw_background, list_photos
from facexpr.synth.expressions import EMOTION_LABELS, ExpressionSampler, ExpressionSamplerOptions

log = logging.getLogger(__name__)

__all__ = ["SCHEMA", "SynthOptions", "SynthSample", "generate", "render_sample"]

SCHEMA: tuple[LabelField, ...] = (
    LabelField("ict_weights", (53,), "float32", "ICT FaceKit expression weights in [0, 1], "
               "facexpr.core.arkit.ICT_CHANNELS order"),
    LabelField("arkit_weights", (52,), "float32", "ARKit blendshape weights in [0, 1], "
               "facexpr.core.arkit.ARKIT_NAMES order (split ICT channels averaged, tongueOut 0)"),
    LabelField("aus", (len(AU_NAMES),), "float32", "FACS AU intensities 0-5 (A=1..E=5) from "
               "facexpr.avatars.facs.arkit_to_au, facexpr.avatars.facs.AU_NAMES order"),
    LabelField("landmarks68", (68, 2), "float32", "iBUG 68 landmarks (x, y) in px of the "
               "aligned crop, projected from the mesh (occluded points included)"),
    LabelField("landmarks68_visible", (68,), "int32", "1 where the landmark's vertex is not "
               "hidden by the head itself (e.g. the far jaw contour of a turned head), else 0"),
    LabelField("head_pose", (3,), "float32", "head pitch, yaw, roll in degrees "
               "(facexpr.core.types.HeadPose convention) as seen in the aligned crop: the "
               "alignment's in-plane rotation is folded into the roll; the render's pose is "
               "provenance.render_pose"),
    LabelField("identity", (), "int64", "identity index within the dataset (see subject_id)"),
    LabelField("emotion", (), "str", "dominant basic emotion (EMOTION_LABELS); absent for "
               "random activations"),
    LabelField("emotion_intensity", (), "float32", "intensity in [0, 1] of the dominant emotion; "
               "absent for random activations"),
    LabelField("emotion_mix", (len(EMOTION_LABELS),), "float32", "shares over neutral, "
               "happiness, sadness, surprise, fear, anger, disgust, contempt; absent for random "
               "activations"),
)  # fmt: skip


def check_scene_options(owner: str, o: Any) -> None:
    """Checks the options every rendered data set shares (``n``, ``size``, ``render_size``,
    the pose ranges, ``skin_tones``, ``antialias``); errors name ``owner`` (the options class).

    Raises:
        ConfigError: the first option out of range.
    """
    if o.n < 1:
        raise ConfigError(f"{owner}.n must be >= 1, got {o.n}")
    if o.size < 16 or o.render_size < o.size:
        raise ConfigError(
            f"{owner}: need 16 <= size <= render_size, got size={o.size}, "
            f"render_size={o.render_size}"
        )
    for name in ("yaw_range", "pitch_range", "roll_range"):
        lo, hi = getattr(o, name)
        if not -90 <= lo <= hi <= 90:
            raise ConfigError(f"{owner}.{name} must be -90 <= lo <= hi <= 90 degrees")
    if not o.skin_tones or any(
        len(c) != 3 or not all(0 <= v <= 1 for v in c) for c in o.skin_tones
    ):
        raise ConfigError(f"{owner}.skin_tones: give RGB triples in [0, 1]")
    if o.antialias not in (0, 2, 4, 8):
        raise ConfigError(f"{owner}.antialias must be 0, 2, 4 or 8, got {o.antialias}")


@dataclass(frozen=True)
class SynthOptions:
    """Options of a synthetic dataset.

    Attributes:
        avatars: avatar names. 'ict' draws random ICT FaceKit identities (``n_identities`` of
            them); other names are built-in avatars of :func:`facexpr.avatars.avatar.get_avatar`
            ('ict_000', 'ict_toon', ...), each one identity.
        n: number of faces.
        size: side of the aligned crop, px.
        render_size: side of the rendered frame before alignment, px.
        seed: dataset seed.
        workers: rendering processes (1 renders in this process).
        n_identities: random ICT identities; default ``max(1, n // 50)``.
        yaw_range: degrees, drawn uniformly.
        pitch_range: degrees.
        roll_range: degrees.
        light: 'random' (direction, intensity and colour drawn per sample) or 'fixed'.
        skin_tones: RGB skin albedos in [0, 1]; each random identity draws one (with a +-5%
            jitter), so a subject keeps its skin tone; default a light-to-dark range.
        background: 'solid', 'gradient', 'noise' or 'photos' (needs ``background_dir``).
        background_dir: folder of background photos (only with 'photos' among the kinds);
            every image file in it must be a usable photo, checked before rendering starts.
        samples_per_shard: samples per shard file.
        expressions: expression mixture options.
        png_compression: zlib level 0-9 of the PNG crops.
        antialias: multisample anti-aliasing samples of the renderer (0, 2, 4 or 8); on
            llvmpipe, 2 costs ~25 ms per 320 px frame over 0 and removes jagged head outlines.
        pair_size: samples that share one expression. With k > 1, samples ``g*k .. g*k+k-1``
            render the same expression (drawn from group ``g``'s own seed) on k different
            identities (when there are k), each with its own pose, light and background: exact
            positive pairs for expression triplets. 1 (default) draws an expression per sample.
        identity_bank: a bank folder of captured real people (:mod:`facexpr.synth.bank`): its
            textured identities are rendered, besides those of ``avatars`` (give
            ``avatars=()`` for the bank alone); ``subject_id`` is the source person.
        bank_split: the bank's people rendered: ``"all"``, or only those of the ``"train"`` or
            ``"test"`` split (:func:`facexpr.synth.bank.person_split`, a stable hash of the
            person id).
        test_fraction: share of the people in the test split, in [0, 1].
        identity_block: consecutive samples ``b*k .. b*k+k-1`` share one identity (drawn from
            block ``b``'s seed), each with its own expression, pose, light and background; a
            bank identity is loaded from its file once per block. Default 8 with a bank, else 1
            (each sample draws its identity).
        textured_light: how a textured (captured) identity is lit. Its texture holds the photo's
            own light, so ``"unlit"`` (default) shows the texture as it is (the drawn light
            unused), and ``"relight"`` multiplies it by a mild first-order shading of the drawn
            light (ambient 0.7-0.9, diffuse the rest, little specular), so pose and light still
            change the shading. Unlit faces were the harder to tell from real photos
            (``docs/photoreal.md``).
    """

    avatars: tuple[str, ...] = ("ict",)
    n: int = 1000
    size: int = 224
    render_size: int = 320
    seed: int = 0
    workers: int = 1
    n_identities: int | None = None
    yaw_range: tuple[float, float] = (-30.0, 30.0)
    pitch_range: tuple[float, float] = (-20.0, 20.0)
    roll_range: tuple[float, float] = (-15.0, 15.0)
    light: str = "random"
    skin_tones: tuple[tuple[float, float, float], ...] = (
        (0.95, 0.80, 0.70), (0.88, 0.70, 0.58), (0.78, 0.58, 0.45), (0.65, 0.46, 0.34),
        (0.50, 0.34, 0.24), (0.36, 0.24, 0.17),
    )  # fmt: skip
    background: BackgroundKind | tuple[BackgroundKind, ...] = ("solid", "gradient", "noise")
    background_dir: str | None = None
    samples_per_shard: int = 1000
    expressions: ExpressionSamplerOptions = field(default_factory=ExpressionSamplerOptions)
    png_compression: int = 3
    antialias: int = 2
    pair_size: int = 1
    identity_bank: str | None = None
    bank_split: Literal["all", "train", "test"] = "all"
    test_fraction: float = 0.2
    identity_block: int | None = None
    textured_light: Literal["relight", "unlit"] = "unlit"

    def __post_init__(self) -> None:
        if self.pair_size < 1:
            raise ConfigError(f"SynthOptions.pair_size must be >= 1, got {self.pair_size}")
        if not self.avatars and self.identity_bank is None:
            raise ConfigError(
                "SynthOptions.avatars: give at least one avatar name or an identity_bank"
            )
        if self.bank_split not in ("all", "train", "test"):
            raise ConfigError(
                f"SynthOptions.bank_split must be 'all', 'train' or 'test', got {self.bank_split!r}"
            )
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ConfigError(
                f"SynthOptions.test_fraction must be in [0, 1], got {self.test_fraction}"
            )
        if self.identity_block is not None and self.identity_block < 1:
            raise ConfigError(
                f"SynthOptions.identity_block must be >= 1, got {self.identity_block}"
            )
        if self.textured_light not in ("relight", "unlit"):
            raise ConfigError(
                "SynthOptions.textured_light must be 'relight' or 'unlit', got "
                f"{self.textured_light!r}"
            )
        if self.identity_bank is None and (self.bank_split != "all"):
            raise ConfigError("SynthOptions.bank_split needs an identity_bank")
        check_scene_options("SynthOptions", self)
        if self.workers < 1:
            raise ConfigError(f"SynthOptions.workers must be >= 1, got {self.workers}")
        if self.n_identities is not None and self.n_identities < 1:
            raise ConfigError(f"SynthOptions.n_identities must be >= 1, got {self.n_identities}")
        if self.light not in ("random", "fixed"):
            raise ConfigError(f"SynthOptions.light must be 'random' or 'fixed', got {self.light!r}")
        kinds = self.backgrounds
        bad = [k for k in kinds if k not in ("solid", "gradient", "noise", "photos")]
        if bad or not kinds:
            raise ConfigError(
                f"SynthOptions.background: unknown kind(s) {bad} (solid, gradient, noise, photos)"
            )
        if "photos" in kinds and self.background_dir is None:
            raise ConfigError("SynthOptions: background 'photos' needs background_dir")
        if self.background_dir is not None and "photos" not in kinds:
            # A folder that is given but never drawn from was the bug of issue 16.
            raise ConfigError(
                "SynthOptions: background_dir is given but 'photos' is not one of the background "
                f"kinds {kinds}; add 'photos' to background"
            )
        if not 0 <= self.png_compression <= 9:
            raise ConfigError("SynthOptions.png_compression must be in 0..9")

    @property
    def backgrounds(self) -> tuple[str, ...]:
        """The background kinds as a tuple."""
        return (self.background,) if isinstance(self.background, str) else tuple(self.background)

    @property
    def identities(self) -> int:
        """Number of random ICT identities."""
        return self.n_identities if self.n_identities is not None else max(1, self.n // 50)

    @property
    def block(self) -> int:
        """Consecutive samples that share an identity (see ``identity_block``)."""
        if self.identity_block is not None:
            return self.identity_block
        return 8 if self.identity_bank is not None else 1


@dataclass(frozen=True, slots=True)
class SynthSample:
    """One rendered synthetic face with its labels (before encoding).

    Attributes:
        index: sample index in the dataset.
        image: (size, size, 3) uint8 RGB aligned crop.
        labels: label name -> value, :data:`SCHEMA` fields (absent when not defined).
        subject_id: identity name.
        provenance: seeds and draws that made the sample.
    """

    index: int
    image: np.ndarray
    labels: dict[str, Any]
    subject_id: str
    provenance: dict[str, Any]


def _load_bank(options: SynthOptions) -> Bank | None:
    return None if options.identity_bank is None else load_bank(options.identity_bank)


def _identity_list(options: SynthOptions, bank: Bank | None = None) -> list[tuple[str, int]]:
    """Returns (avatar name, identity number) for every identity of the dataset; bank entries
    are ``("bank", entry index)``.

    Raises:
        InputError: the bank has no person in the chosen split.
    """
    out: list[tuple[str, int]] = []
    for name in options.avatars:
        if name == "ict":
            out.extend(("ict", k) for k in range(options.identities))
        else:
            out.append((name, 0))
    if bank is not None:
        chosen = bank.select(options.bank_split, options.test_fraction)
        if not chosen:
            raise InputError(
                bank.folder / BANK_FILE, f"no person of the bank is in the '{options.bank_split}' "
                f"split (test fraction {options.test_fraction}, {len(bank.entries)} identities)",
            )  # fmt: skip
        out.extend(("bank", k) for k in chosen)
    return out


def _subject_id(name: str, k: int, bank: Bank | None = None) -> str:
    if name == "bank":
        assert bank is not None
        return bank.entries[k].person
    return f"ict-{k:05d}" if name == "ict" else name


class _Scene:
    """Per-process renderer and avatar cache."""

    def __init__(self, options: SynthOptions) -> None:
        from facexpr.avatars.render import Renderer, RenderOptions

        self.options = options
        # framing 2.4: the render spans 2.4 landmark heights, a bit more than the aligned crop
        # (1 / 0.6 of them), so turned and tilted heads stay inside the render.
        self.renderer = Renderer(
            RenderOptions(
                width=options.render_size,
                height=options.render_size,
                framing=2.4,
                samples=options.antialias,
            )
        )
        self.bank = _load_bank(options)
        self.bank_avatars = None if self.bank is None else BankAvatars(self.bank)
        self.identities = _identity_list(options, self.bank)
        self.photos = list_photos(options.background_dir) if "photos" in options.backgrounds else ()
        self._avatars: dict[tuple[str, int], tuple[Any, Any]] = {}

    def avatar(self, name: str, k: int) -> tuple[Any, tuple[float, float, float] | None]:
        """Returns the avatar of identity ``(name, k)`` and its skin tone (cached; None for
        avatars with their own look or texture)."""
        if name == "bank":
            assert self.bank_avatars is not None
            return self.bank_avatars.avatar(k), None
        key = (name, k)
        if key not in self._avatars:
            from facexpr.avatars.avatar import get_avatar

            o = self.options
            # Identity and skin tone belong to the subject, so they come from the identity's
            # seed, not the sample's.
            rng = np.random.default_rng(np.random.SeedSequence(o.seed, spawn_key=(1, k)))
            if name == "ict":
                z = rng.standard_normal(get_avatar("ict").rig.n_identity).astype(np.float32)
                av = get_avatar("ict", identity=z)
                skin = o.skin_tones[int(rng.integers(len(o.skin_tones)))]
                skin = tuple(float(np.clip(c * rng.uniform(0.95, 1.05), 0, 1)) for c in skin)
            else:
                av = get_avatar(name)
                skin = None  # the avatar's own look
            if len(self._avatars) >= 16:
                self._avatars.pop(next(iter(self._avatars)))
            self._avatars[key] = (av, skin)
        return self._avatars[key]


_SCENE: _Scene | None = None
_DEFAULTS = SynthOptions()


def _worker_init(options: SynthOptions) -> None:
    global _SCENE
    import torch

    torch.set_num_threads(1)
    _SCENE = _Scene(options)


def _draw_light(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    if kind == "fixed":
        return {"direction": (0.3, 0.4, 1.0), "intensity": 0.8, "ambient": 0.35,
                "color": (1.0, 1.0, 1.0)}  # fmt: skip
    az = rng.uniform(-70, 70)
    el = rng.uniform(-20, 60)
    d = (
        float(np.sin(np.radians(az)) * np.cos(np.radians(el))),
        float(np.sin(np.radians(el))),
        float(np.cos(np.radians(az)) * np.cos(np.radians(el))),
    )
    warm = rng.uniform(-0.08, 0.08)
    return {
        "direction": d,
        "intensity": float(rng.uniform(0.5, 1.0)),
        "ambient": float(rng.uniform(0.2, 0.5)),
        "color": (float(1 + warm), 1.0, float(1 - warm)),
    }


def _relight(light: dict[str, Any], mode: str) -> dict[str, Any]:
    """Returns the light of a textured identity, from the sample's drawn light (no new draws).

    The texture already holds the photo's shading: ``"unlit"`` shows it as it is; ``"relight"``
    keeps most of it (ambient 0.7-0.9 from the drawn intensity) and adds the drawn direction's
    Lambert term for the rest, so frontal skin stays near the texture's brightness.
    """
    if mode == "unlit":
        return {"direction": light["direction"], "intensity": 0.0, "ambient": 1.0,
                "color": (1.0, 1.0, 1.0), "specular": 0.0}  # fmt: skip
    ambient = 0.9 - 0.4 * (float(light["intensity"]) - 0.5)
    return {
        "direction": light["direction"],
        "intensity": round(1.05 - ambient, 6),
        "ambient": round(ambient, 6),
        "color": light["color"],
        "specular": 0.3,
    }


def _crop_pose(pose: tuple[float, float, float], m: np.ndarray) -> np.ndarray:
    """Returns (3,) float32 pitch, yaw, roll in degrees of the head as seen in the aligned crop.

    The in-plane rotation of the alignment (angle ``a`` of ``m``, image y down) is a rotation of
    the camera about its optical axis, so the head's rotation in the crop's camera is
    ``Rz(-a) @ R`` (camera y up), decomposed back with the renderer's convention
    ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` (:func:`facexpr.avatars.render.pose_matrix`).
    """
    from facexpr.avatars.render import pose_matrix

    a = math.atan2(m[1, 0], m[0, 0])
    rz = np.array([[math.cos(-a), -math.sin(-a), 0], [math.sin(-a), math.cos(-a), 0], [0, 0, 1]])
    r = rz @ pose_matrix(pose)[:3, :3]
    yaw = math.asin(float(np.clip(r[0, 2], -1, 1)))
    roll = math.atan2(-r[0, 1], r[0, 0])
    pitch = math.atan2(-r[1, 2], r[2, 2])
    return np.degrees(np.array([pitch, yaw, roll])).astype(np.float32)


def _align(
    rig: Any, result: Any, size: int, id_map: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the crop, its 68 landmarks (px in the crop) and the (2, 3) image -> crop matrix.

    ``id_map`` maps ICT vertex ids to the rig's (the atlas rig of captured identities duplicates
    vertices at the UV seams).
    """
    from facexpr.avatars.fitting import correspondence  # imports torch: only when rendering

    ids = np.asarray(correspondence()["ibug68"])
    if id_map is not None:
        ids = id_map[ids]
    if rig.n_vertices > ids.max() and rig.landmark_vertices is not None:  # ICT topology
        src = result.project(ids).astype(np.float64)
    else:  # another rig: its own landmark vertices
        src = np.asarray(result.landmarks68, np.float64)
    crop, m = align_face(result.image, src.astype(np.float32), size)
    lm = src @ m[:, :2].T.astype(np.float64) + m[:, 2]
    return crop, lm.astype(np.float32), m.astype(np.float64)


def render_sample(scene: _Scene, index: int) -> SynthSample:
    """Returns sample ``index`` rendered in ``scene`` (deterministic in (seed, index))."""
    o = scene.options
    rng = np.random.default_rng(np.random.SeedSequence(o.seed, spawn_key=(0, index)))
    name, k = scene.identities[int(rng.integers(len(scene.identities)))]
    if o.block > 1:
        # The sample's own draw above is kept (so the expression, pose and light draws that
        # follow are those of the same seed without blocks); the block's generator picks.
        brng = np.random.default_rng(
            np.random.SeedSequence(o.seed, spawn_key=(3, index // o.block))
        )
        name, k = scene.identities[int(brng.integers(len(scene.identities)))]
    if o.pair_size > 1:
        # One expression per group, on distinct identities: the group's own generator draws both.
        group, j = divmod(index, o.pair_size)
        grng = np.random.default_rng(np.random.SeedSequence(o.seed, spawn_key=(2, group)))
        order = grng.permutation(len(scene.identities))
        name, k = scene.identities[int(order[j % len(order)])]
        expr = ExpressionSampler(grng, o.expressions).sample()
    else:
        expr = ExpressionSampler(rng, o.expressions).sample()
    pitch, yaw, roll = (float(rng.uniform(*r)) for r in (o.pitch_range, o.yaw_range, o.roll_range))
    light = _draw_light(rng, o.light)
    kind = o.backgrounds[int(rng.integers(len(o.backgrounds)))]
    bg = draw_background(rng, kind, o.render_size, o.render_size, scene.photos)  # type: ignore[arg-type]
    avatar, skin = scene.avatar(name, k)
    shown = light
    id_map = None
    if name == "bank":
        shown = _relight(light, o.textured_light)
        id_map = scene.bank_avatars.ict_to_atlas  # type: ignore[union-attr]
    result = scene.renderer.render(
        avatar, expr.ict_weights, pose=(pitch, yaw, roll), light=shown, background=bg, skin=skin
    )
    crop, lm, m = _align(avatar.rig, result, o.size, id_map)
    crop_pose = _crop_pose((pitch, yaw, roll), m)
    labels: dict[str, Any] = {
        "ict_weights": expr.ict_weights,
        "arkit_weights": expr.arkit_weights,
        "aus": arkit_to_au(expr.arkit_weights),
        "landmarks68": lm,
        "landmarks68_visible": result.landmarks_visible.astype(np.int32),
        "head_pose": crop_pose,
        "identity": scene.identities.index((name, k)),
    }
    if expr.emotion is not None:
        labels["emotion"] = expr.emotion
        labels["emotion_intensity"] = np.float32(expr.emotion_intensity)
        labels["emotion_mix"] = expr.emotion_mix
    prov = {
        "seed": o.seed,
        "index": index,
        "avatar": f"bank:{avatar.name}" if name == "bank" else name,
        "expression": expr.kind,
        **({"expression_group": index // o.pair_size} if o.pair_size > 1 else {}),
        "render_pose": [round(v, 4) for v in (pitch, yaw, roll)],
        "background": kind,
        "light": shown,
    }
    return SynthSample(index, crop, labels, _subject_id(name, k, scene.bank), prov)


def _work(index: int) -> tuple[int, bytes, dict[str, Any], str, dict[str, Any]]:
    assert _SCENE is not None
    s = render_sample(_SCENE, index)
    return s.index, encode_png(s.image, _SCENE.options.png_compression), s.labels, s.subject_id, \
        s.provenance  # fmt: skip


def _results(options: SynthOptions, start: int = 0) -> Iterator[tuple[int, bytes, dict, str, dict]]:
    """Yields the encoded samples ``start .. n-1`` in order."""
    if start >= options.n:
        return
    if options.workers == 1:
        _worker_init(options)
        try:
            for i in range(start, options.n):
                yield _work(i)
        finally:
            _close_scene()
        return
    ctx = mp.get_context("spawn")
    # BLAS/OpenMP threads per worker: 1, else 2 workers x N threads fight over the cores.
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})
    try:
        pool = ctx.Pool(options.workers, initializer=_worker_init, initargs=(options,))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:
        chunk = max(1, min(16, (options.n - start) // (4 * options.workers)))
        yield from pool.imap(_work, range(start, options.n), chunksize=chunk)


def _close_scene() -> None:
    global _SCENE
    if _SCENE is not None and hasattr(_SCENE.renderer, "close"):
        _SCENE.renderer.close()
    _SCENE = None


def generate(
    options: SynthOptions,
    out_dir: str | Path,
    *,
    progress: bool = False,
    overwrite: bool = False,
    resume: bool = False,
) -> Manifest:
    """Renders a synthetic dataset into ``out_dir`` as facexpr shards; returns its manifest.

    Identities are split subject-exclusively into 'train' / 'val' / 'test' (80/10/10 of the
    samples, by :func:`facexpr.io.shards.subject_split`) when there are at least 3 identities;
    the splits are recorded in the manifest.

    Args:
        options: what to render.
        out_dir: dataset folder (created).
        progress: show a tqdm bar on stderr.
        overwrite: replace a dataset already in ``out_dir``.
        resume: continue an interrupted run into ``out_dir`` with the same options: its finished
            shards are verified (sha256) and kept, and rendering continues after them. Every
            sample depends only on (seed, index), so the result is byte-identical to an
            uninterrupted run. A finished dataset with the same options is kept as it is.

    Raises:
        ConfigError: ``out_dir`` holds a dataset and neither ``overwrite`` nor ``resume``, or
            ``resume`` with options other than those of the dataset there.
        InputError: another run is writing into ``out_dir``; the background photo folder is
            missing, empty, or holds a file that is not a usable photo.
        MissingDependencyError: the renderer's packages are missing.
    """
    if "photos" in options.backgrounds:
        list_photos(options.background_dir)  # type: ignore[arg-type]  # a bad folder fails first
    bank = _load_bank(options)  # a bad bank fails before anything is written
    opts = asdict(options)
    opts["expressions"] = asdict(options.expressions)
    del opts["workers"]  # does not change the data; the manifest must not depend on it
    # Options at their defaults that came with identity banks are left out, so the manifests
    # of datasets made without them stay as they were.
    for k in ("identity_bank", "bank_split", "test_fraction", "identity_block", "textured_light"):
        if opts[k] == getattr(_DEFAULTS, k):
            del opts[k]
    if bank is not None:
        opts["identity_bank"] = str(Path(options.identity_bank).resolve())  # type: ignore[arg-type]
    identities = _identity_list(options, bank)
    extra: dict[str, Any] = {}
    if bank is not None:
        extra["identity_bank"] = {
            "sha256": bank.sha256,
            "entries": [bank.entries[k].key for n, k in identities if n == "bank"],
        }
    writer = ShardWriter(
        out_dir,
        samples_per_shard=options.samples_per_shard,
        schema=SCHEMA,
        created_by="facexpr.synth.generate",
        attributes={
            "options": opts,
            "au_names": list(AU_NAMES),
            "emotion_labels": list(EMOTION_LABELS),
            "identities": [_subject_id(n, k, bank) for n, k in identities],
            **extra,
        },
        overwrite=overwrite,
        resume=resume,
    )
    with writer:
        subjects = list(writer.resumed_subjects)
        start = writer.n_samples
        if start:
            log.info("%s: %d of %d faces already rendered; resuming", out_dir, start, options.n)
        it: Any = _results(options, start)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=options.n, initial=start, desc="synth", unit="face")
        for index, png, labels, subject_id, prov in it:
            writer.write(
                Sample(f"{index:09d}", png, labels, f"synth:{prov['avatar']}", subject_id, prov)
            )
            subjects.append(subject_id)
        if bank is not None:
            # By source person, stable across seeds and datasets: a person in the test split of
            # one dataset is in no other's train split.
            frac = options.test_fraction
            uniq = sorted(set(subjects))
            writer.set_splits({sp: [s for s in uniq if person_split(s, frac) == sp]
                               for sp in ("train", "test")})  # fmt: skip
        elif len(set(subjects)) >= 3:
            writer.set_splits(subject_split(subjects, {"train": 0.8, "val": 0.1, "test": 0.1},
                                            seed=options.seed))  # fmt: skip
    return writer.close()

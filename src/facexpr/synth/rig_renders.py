"""(rig weights, render) pairs of one avatar in a fixed frontal view: the neural renderer's data.

FreeAvatar (arXiv:2409.13180) trains its rig-to-image generator on renders of the avatar under
random rig values, one frontal camera and light. :class:`RigRenderSet` draws them the same way from
facexpr's real OpenGL renderer (:class:`facexpr.avatars.render.Renderer`):

- weights: for ICT-topology rigs (53 channels in :data:`facexpr.core.arkit.ICT_CHANNELS` order)
  :class:`facexpr.synth.expressions.ExpressionSampler`'s plausible expressions; for other rigs
  (a user's glTF) the same ARKit expressions mapped by channel name where channels have ARKit
  names, and sparse random activations of the rig's own channels; for every rig a share of
  single-shape activations (one channel alone, so each shape's own effect is seen);
- the view: head pose (0, 0, 0), one fixed light, a solid grey background; the render is warped
  by the similarity that aligns the *neutral* face exactly as the face front-end aligns real
  faces (:func:`facexpr.faces.align.align_face`'s template), one fixed matrix per avatar, so
  expressions move the face inside a fixed frame as in a video crop. The neutral face's 68
  landmarks are the rig's (ICT: the vertices matched to the front-end's points); for rigs
  without them (a user's glTF) the face front-end finds them in the neutral render; where it
  finds no face, the mesh's bounding box frames it;
- the render is drawn at twice the output side without multisampling and reduced by area
  averaging (the same smooth edges as 4x multisampling, at the cost of one frame: most of the
  time goes to blending and normals, not to rasterising).

Sample ``i`` of a split depends only on (seed, avatar name, split, i): adding avatars or samples
changes no other sample. :func:`build_cache` renders a split once into an ``.npz`` under a cache
folder (``data/`` or ``runs/``, gitignored); :func:`load_cache` reads it back, checked.

Eye and mouth boxes (:attr:`RigRenderSet.boxes`) come from the neutral face's 68 landmarks in the
output frame; a face the front-end cannot find gets fixed boxes at the template's eye and mouth
positions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError
from facexpr.synth.expressions import ExpressionSampler

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_FORMAT",
    "RigRenderOptions",
    "RigRenderSet",
    "build_cache",
    "cache_path",
    "load_avatar",
    "load_cache",
    "sample_weights",
]

CACHE_FORMAT = "facexpr-rig-renders-1"
Split = Literal["train", "val", "test"]
_SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
# The fixed frontal light (synth's "fixed" light) and background.
LIGHT: dict[str, Any] = {"direction": (0.3, 0.4, 1.0), "intensity": 0.8, "ambient": 0.35,
                         "color": (1.0, 1.0, 1.0)}  # fmt: skip
BACKGROUND = (0.5, 0.5, 0.5)
# Boxes (x0, y0, x1, y1) as fractions of the side, for rigs without 68 landmarks: around the
# aligned template's eyes (y 0.38) and mouth (y 0.68) (facexpr.faces.align.ALIGN_TEMPLATE).
_TEMPLATE_EYES = (0.22, 0.24, 0.78, 0.48)
_TEMPLATE_MOUTH = (0.30, 0.56, 0.70, 0.88)


@dataclass(frozen=True)
class RigRenderOptions:
    """How the pairs are drawn.

    Attributes:
        size: output side, px (the neural renderer's ``size``).
        seed: data seed.
        p_single: share of single-shape activations (one channel at U(0.3, 1)).
        p_neutral: share of neutral faces (all weights 0).
    """

    size: int = 128
    seed: int = 0
    p_single: float = 0.15
    p_neutral: float = 0.03

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 1024:
            raise ConfigError(f"RigRenderOptions.size must be in [16, 1024], got {self.size}")
        if not (0 <= self.p_single <= 1 and 0 <= self.p_neutral <= 1) or (
            self.p_single + self.p_neutral > 1
        ):
            raise ConfigError(
                "RigRenderOptions: p_single and p_neutral must be in [0, 1] and sum to <= 1, "
                f"got {self.p_single}, {self.p_neutral}"
            )


def load_avatar(spec: str) -> Any:
    """Returns the avatar a name or a glTF/GLB path stands for, checked to have a rig.

    Args:
        spec: a registered avatar name (:func:`facexpr.avatars.avatar.list_avatars`) or the path
            of a ``.glb`` / ``.gltf`` file (its avatar is named after the file's stem).

    Raises:
        InputError: the glTF file is missing, unreadable or has no morph targets.
        ConfigError: an unknown avatar name.
    """
    from facexpr.avatars.avatar import avatar_from_gltf, get_avatar

    p = Path(spec)
    if p.suffix.lower() in (".glb", ".gltf") or p.exists():
        av = avatar_from_gltf(p, name=p.stem)
        if av.rig.n_channels == 0:
            raise InputError(
                p,
                "has no morph targets: the neural renderer maps an avatar's rig weights to "
                "images, so its mesh needs at least one morph target (blend shape)",
            )
        return av
    return get_avatar(spec)


def _is_ict(channel_names: Sequence[str]) -> bool:
    return tuple(channel_names) == tuple(ICT_CHANNELS)


def sample_weights(
    rng: np.random.Generator,
    channel_names: Sequence[str],
    arkit_matrix: np.ndarray | None,
    options: RigRenderOptions,
) -> np.ndarray:
    """Returns (C,) float32 rig weights in [0, 1] drawn from ``rng`` (see the module docstring).

    Args:
        rng: the sample's own generator.
        channel_names: the rig's channels.
        arkit_matrix: (C, 52) ARKit -> channel matrix (:meth:`Avatar.arkit_matrix`), or None.
        options: shares of single-shape and neutral samples.
    """
    n = len(channel_names)
    r = rng.random()
    w = np.zeros(n, np.float32)
    if r < options.p_neutral:
        return w
    if r < options.p_neutral + options.p_single:
        w[int(rng.integers(n))] = rng.uniform(0.3, 1.0)
        return w
    if _is_ict(channel_names):
        return ExpressionSampler(rng).sample().ict_weights.astype(np.float32)
    has_arkit = arkit_matrix is not None and bool(np.any(arkit_matrix))
    if has_arkit and rng.random() < 0.6:
        w = arkit_matrix @ ExpressionSampler(rng).sample().arkit_weights
    k = 1 + min(int(rng.poisson(1.5)), 4, n - 1)
    for c in rng.choice(n, size=k, replace=False):
        w[c] = max(w[c], rng.beta(1.5, 2.5))
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def _avatar_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class RigRenderSet:
    """Renders (rig weights, image) pairs of one avatar, deterministic in (seed, name, split, i).

    One OpenGL context per set: use a set from one thread (or process) at a time.

    Args:
        avatar: an :class:`facexpr.avatars.avatar.Avatar`.
        options: size, seed and mixture.
        name: the name the pairs are keyed by (default the avatar's).

    Raises:
        MissingDependencyError: the renderer's packages are missing.
        InputError: the avatar's rig has no channels.
    """

    def __init__(self, avatar: Any, options: RigRenderOptions, name: str | None = None) -> None:
        from facexpr.avatars.render import Renderer, RenderOptions

        self.avatar = avatar
        self.options = options
        self.name = name or avatar.name
        rig = avatar.rig
        if rig.n_channels == 0:
            raise InputError(None, f"avatar '{self.name}' has no rig channels (morph targets)")
        self.channel_names = tuple(rig.channel_names)
        self._arkit = avatar.arkit_matrix()
        s = options.size
        self._lm = rig.landmark_vertices is not None and len(rig.landmark_vertices) >= 68
        # The aligned crop spans about 1 / 0.6 landmark heights; the render 2.4 of them, so the
        # crop's 2s px need a render side of about 2s * 2.4 / 1.67. Rigs without landmarks are
        # framed by their bounds (the whole mesh), so their face gets a larger render.
        side = int(math.ceil(2 * s * (1.45 if self._lm else 2.5) / 8) * 8)
        self._renderer = Renderer(
            RenderOptions(width=side, height=side, framing=2.4, samples=0, background=BACKGROUND)
        )
        neutral = self._renderer.render(avatar, None, light=LIGHT)
        src = self._landmarks(neutral) if self._lm else _detect_landmarks(neutral.image)
        if src is not None:
            from facexpr.faces.align import ALIGN_TEMPLATE, TEMPLATE_WEIGHTS, align_points
            from facexpr.faces.align import similarity_umeyama as umeyama

            self._m = umeyama(align_points(src), ALIGN_TEMPLATE * (2 * s), TEMPLATE_WEIGHTS)
            lm = (src @ self._m[:, :2].T + self._m[:, 2]) / 2.0  # in output px
            self.landmarks68: np.ndarray | None = lm.astype(np.float32)
            self.boxes = _boxes(lm, s)
        else:
            log.warning(
                "%s: no face found in the neutral render; framed by the mesh's bounds, with "
                "fixed eye and mouth boxes", self.name,
            )  # fmt: skip
            self._m = None
            self.landmarks68 = None
            self.boxes = np.array([_TEMPLATE_EYES, _TEMPLATE_MOUTH], np.float32) * s

    def _landmarks(self, result: Any) -> np.ndarray:
        """Returns (68, 2) float64 px: the front-end's iBUG points on ICT rigs, else the rig's."""
        from facexpr.avatars.fitting import correspondence

        ids = np.asarray(correspondence()["ibug68"])
        if self.avatar.rig.n_vertices > ids.max():
            return result.project(ids).astype(np.float64)
        return np.asarray(result.landmarks68, np.float64)

    def close(self) -> None:
        """Releases the OpenGL context."""
        self._renderer.close()

    def __enter__(self) -> RigRenderSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def weights(self, split: Split, index: int) -> np.ndarray:
        """Returns the (C,) float32 weights of sample ``index`` of ``split``."""
        if split not in _SPLITS:
            raise ConfigError(f"split must be 'train', 'val' or 'test', got {split!r}")
        ss = np.random.SeedSequence(
            self.options.seed, spawn_key=(_avatar_key(self.name), _SPLITS[split], index)
        )
        return sample_weights(
            np.random.default_rng(ss), self.channel_names, self._arkit, self.options
        )

    def render(self, weights: np.ndarray | None) -> np.ndarray:
        """Returns the (size, size, 3) uint8 RGB render of (C,) weights in the fixed view."""
        import cv2

        s = self.options.size
        img = self._renderer.render(self.avatar, weights, light=LIGHT).image
        if self._m is not None:
            img = cv2.warpAffine(
                img, self._m, (2 * s, 2 * s), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
        return cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)

    def sample(self, split: Split, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns sample ``index`` of ``split``: (C,) float32 weights, (size, size, 3) uint8."""
        w = self.weights(split, index)
        return w, self.render(w)


def _detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """Returns (68, 2) float64 px of the one face the face front-end finds in a render, or None.

    For rigs without landmark vertices (a user's glTF): their neutral render is aligned like a
    photo of a face, so every avatar's frame is the aligned crop.
    """
    from facexpr.core.types import Frame
    from facexpr.faces.frontend import FaceFrontEnd

    with FaceFrontEnd() as fe:
        faces = fe.process(Frame(image)).faces
    if len(faces) != 1:
        return None
    return np.asarray(faces[0].landmarks, np.float64)


def _boxes(lm: np.ndarray, size: int) -> np.ndarray:
    """Returns (2, 4) float32 eye and mouth boxes (x0, y0, x1, y1, px) from 68 landmarks.

    The eye box spans the brows to below the lower lids; the mouth box the lips, widened, down to
    below the chin (an open jaw lowers the chin and the lower lip).
    """
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    pad = 0.25 * iod
    eyes = (lm[36:48, 0].min() - pad, lm[17:27, 1].min() - 0.5 * pad,
            lm[36:48, 0].max() + pad, lm[36:48, 1].max() + pad)  # fmt: skip
    mouth = (lm[48:68, 0].min() - pad, lm[48:68, 1].min() - pad,
             lm[48:68, 0].max() + pad, lm[8, 1] + pad)  # fmt: skip
    return np.clip(np.array([eyes, mouth], np.float32), 0, size)


# --------------------------------------------------------------------------- cache
def _fingerprint(spec: str) -> str:
    """Returns what identifies an avatar's data: a glTF file's sha256, else the name."""
    p = Path(spec)
    if p.suffix.lower() in (".glb", ".gltf") and p.is_file():
        h = hashlib.sha256(p.read_bytes()).hexdigest()
        return f"gltf:{h}"
    return f"builtin:{spec}"


def cache_path(
    cache_dir: str | Path, spec: str, split: Split, n: int, options: RigRenderOptions
) -> Path:
    """Returns the cache file of ``n`` samples of ``split`` of avatar ``spec`` under options."""
    key = json.dumps([_fingerprint(spec), split, n, asdict(options)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(spec).stem)[:40]
    return Path(cache_dir) / f"{stem}-{split}-{options.size}px-n{n}-{digest}.npz"


_WORKER: RigRenderSet | None = None


def _worker_init(spec: str, options: RigRenderOptions) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    _WORKER = RigRenderSet(load_avatar(spec), options)


def _worker_render(args: tuple[str, int]) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER is not None
    split, i = args
    return _WORKER.sample(split, i)  # type: ignore[arg-type]


def build_cache(
    cache_dir: str | Path,
    spec: str,
    split: Split,
    n: int,
    options: RigRenderOptions,
    *,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Renders ``n`` samples of ``split`` into the cache (if not there yet); returns the file.

    The file is an ``.npz``: ``images`` (n, S, S, 3) uint8, ``weights`` (n, C) float32,
    ``boxes`` (2, 4) float32 and ``meta`` (JSON text: format, avatar, channels, options).
    Written atomically; a finished file is reused.

    Raises:
        InputError: the avatar's glTF is unusable.
        ConfigError: n < 1, workers < 1 or an unknown avatar.
    """
    from facexpr.io._files import atomic_write

    if n < 1 or workers < 1:
        raise ConfigError(f"build_cache: n and workers must be >= 1, got {n}, {workers}")
    path = cache_path(cache_dir, spec, split, n, options)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    avatar = load_avatar(spec)
    with RigRenderSet(avatar, options) as rs:
        boxes, channels = rs.boxes, rs.channel_names
        images = np.empty((n, options.size, options.size, 3), np.uint8)
        weights = np.empty((n, len(channels)), np.float32)
        jobs = [(split, i) for i in range(n)]
        if workers == 1:
            it: Any = (rs.sample(split, i) for i in range(n))
            pool = None
        else:
            ctx = mp.get_context("spawn")
            saved = os.environ.get("LP_NUM_THREADS")
            os.environ["LP_NUM_THREADS"] = "1"
            try:
                pool = ctx.Pool(workers, initializer=_worker_init, initargs=(spec, options))
            finally:
                if saved is None:
                    os.environ.pop("LP_NUM_THREADS", None)
                else:
                    os.environ["LP_NUM_THREADS"] = saved
            it = pool.imap(_worker_render, jobs, chunksize=8)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=n, desc=f"render {Path(spec).stem} {split}", unit="frame")
        try:
            for i, (w, img) in enumerate(it):
                weights[i], images[i] = w, img
        finally:
            if pool is not None:
                pool.terminate()
    meta = {"format": CACHE_FORMAT, "avatar": Path(spec).stem if Path(spec).suffix else spec,
            "fingerprint": _fingerprint(spec), "split": split, "n": n,
            "channels": list(channels), "options": asdict(options)}  # fmt: skip
    buf = io.BytesIO()
    np.savez(buf, images=images, weights=weights, boxes=boxes, meta=np.array(json.dumps(meta)))
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getbuffer())
    log.info("wrote %s (%d frames)", path, n)
    return path


@dataclass(frozen=True)
class CachedRenders:
    """A cache file's contents.

    Attributes:
        images: (n, S, S, 3) uint8 RGB.
        weights: (n, C) float32 rig weights.
        boxes: (2, 4) float32 eye and mouth boxes, px.
        channels: the rig's channel names.
    """

    images: np.ndarray
    weights: np.ndarray
    boxes: np.ndarray
    channels: tuple[str, ...]


def load_cache(path: str | Path) -> CachedRenders:
    """Returns a cache file written by :func:`build_cache`, checked.

    Raises:
        InputError: unreadable, another format or inconsistent arrays (names the file).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            images, weights, boxes = z["images"], z["weights"], z["boxes"]
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, zlib.error) as e:
        raise InputError(
            path, f"not a readable rig-render cache ({e}); delete it to rebuild"
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise InputError(path, "not a facexpr rig-render cache; delete it to rebuild")
    ok = (
        images.ndim == 4 and images.dtype == np.uint8 and images.shape[3] == 3
        and weights.shape == (len(images), len(meta.get("channels", ())))
        and boxes.shape == (2, 4)
    )  # fmt: skip
    if not ok:
        raise InputError(path, "inconsistent rig-render cache arrays; delete it to rebuild")
    return CachedRenders(images, weights.astype(np.float32), boxes, tuple(meta["channels"]))

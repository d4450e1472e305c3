"""Named avatars: a rig, identity coefficients and a look, in a registry.

Built-ins come from the shipped ICT FaceKit rig: ``ict`` (the mean face; ``get_avatar("ict",
identity=z)`` gives any identity), ``ict_000`` .. ``ict_007`` (identities drawn from N(0, 1) over
the shipped modes with seeds 0..7) and ``ict_toon`` (bigger eyes, smaller jaw, toon shading).
Users add theirs with :func:`register_avatar` or :func:`register_gltf_avatar`.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from facexpr.avatars.rig import Rig, arkit_index
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_COLORS",
    "Avatar",
    "Look",
    "avatar_from_gltf",
    "get_avatar",
    "list_avatars",
    "register_avatar",
    "register_gltf_avatar",
    "stylise",
]

RGB = tuple[float, float, float]

# Base colours (linear-ish RGB in [0, 1]) per ICT material; 'skin' materials take Look.skin.
DEFAULT_COLORS: Mapping[str, RGB] = MappingProxyType({
    "M_GumsTongue": (0.62, 0.26, 0.27),
    "M_Teeth": (0.93, 0.91, 0.85),
    "M_ScleraLeft": (0.93, 0.92, 0.90),
    "M_ScleraRight": (0.93, 0.92, 0.90),
    "M_IrisLeft": (0.30, 0.20, 0.12),
    "M_IrisRight": (0.30, 0.20, 0.12),
    "M_EyeLashes": (0.07, 0.05, 0.04),
    "M_MouthSocket": (0.45, 0.18, 0.18),  # the atlas rig of facexpr.avatars.texture
})  # fmt: skip

SKIN_MATERIALS: tuple[str, ...] = ("M_Face", "M_BackHead")
# ICT's Unreal-style overlay meshes (lacrimal film, eye blend and occlusion shadows) need
# translucent shaders; opaque they cover the eyes, so they are hidden by default.
# Its eyelashes are poly strips for an alpha-textured shader: opaque they read as thick liner.
HIDDEN_MATERIALS: tuple[str, ...] = (
    "M_LacrimalFluid",
    "M_EyeBlend",
    "M_EyeOcclusion",
    "M_EyeLashes",
)


@dataclass(frozen=True)
class Look:
    """How an avatar is shaded.

    Attributes:
        skin: RGB skin albedo in [0, 1] (materials in ``skin_materials`` and unknown ones).
        colors: material name -> RGB in [0, 1], overriding :data:`DEFAULT_COLORS`.
        shading: ``"lambert"`` (diffuse + ambient + soft specular) or ``"toon"`` (flat colour
            bands and a dark silhouette outline).
        toon_bands: number of diffuse bands in toon shading (>= 2).
        outline: toon outline strength in [0, 1] (0 = none).
        specular: specular strength in [0, 1] of the skin (eyes and teeth get more).
        lips: optional RGB multiplier of the skin colour on the lips (inside the outer lip
            contour of rigs with 68 landmarks), so lips follow the skin tone.
        mouth: optional RGB of the mouth socket (inside of the lips and cheeks, ICT topology).
        pupil: optional RGB of the pupils (centre of the iris meshes).
        hidden: material names not drawn.
        skin_materials: material names coloured by ``skin``.
    """

    skin: RGB = (0.87, 0.68, 0.57)
    colors: Mapping[str, RGB] = field(default_factory=dict)
    shading: Literal["lambert", "toon"] = "lambert"
    toon_bands: int = 3
    outline: float = 0.0
    specular: float = 0.12
    lips: RGB | None = (0.85, 0.6, 0.62)
    mouth: RGB | None = (0.45, 0.18, 0.18)
    pupil: RGB | None = (0.03, 0.03, 0.03)
    hidden: tuple[str, ...] = HIDDEN_MATERIALS
    skin_materials: tuple[str, ...] = SKIN_MATERIALS

    def __post_init__(self) -> None:
        def rgb(value: object, what: str) -> RGB:
            c = tuple(float(x) for x in np.asarray(value, np.float64).reshape(-1))
            if len(c) != 3 or not all(0.0 <= x <= 1.0 for x in c):
                raise ConfigError(f"Look.{what}: expected an RGB triple in [0, 1], got {value!r}")
            return c  # type: ignore[return-value]

        object.__setattr__(self, "skin", rgb(self.skin, "skin"))
        colors = {str(k): rgb(v, f"colors[{k!r}]") for k, v in dict(self.colors).items()}
        object.__setattr__(self, "colors", MappingProxyType(colors))
        for what in ("lips", "mouth", "pupil"):
            if getattr(self, what) is not None:
                object.__setattr__(self, what, rgb(getattr(self, what), what))
        if self.shading not in ("lambert", "toon"):
            raise ConfigError(f"Look.shading must be 'lambert' or 'toon', got {self.shading!r}")
        if int(self.toon_bands) != self.toon_bands or self.toon_bands < 2:
            raise ConfigError(f"Look.toon_bands must be an integer >= 2, got {self.toon_bands}")
        for what in ("outline", "specular"):
            if not 0.0 <= getattr(self, what) <= 1.0:
                raise ConfigError(f"Look.{what} must be in [0, 1], got {getattr(self, what)}")

    def key(self) -> tuple:
        """Returns a hashable tuple of all fields (for caches)."""
        return (self.skin, tuple(sorted(self.colors.items())), self.shading, self.toon_bands,
                self.outline, self.specular, self.lips, self.mouth, self.pupil, self.hidden,
                self.skin_materials)  # fmt: skip

    def color_of(self, material: str) -> RGB:
        """Returns the RGB base colour of a material name."""
        if material in self.colors:
            return self.colors[material]
        if material in self.skin_materials:
            return self.skin
        return DEFAULT_COLORS.get(material, self.skin)


@dataclass(frozen=True, eq=False)
class Avatar:
    """A named rig with an identity and a look.

    Attributes:
        name: registry name.
        rig: the geometry and its expression channels.
        identity: (K',) float32 identity coefficients (K' <= rig's K) or None for the rig's neutral.
        look: shading.
        texture: optional (H, W, 3) uint8 RGB albedo of the look's ``skin_materials``, mapped by
            the rig's UVs (u to the right, v up from the image's bottom row, as OBJ), e.g. a
            captured face (:mod:`facexpr.avatars.texture`); None for the flat skin colour.
    """

    name: str
    rig: Rig
    identity: np.ndarray | None = None
    look: Look = field(default_factory=Look)
    texture: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("Avatar: name must not be empty")
        if self.identity is not None:
            z = np.asarray(self.identity, np.float32).reshape(-1)
            if z.shape[0] > self.rig.n_identity:
                raise ConfigError(
                    f"Avatar '{self.name}': {z.shape[0]} identity coefficients given, the rig "
                    f"'{self.rig.name}' has {self.rig.n_identity} identity modes"
                )
            z.setflags(write=False)
            object.__setattr__(self, "identity", z)
        if self.texture is not None:
            tex = np.asarray(self.texture)
            if tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3:
                raise ConfigError(
                    f"Avatar '{self.name}': texture must be (H, W, 3) uint8 RGB, got "
                    f"{tex.shape} {tex.dtype}"
                )
            if not (4 <= tex.shape[0] <= 8192 and 4 <= tex.shape[1] <= 8192):
                raise ConfigError(
                    f"Avatar '{self.name}': texture sides must be in [4, 8192], got "
                    f"{tex.shape[1]}x{tex.shape[0]}"
                )
            if self.rig.uv is None:
                raise ConfigError(
                    f"Avatar '{self.name}': a texture needs UVs, and rig '{self.rig.name}' has none"
                )
            tex = np.array(tex, copy=True)
            tex.setflags(write=False)
            object.__setattr__(self, "texture", tex)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Returns the avatar's expression channel names (its rig's)."""
        return self.rig.channel_names

    @property
    def base(self) -> np.ndarray:
        """Returns the (V, 3) float32 neutral face of this identity (cached)."""
        b = self._cache.get("base")
        if b is None:
            b = np.asarray(self.rig.identity_shape(self.identity), np.float32)
            b.setflags(write=False)
            self._cache["base"] = b
        return b

    def evaluate(self, weights: np.ndarray, *, clamp: bool = False) -> np.ndarray:
        """Returns the (V, 3) float32 vertices of this avatar for (C,) channel weights."""
        return self.rig.evaluate(weights, base=self.base, clamp=clamp)

    def arkit_matrix(self) -> np.ndarray:
        """Returns the (C, 52) float32 matrix mapping ARKit weights to this avatar's channels.

        Channels are matched by name (``mouthSmile_L`` and ``blendShape1.mouthSmileLeft`` both
        drive ARKit ``mouthSmileLeft``); channels with no ARKit name get 0.
        """
        m = np.zeros((self.rig.n_channels, len(ARKIT_NAMES)), np.float32)
        for c, name in enumerate(self.rig.channel_names):
            j = arkit_index(name)
            if j is not None:
                m[c, j] = 1.0
        return m

    def from_arkit(self, arkit: np.ndarray) -> np.ndarray:
        """Returns (..., C) float32 channel weights for (..., 52) ARKit weights."""
        return np.asarray(arkit, np.float32) @ self.arkit_matrix().T

    def with_look(self, **changes: object) -> Avatar:
        """Returns a copy with fields of the look replaced (e.g. ``skin=(0.5, 0.35, 0.25)``)."""
        return replace(self, look=replace(self.look, **changes))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- stylisation
def _warp(points: np.ndarray, center: np.ndarray, scale: np.ndarray, r0: float, r1: float):
    """Returns (offset (N, 3), weight (N,)) scaling points about ``center`` with a smooth falloff.

    Weight 1 within r0 cm of the centre, smoothstep down to 0 at r1.
    """
    d = points - center
    r = np.linalg.norm(d, axis=1)
    t = np.clip((r1 - r) / (r1 - r0), 0.0, 1.0)
    w = t * t * (3.0 - 2.0 * t)
    return d * (scale - 1.0)[None, :] * w[:, None], w


def stylise(
    rig: Rig,
    *,
    eye_scale: float = 1.35,
    jaw_scale: float = 0.85,
    head_scale: float = 1.1,
    name: str = "ict_toon",
) -> Rig:
    """Returns a cartoon-proportioned copy of an ICT-topology rig: bigger eyes, smaller jaw.

    Space warps with smooth falloff scale the neutral and, by the same local factor, the
    expression deltas, so the channels still work: each eye region (eyeball, lids, lashes) about
    the eyeball centre, the lower face about a point behind the chin, and the cranium upward.

    Raises:
        ConfigError: the rig has no 68 landmarks or no ICT eyeballs (needs ICT topology).
    """
    from facexpr.avatars.ict import ICT_PARTS

    if rig.landmark_vertices is None or rig.n_vertices != ICT_PARTS["eyelashes"][1]:
        raise ConfigError(f"stylise: rig '{rig.name}' does not have the ICT FaceKit topology")
    p = rig.neutral.astype(np.float64)
    offset = np.zeros_like(p)
    factor = np.ones(len(p))
    for part in ("sclera_left", "sclera_right"):
        a, b = ICT_PARTS[part]
        c = p[a:b].mean(axis=0)
        o, w = _warp(p, c, np.full(3, eye_scale), 1.9, 4.2)
        offset += o
        factor += (eye_scale - 1.0) * w
    lm = p[rig.landmark_vertices]
    chin = lm[8]
    jaw_center = np.array([0.0, lm[33, 1], lm[33, 2] - 6.0])
    span = np.linalg.norm(chin - jaw_center)
    below = np.clip((lm[33, 1] - p[:, 1]) / max(lm[33, 1] - chin[1], 1e-6), 0.0, 1.0)
    wj = below * below * (3.0 - 2.0 * below)
    wj *= np.clip((span * 1.6 - np.linalg.norm(p - jaw_center, axis=1)) / span, 0.0, 1.0)
    offset += (p - jaw_center) * (np.array([jaw_scale, jaw_scale, 1.0]) - 1.0) * wj[:, None]
    factor += (jaw_scale - 1.0) * wj
    top = p[:, 1].max()
    brow = lm[19, 1]
    wh = np.clip((p[:, 1] - brow) / (top - brow), 0.0, 1.0)
    offset[:, 1] += (head_scale - 1.0) * (p[:, 1] - brow) * wh
    neutral = (p + offset).astype(np.float32)
    deltas = (rig.deltas.astype(np.float32) * factor[None, :, None].astype(np.float32)).astype(
        rig.deltas.dtype
    )
    return replace(rig, neutral=neutral, deltas=deltas, identity_basis=None, name=name)


# --------------------------------------------------------------------------- registry
_lock = threading.Lock()
_factories: dict[str, Callable[[], Avatar]] = {}
_built: dict[str, Avatar] = {}
_N_SAMPLED = 8


def register_avatar(avatar: Avatar | Callable[[], Avatar], name: str | None = None) -> None:
    """Registers an avatar (or a zero-argument factory building it lazily) under its name.

    Args:
        avatar: the avatar, or a callable returning it (built on first :func:`get_avatar`).
        name: registry name; defaults to ``avatar.name`` (required for factories).

    Raises:
        ConfigError: no name for a factory, or the name is taken.
    """
    if name is None:
        if not isinstance(avatar, Avatar):
            raise ConfigError("register_avatar: give a name when registering a factory")
        name = avatar.name
    with _lock:
        if name in _factories:
            raise ConfigError(f"register_avatar: an avatar named '{name}' is already registered")
        if isinstance(avatar, Avatar):
            _built[name] = avatar
            _factories[name] = lambda a=avatar: a
        else:
            _factories[name] = avatar


def unregister_avatar(name: str) -> None:
    """Removes a registered avatar (built-ins included).

    Raises:
        ConfigError: unknown name.
    """
    with _lock:
        if name not in _factories:
            raise ConfigError(f"unregister_avatar: no avatar named '{name}'")
        _factories.pop(name)
        _built.pop(name, None)


def avatar_from_gltf(path: str | Path, name: str | None = None, look: Look | None = None) -> Avatar:
    """Returns the avatar of a glTF/GLB file with morph targets, without registering it.

    Args:
        path: the .glb or .gltf file (read as untrusted, see :func:`facexpr.avatars.load_gltf`).
        name: avatar name (default ``file:<real path>``).
        look: shading (default: no lip tint, as the rig's topology is unknown; the materials
            with a base-colour texture are the skin, shaded with that texture).

    Raises:
        InputError: the file cannot be read as a rig.
    """
    from facexpr.avatars.gltf import load_gltf, load_gltf_texture

    path = Path(path)
    rig = load_gltf(path)
    tex = load_gltf_texture(path) if rig.uv is not None else None
    if tex is None:
        return Avatar(name or f"file:{path.resolve()}", rig, look=look or Look(lips=None))
    # The textured materials take the texture in place of the skin colour (a captured face).
    look = look or Look(lips=None, skin_materials=tex.materials)
    return Avatar(name or f"file:{path.resolve()}", rig, look=look, texture=tex.image)


def register_gltf_avatar(name: str, path: str | Path, look: Look | None = None) -> None:
    """Registers a glTF/GLB file with morph targets as avatar ``name`` (loaded on first use)."""
    path = Path(path)
    register_avatar(lambda: avatar_from_gltf(path, name, look), name)


def list_avatars(pattern: str = "*") -> list[str]:
    """Returns the sorted registered avatar names matching a glob pattern."""
    import fnmatch

    with _lock:
        return sorted(n for n in _factories if fnmatch.fnmatch(n, pattern))


def get_avatar(name: str, *, identity: np.ndarray | None = None) -> Avatar:
    """Returns the registered avatar ``name``, optionally with other identity coefficients.

    Args:
        name: a name of :func:`list_avatars`.
        identity: (K',) identity coefficients replacing the avatar's (K' <= the rig's modes; the
            shipped ICT rig has 50).

    Raises:
        ConfigError: unknown name (the message lists close matches) or bad identity.
    """
    with _lock:
        factory = _factories.get(name)
        avatar = _built.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, list(_factories), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown avatar '{name}'{hint} (list_avatars() gives all {len(_factories)})"
        )
    if avatar is None:
        avatar = factory()
        with _lock:
            _built.setdefault(name, avatar)
            avatar = _built[name]
    if identity is not None:
        avatar = replace(avatar, identity=np.asarray(identity, np.float32))
    return avatar


def _ict_rig() -> Rig:
    from facexpr.avatars.ict import load_ict

    return load_ict()


def _sampled(k: int) -> Callable[[], Avatar]:
    def build() -> Avatar:
        rig = _ict_rig()
        z = np.random.default_rng(k).standard_normal(rig.n_identity).astype(np.float32)
        return Avatar(f"ict_{k:03d}", rig, identity=z)

    return build


def _toon() -> Avatar:
    look = Look(
        skin=(0.98, 0.80, 0.66),
        colors={"M_IrisLeft": (0.20, 0.45, 0.75), "M_IrisRight": (0.20, 0.45, 0.75)},
        shading="toon",
        toon_bands=3,
        outline=0.8,
        specular=0.0,
        lips=(0.9, 0.55, 0.55),
    )
    return Avatar("ict_toon", stylise(_ict_rig()), look=look)


def _register_builtins() -> None:
    register_avatar(lambda: Avatar("ict", _ict_rig()), "ict")
    for k in range(_N_SAMPLED):
        register_avatar(_sampled(k), f"ict_{k:03d}")
    register_avatar(_toon, "ict_toon")


_register_builtins()

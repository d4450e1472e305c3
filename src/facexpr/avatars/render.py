"""Headless OpenGL renderer of rigs and avatars (moderngl on EGL).

The blend is one float32 matmul ((C,) @ (C, V*3)), smooth vertex normals are summed per vertex
with ``np.bincount``, the vertices are written into a persistent buffer and drawn with per-material
colours (Lambert + ambient + soft Blinn-Phong specular, or toon bands with an outline) into a
reused multisampled framebuffer, resolved and read back. Without a GPU, EGL runs on Mesa's
llvmpipe; with one, EGL picks the GPU. Results are deterministic: the same inputs give the same
bytes on the same machine.

Frames: the model is in its own units (cm for ICT) with +y up, the face toward +z and +x the
subject's left. The camera looks along -z at the face from ``distance`` away. A head pose rotates
the model about a pivot in the neck by R = Rx(pitch) @ Ry(yaw) @ Rz(roll) (as
:class:`facexpr.core.types.HeadPose`: + pitch looks down, + yaw turns to the subject's left, i.e.
toward the image's right; + roll tilts the top of the head toward the image's left), then
translates it (cm, camera frame, +y up).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from facexpr.avatars.avatar import Avatar, Look
from facexpr.avatars.rig import Rig
from facexpr.core.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

__all__ = [
    "Light",
    "OpenGLUnavailableError",
    "RenderOptions",
    "RenderResult",
    "Renderer",
    "gl_context",
    "make_background",
    "pose_matrix",
]

_ICT_VERTICES = 26719
# Angular radii on the eyeball (from its centroid, about its front) of the iris and pupil.
_IRIS_DEG = 34.0
_PUPIL_DEG = 13.0
_ICT_MOUTH_SOCKET = (11248, 13294)
BackgroundKind = Literal["gradient", "noise", "shapes"]


@dataclass
class RenderOptions:
    """Options of a :class:`Renderer`.

    Attributes:
        width: image width, px.
        height: image height, px.
        fov_deg: vertical field of view, degrees.
        distance: camera distance from the face centre in model units (cm); None frames the face
            so that the 68 landmarks span about ``1 / framing`` of the image height.
        framing: with ``distance=None``, frame height over landmark height (chin to brows).
        samples: multisample anti-aliasing samples (0 = none; 4 smooths edges and the mask, at
            about twice the time on a CPU).
        background: default background: an RGB triple in [0, 1], or a procedural kind.
        backend: moderngl context backend (``"egl"`` is headless).
    """

    width: int = 256
    height: int = 256
    fov_deg: float = 20.0
    distance: float | None = None
    framing: float = 1.8
    samples: int = 0
    background: tuple[float, float, float] | BackgroundKind = (0.5, 0.5, 0.5)
    backend: str = "egl"

    def __post_init__(self) -> None:
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ConfigError(
                f"RenderOptions: width and height must be in [8, 8192], got "
                f"{self.width}x{self.height}"
            )
        if not 1.0 <= self.fov_deg <= 120.0:
            raise ConfigError(f"RenderOptions.fov_deg must be in [1, 120], got {self.fov_deg}")
        if self.distance is not None and self.distance <= 0:
            raise ConfigError(f"RenderOptions.distance must be > 0, got {self.distance}")
        if self.framing < 1.0:
            raise ConfigError(f"RenderOptions.framing must be >= 1, got {self.framing}")
        if self.samples not in (0, 2, 4, 8):
            raise ConfigError(f"RenderOptions.samples must be 0, 2, 4 or 8, got {self.samples}")
        _check_background(self.background, "RenderOptions.background")


@dataclass(frozen=True)
class Light:
    """A directional light plus ambient light.

    Attributes:
        direction: (3,) direction toward the light in the camera frame (x right, y up, z toward
            the camera); normalised.
        color: RGB in [0, 2].
        intensity: diffuse intensity.
        ambient: ambient intensity.
        specular: scale of the materials' specular highlights.
    """

    direction: tuple[float, float, float] = (0.3, 0.4, 1.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 0.7
    ambient: float = 0.3
    specular: float = 1.0

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, np.float64).reshape(-1)
        if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) < 1e-9:
            raise ConfigError(f"Light.direction must be a non-zero 3-vector, got {self.direction}")
        object.__setattr__(self, "direction", tuple(float(x) for x in d / np.linalg.norm(d)))
        c = np.asarray(self.color, np.float64).reshape(-1)
        if c.shape != (3,) or (c < 0).any() or (c > 2).any():
            raise ConfigError(f"Light.color must be RGB in [0, 2], got {self.color}")
        object.__setattr__(self, "color", tuple(float(x) for x in c))
        for what in ("intensity", "ambient", "specular"):
            if not 0.0 <= getattr(self, what) <= 4.0:
                raise ConfigError(f"Light.{what} must be in [0, 4], got {getattr(self, what)}")

    @classmethod
    def of(cls, light: Light | Mapping[str, Any] | None) -> Light:
        """Returns a Light from a Light, a dict of its fields, or None (the default light)."""
        if light is None:
            return cls()
        if isinstance(light, Light):
            return light
        if isinstance(light, Mapping):
            unknown = set(light) - {"direction", "color", "intensity", "ambient", "specular"}
            if unknown:
                raise ConfigError(f"light: unknown keys {sorted(unknown)}")
            return cls(**light)
        raise ConfigError(f"light must be a Light, a dict or None, got {type(light).__name__}")


@dataclass(frozen=True, slots=True)
class RenderResult:
    """One rendered frame.

    Attributes:
        image: (H, W, 3) uint8 RGB, the head over the background.
        alpha: (H, W) uint8 coverage of the head (255 inside, fractional on anti-aliased edges).
        landmarks68: (68, 2) float32 px (x right, y down, pixel centres at .5) of the rig's 68
            landmark vertices, or (0, 2) when the rig has none.
        landmarks_visible: (68,) bool, True where the landmark vertex is not hidden by the mesh.
        vertices: (V, 3) float32 posed vertices in the camera frame (cm).
        mvp: (4, 4) float64 matrix from the camera frame to clip space.
        width: image width, px.
        height: image height, px.
    """

    image: np.ndarray
    alpha: np.ndarray
    landmarks68: np.ndarray
    landmarks_visible: np.ndarray
    vertices: np.ndarray
    mvp: np.ndarray
    width: int
    height: int

    def project(self, points: np.ndarray | Sequence[int]) -> np.ndarray:
        """Returns (N, 2) float32 pixel positions of vertex ids (N,) or camera-frame points (N, 3).

        Raises:
            ConfigError: neither an integer id array nor (N, 3) points.
        """
        p = np.asarray(points)
        if p.ndim == 1 and np.issubdtype(p.dtype, np.integer):
            p = self.vertices[p]
        elif p.ndim != 2 or p.shape[1] != 3:
            raise ConfigError(f"project: give (N,) vertex ids or (N, 3) points, got {p.shape}")
        return _to_pixels(p, self.mvp, self.width, self.height)[:, :2].astype(np.float32)


def _to_pixels(p: np.ndarray, mvp: np.ndarray, w: int, h: int) -> np.ndarray:
    """Returns (N, 3) x px, y px (down), NDC depth of (N, 3) camera-frame points."""
    hom = np.concatenate([p.astype(np.float64), np.ones((len(p), 1))], axis=1) @ mvp.T
    ndc = hom[:, :3] / hom[:, 3:4]
    return np.stack(
        [(ndc[:, 0] + 1) * 0.5 * w, (1 - ndc[:, 1]) * 0.5 * h, ndc[:, 2] * 0.5 + 0.5], axis=1
    )


def pose_matrix(pose: Any) -> np.ndarray:
    """Returns the (4, 4) float64 rigid transform of a head pose.

    Args:
        pose: None (identity), (3,) pitch, yaw, roll in degrees, (6,) the same plus translation
            (cm, camera frame, +y up), or an object with ``pitch``, ``yaw``, ``roll`` attributes
            (:class:`facexpr.core.types.HeadPose`; its translation, in a detector's camera, is not
            used).

    Raises:
        ConfigError: any other shape.
    """
    m = np.eye(4)
    if pose is None:
        return m
    if all(hasattr(pose, a) for a in ("pitch", "yaw", "roll")):
        vals = np.array([pose.pitch, pose.yaw, pose.roll], np.float64)
    else:
        vals = np.asarray(pose, np.float64).reshape(-1)
    if vals.shape not in ((3,), (6,)) or not np.isfinite(vals).all():
        raise ConfigError(
            f"pose must be (pitch, yaw, roll) degrees or 6 values with a translation in cm, "
            f"got {np.shape(pose)}"
        )
    a, b, c = np.radians(vals[:3])
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    # Rx(+a) turns the nose (+z) toward -y: + pitch looks down.
    m[:3, :3] = rx @ ry @ rz
    if vals.shape == (6,):
        m[:3, 3] = vals[3:]
    return m


def _check_background(bg: object, what: str) -> None:
    if isinstance(bg, str):
        if bg not in ("gradient", "noise", "shapes"):
            raise ConfigError(f"{what}: unknown kind {bg!r} (use 'gradient', 'noise', 'shapes')")
        return
    if isinstance(bg, np.ndarray) and bg.ndim == 3:
        if bg.shape[2] != 3 or bg.dtype != np.uint8:
            raise ConfigError(
                f"{what}: images must be (H, W, 3) uint8 RGB, got {bg.shape} {bg.dtype}"
            )
        return
    c = np.asarray(bg, np.float64).reshape(-1)
    if c.shape != (3,) or (c < 0).any() or (c > 1).any():
        raise ConfigError(
            f"{what}: expected an RGB triple in [0, 1], an (H, W, 3) uint8 image or "
            f"'gradient' / 'noise' / 'shapes', got {bg!r}"
        )


def make_background(
    kind: BackgroundKind | tuple[float, float, float] | np.ndarray,
    width: int,
    height: int,
    seed: int = 0,
) -> np.ndarray:
    """Returns an (H, W, 3) uint8 background: a solid colour, an image resized, or procedural.

    Procedural kinds, deterministic in ``seed``: ``"gradient"`` (two random colours along a random
    direction), ``"noise"`` (smooth value noise over a random colour) and ``"shapes"`` (random
    rectangles and ellipses on a random colour).

    Raises:
        ConfigError: unknown kind or bad colour/image.
    """
    _check_background(kind, "background")
    if isinstance(kind, np.ndarray) and kind.ndim == 3:
        if kind.shape[:2] == (height, width):
            return kind
        import cv2

        return cv2.resize(kind, (width, height), interpolation=cv2.INTER_AREA)
    if not isinstance(kind, str):
        c = np.round(np.asarray(kind, np.float64).reshape(3) * 255).astype(np.uint8)
        return np.broadcast_to(c, (height, width, 3)).copy()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        c0, c1 = rng.uniform(0, 1, (2, 3)).astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        t = (xx / width - 0.5) * np.cos(ang) + (yy / height - 0.5) * np.sin(ang) + 0.5
        t = np.clip(t, 0, 1)[..., None]
        img = c0 * (1 - t) + c1 * t
    elif kind == "noise":
        import cv2

        base = rng.uniform(0.15, 0.85, 3).astype(np.float32)
        img = np.zeros((height, width, 3), np.float32)
        for cells, amp in ((4, 0.25), (8, 0.12), (16, 0.06)):
            grid = rng.uniform(-amp, amp, (cells + 1, cells + 1, 3)).astype(np.float32)
            img += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + base, 0, 1)
    else:
        import cv2

        img8 = np.empty((height, width, 3), np.uint8)
        img8[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        for _ in range(int(rng.integers(4, 10))):
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            x0, x1 = sorted(rng.integers(0, width, 2))
            y0, y1 = sorted(rng.integers(0, height, 2))
            if rng.random() < 0.5:
                cv2.rectangle(img8, (int(x0), int(y0)), (int(x1), int(y1)), color, -1)
            else:
                center = (int((x0 + x1) // 2), int((y0 + y1) // 2))
                axes = (max(1, int((x1 - x0) // 2)), max(1, int((y1 - y0) // 2)))
                ang = float(rng.uniform(0, 180))
                cv2.ellipse(img8, center, axes, ang, 0, 360, color, -1)
        return img8
    return np.round(img * 255).astype(np.uint8)


_VERTEX_SHADER = """
#version 330
uniform mat4 model;
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec4 in_material;  // rgb base colour, specular strength
in vec2 in_skin;      // weight of the skin colour over the base colour, lip weight
in vec2 in_uv;        // texture coordinates (textured avatars only)
out vec3 v_normal;
out vec3 v_pos;
out vec4 v_material;
out vec2 v_skin;
out vec2 v_uv;
void main() {
    vec4 p = model * vec4(in_pos, 1.0);
    v_pos = p.xyz;
    v_normal = mat3(model) * in_normal;
    v_material = in_material;
    v_skin = in_skin;
    v_uv = in_uv;
    gl_Position = mvp * p;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_dir;
uniform vec3 light_color;
uniform float intensity;
uniform float ambient;
uniform float specular;
uniform int toon;
uniform float bands;
uniform float outline;
uniform vec3 skin;
uniform vec3 lip_tint;
uniform int textured;
uniform sampler2D albedo;
in vec3 v_normal;
in vec3 v_pos;
in vec4 v_material;
in vec2 v_skin;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;  // two-sided: thin lashes and inner mouth
    // A texture replaces the skin colour (and the lip tint: the texture has lips).
    vec3 skin_c = textured == 1 ? texture(albedo, v_uv).rgb
                                : skin * mix(vec3(1.0), lip_tint, v_skin.y);
    vec3 base = mix(v_material.rgb, skin_c, v_skin.x);
    float diff = max(dot(n, light_dir), 0.0);
    vec3 color;
    if (toon == 1) {
        // Flat bands from 60% to 100% of the full light: cartoon shadows stay light.
        float q = floor(diff * bands + 0.5) / bands;
        color = base * mix(0.6, 1.0, q) * (ambient + intensity) * light_color;
        float rim = 1.0 - max(dot(n, view), 0.0);
        color *= 1.0 - outline * smoothstep(0.7, 0.82, rim);
    } else {
        vec3 h = normalize(light_dir + view);
        float s = pow(max(dot(n, h), 0.0), 40.0) * v_material.a * specular;
        color = base * (ambient + intensity * diff) * light_color + s * intensity * light_color;
    }
    f_color = vec4(clamp(color, 0.0, 1.0), 1.0);
}
"""


class OpenGLUnavailableError(MissingDependencyError):
    """moderngl is installed but no OpenGL context can be created (no EGL driver)."""

    def __init__(self, backend: str, reason: str) -> None:
        self.reason = reason
        ImportError.__init__(
            self,
            f"rendering avatars needs an OpenGL {backend.upper()} driver, and creating a headless "
            f"context failed ({reason}). Install one: on Debian/Ubuntu without a GPU  apt-get "
            "install libegl1 libegl-mesa0 libgl1-mesa-dri  (Mesa llvmpipe); with an NVIDIA GPU "
            "the driver's libEGL_nvidia plus the GLVND loaders  apt-get install libegl1 libgl1",
        )


_triton_checked = False


def _global_llvm_loaded() -> bool:
    """True if an LLVM (the C API's ``LLVMContextCreate``) is in the process's global scope."""
    import ctypes

    try:
        ctypes.CDLL(None).LLVMContextCreate  # noqa: B018  (a lookup, not a call)
    except AttributeError:
        return False
    return True


def _load_triton_before_gl() -> None:
    """Loads triton's ``libtriton`` if triton is installed, before any OpenGL context exists.

    Why (issue 16): Mesa loads its driver (``swrast_dri.so`` for llvmpipe and softpipe, the
    same file for its GPU drivers) with ``dlopen(RTLD_GLOBAL)``, so the LLVM it links (Debian 12:
    libLLVM-15) joins the process's global symbol scope and stays there after the context is
    released. ``libtriton`` (imported by ``torch.optim``, ``torch.compile``) carries its own,
    newer LLVM with default visibility; loaded after Mesa's, the dynamic linker binds its
    references to Mesa's LLVM, and its static constructors (``PassBuilder.cpp``'s debug
    counters) corrupt the heap: a segfault in ``free``. Loaded first, with the flags Python's
    import uses (``RTLD_NOW | RTLD_LOCAL``), it binds to itself, and a later ``import triton``
    reuses it. If an LLVM is already global (a context made outside facexpr), it is loaded
    with ``RTLD_DEEPBIND`` so that it still prefers its own symbols. No Mesa setting changes
    the driver's dlopen flags, and every Mesa driver links LLVM, so picking one does not help.
    Costs about 0.03 s and 70 MB of resident memory (67 MB of it clean, shared pages of
    ``libtriton.so``) when triton is installed, nothing otherwise; a process that runs torch's
    optimisers loads triton anyway.
    """
    global _triton_checked
    if _triton_checked:
        return
    _triton_checked = True
    if not sys.platform.startswith("linux") or "triton._C.libtriton" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("triton")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "_C")
    paths = [os.path.join(folder, f"libtriton{s}") for s in importlib.machinery.EXTENSION_SUFFIXES]
    lib = next((p for p in paths if os.path.isfile(p)), None)
    if lib is None:
        log.warning("triton is installed but %s has no libtriton; not preloaded", folder)
        return
    import ctypes

    flags = os.RTLD_NOW | os.RTLD_LOCAL
    if _global_llvm_loaded():
        flags |= getattr(os, "RTLD_DEEPBIND", 0)  # glibc only
    try:
        ctypes.CDLL(lib, mode=flags)
    except OSError as e:
        log.warning("could not preload %s before OpenGL (%s); importing triton may crash", lib, e)
        return
    log.debug("preloaded %s (flags %#x) before creating an OpenGL context", lib, flags)


def gl_context(backend: str = "egl") -> Any:
    """Returns a new standalone moderngl context, safe to use beside torch and triton.

    Every OpenGL context of facexpr is made here: it loads triton first when triton is
    installed (see :func:`_load_triton_before_gl`), since a Mesa driver in the process crashes a
    later ``import triton``.

    Args:
        backend: moderngl context backend (``"egl"`` is headless).

    Raises:
        MissingDependencyError: moderngl is missing.
        OpenGLUnavailableError: no context can be created (no EGL driver).
    """
    try:
        import moderngl
    except ImportError as e:
        raise MissingDependencyError("moderngl", "render", "rendering avatars") from e
    _load_triton_before_gl()
    try:
        return moderngl.create_standalone_context(backend=backend)
    except Exception as e:
        raise OpenGLUnavailableError(backend, str(e)) from e


@dataclass
class _MeshState:
    """GPU buffers of one rig topology and look."""

    vbo_pos: Any
    vbo_normal: Any
    vbo_material: Any
    ibo: Any
    vao: Any
    corners: tuple[np.ndarray, ...]
    flat: np.ndarray
    pivot: np.ndarray
    target: np.ndarray
    distance: float
    extra: dict = field(default_factory=dict)


def _polygon_distance(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Returns (N,) signed distances of 2D points to a closed polygon (M, 2), > 0 inside."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    ab = b - a  # (M, 2)
    ap = points[:, None, :] - a[None]  # (N, M, 2)
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(axis=1)
    # Even-odd rule: count edges crossed by a ray toward +x.
    y = points[:, 1:2]
    crosses = (a[None, :, 1] > y) != (b[None, :, 1] > y)
    x_at = a[None, :, 0] + (y - a[None, :, 1]) * ab[None, :, 0] / np.where(
        ab[None, :, 1] == 0, 1e-12, ab[None, :, 1]
    )
    inside = (crosses & (points[:, 0:1] < x_at)).sum(axis=1) % 2 == 1
    return np.where(inside, dist, -dist)


def _vertex_normals(v: np.ndarray, corners: tuple[np.ndarray, ...], flat: np.ndarray) -> np.ndarray:
    """Returns (V, 3) float32 area-weighted vertex normals (not normalised).

    Args:
        v: (V, 3) vertices.
        corners: the (F,) vertex ids of the triangles' first, second and third corners.
        flat: (3F,) the same ids concatenated corner by corner.
    """
    # Component-major arrays: the gathers and the cross product run on contiguous rows.
    vt = np.ascontiguousarray(v.T)
    p0 = vt[:, corners[0]]
    a = vt[:, corners[1]] - p0
    b = vt[:, corners[2]] - p0
    fn = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    out = np.empty((len(v), 3), np.float32)
    for k in range(3):
        out[:, k] = np.bincount(flat, weights=np.tile(fn[k], 3), minlength=len(v))
    return out


class Renderer:
    """Renders rigs and avatars to images with an alpha mask and projected landmarks.

    One OpenGL context and framebuffer per renderer; buffers per rig topology are made on first
    use and reused. Not thread-safe: use one renderer per thread or process.

    Raises:
        MissingDependencyError: moderngl is missing (:class:`OpenGLUnavailableError`, a
            subclass: no EGL driver).
    """

    def __init__(self, options: RenderOptions | None = None) -> None:
        self.options = options or RenderOptions()
        o = self.options
        self._ctx = gl_context(o.backend)
        ctx = self._ctx
        self._prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        size = (o.width, o.height)
        # Without MSAA the depth of the drawn frame is read back for landmark visibility; with
        # it, a second single-sample depth-only pass gives it.
        self._depth_fbo = ctx.framebuffer(depth_attachment=ctx.depth_texture(size))
        self._fbo_out = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer(size, 4)],
            depth_attachment=ctx.depth_renderbuffer(size) if o.samples else ctx.depth_texture(size),
        )
        if o.samples:
            self._fbo = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, 4, samples=o.samples)],
                depth_attachment=ctx.depth_renderbuffer(size, samples=o.samples),
            )
        else:
            self._fbo = self._fbo_out
        self._meshes: dict[tuple, _MeshState] = {}
        self._backgrounds: dict[tuple, np.ndarray] = {}
        self._textures: dict[int, tuple[np.ndarray, Any]] = {}

    def close(self) -> None:
        """Releases the OpenGL context and buffers."""
        if self._ctx is not None:
            self._ctx.release()
            self._ctx = None
            self._meshes.clear()
            self._textures.clear()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ mesh setup
    def _mesh(self, rig: Rig, look: Look, textured: bool = False) -> _MeshState:
        # Framing and lip regions come from the rig's mean face, so all identities of a rig are
        # framed alike; the state keeps the rig alive so that its id stays unique.
        key = (id(rig), look.key(), textured)
        base = rig.neutral
        st = self._meshes.get(key)
        if st is not None:
            return st
        if len(self._meshes) >= 16:
            old = self._meshes.pop(next(iter(self._meshes)))
            for b in (old.vao, old.vbo_pos, old.vbo_normal, old.vbo_material, old.ibo):
                b.release()
            if "vbo_uv" in old.extra:
                old.extra["vbo_uv"].release()
        ctx = self._ctx
        faces = rig.faces
        material = np.zeros((rig.n_vertices, 4), np.float32)
        material[:, 3] = look.specular
        skin_w = np.zeros((rig.n_vertices, 2), np.float32)
        skin_w[:, 0] = 1.0
        keep = np.ones(len(faces), bool)
        if rig.face_material is not None:
            for m, mname in enumerate(rig.material_names):
                sel = rig.face_material == m
                if mname in look.hidden:
                    keep &= ~sel
                    continue
                verts = np.unique(faces[sel])
                if mname in look.skin_materials and mname not in look.colors:
                    continue
                color = look.color_of(mname)
                material[verts, :3] = color
                skin_w[verts, 0] = 0.0
                shiny = 0.6 if mname.startswith(("M_Sclera", "M_Iris", "M_Teeth")) else 0.15
                material[verts, 3] = shiny * (1.0 if look.specular > 0 else 0.0)
        keep &= self._eyes(rig, base, material, look)
        if look.mouth is not None and rig.n_vertices == _ICT_VERTICES:
            a, b = _ICT_MOUTH_SOCKET
            material[a:b, :3] = look.mouth
            skin_w[a:b, 0] = 0.0
            material[a:b, 3] = 0.05
        if look.lips is not None and rig.landmark_vertices is not None:
            self._tint_lips(rig, base, skin_w)
        # Normals are summed over the rig's own triangles (smooth across UV seams); a textured
        # mesh draws a copy of the vertices split at the seams (``src`` maps them back).
        corners = tuple(np.ascontiguousarray(faces[keep][:, k], dtype=np.intp) for k in range(3))
        src = None
        draw_faces = faces
        if textured:
            split, src = rig.split_uv_seams()
            draw_faces = split.faces
            material, skin_w = material[src], skin_w[src]
        draw_faces = np.ascontiguousarray(draw_faces[keep], dtype=np.int32)
        n_draw = rig.n_vertices if src is None else len(src)
        vbo_pos = ctx.buffer(reserve=n_draw * 12, dynamic=True)
        vbo_normal = ctx.buffer(reserve=n_draw * 12, dynamic=True)
        vbo_material = ctx.buffer(np.concatenate([material, skin_w], axis=1).tobytes())
        ibo = ctx.buffer(draw_faces.tobytes())
        content = [(vbo_pos, "3f", "in_pos"), (vbo_normal, "3f", "in_normal"),
                   (vbo_material, "4f 2f", "in_material", "in_skin")]  # fmt: skip
        vbo_uv = None
        if textured:
            vbo_uv = ctx.buffer(np.ascontiguousarray(split.uv, np.float32).tobytes())
            content.append((vbo_uv, "2f", "in_uv"))
        vao = ctx.vertex_array(self._prog, content, index_buffer=ibo, index_element_size=4)
        if rig.landmark_vertices is not None and len(rig.landmark_vertices) >= 68:
            lm = base[rig.landmark_vertices[:68]].astype(np.float64)
            target = lm.mean(axis=0)
            height = lm[:, 1].max() - lm[:, 1].min()
            # Neck pivot: under the chin, halfway through the head.
            zmid = (float(base[:, 2].min()) + float(base[:, 2].max())) / 2
            pivot = np.array([target[0], lm[8, 1], zmid])
        else:
            lo, hi = base.min(axis=0).astype(np.float64), base.max(axis=0).astype(np.float64)
            target = (lo + hi) / 2
            height = (hi[1] - lo[1]) / self.options.framing * 1.1
            pivot = target.copy()
        o = self.options
        distance = o.distance or (height * o.framing / 2) / math.tan(math.radians(o.fov_deg) / 2)
        st = _MeshState(
            vbo_pos, vbo_normal, vbo_material, ibo, vao, corners, np.concatenate(corners),
            pivot, target, float(distance),
        )  # fmt: skip
        st.extra["rig"] = rig
        st.extra["src"] = src
        if vbo_uv is not None:
            st.extra["vbo_uv"] = vbo_uv
        self._meshes[key] = st
        return st

    @staticmethod
    def _eyes(rig: Rig, base: np.ndarray, material: np.ndarray, look: Look) -> np.ndarray:
        """Returns (F,) bool faces to keep: opens the sclera over the iris; colours iris, pupil.

        ICT's eyeball is two shells: an outer 'sclera' (its cornea is meant to be translucent)
        and an inner 'iris' sphere textured with the iris. Without textures, the outer shell is
        opened within the iris's angular radius of the eye axis (from the eyeball's centroid to its
        front), and the inner one is coloured: pupil, iris, white beyond.
        """
        keep = np.ones(len(rig.faces), bool)
        if rig.face_material is None:
            return keep
        names = list(rig.material_names)
        for side in ("Left", "Right"):
            if f"M_Sclera{side}" not in names or f"M_Iris{side}" not in names:
                continue
            sclera = rig.face_material == names.index(f"M_Sclera{side}")
            iris_mat = names.index(f"M_Iris{side}")
            inner_v = np.unique(rig.faces[rig.face_material == iris_mat])
            sclera_v = np.unique(rig.faces[sclera])
            c = base[sclera_v].mean(axis=0).astype(np.float64)
            # The front of the eyeball (the model looks toward +z).
            front = base[sclera_v[np.argmax(base[sclera_v, 2])]] - c
            axis = front / np.linalg.norm(front)

            def angle(p: np.ndarray, c: np.ndarray = c, axis: np.ndarray = axis) -> np.ndarray:
                d = p - c
                cos = d @ axis / np.maximum(np.linalg.norm(d, axis=-1), 1e-9)
                return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

            if look.pupil is not None:
                # Seen through the pupil: the back of the outer shell.
                material[sclera_v[angle(base[sclera_v]) > 120.0], :3] = look.pupil
            centroid = base[rig.faces[sclera]].mean(axis=1)
            keep[np.flatnonzero(sclera)[angle(centroid) < _IRIS_DEG]] = False
            a = angle(base[inner_v])
            iris_rgb = look.color_of(f"M_Iris{side}")
            material[inner_v, :3] = look.color_of(f"M_Sclera{side}")
            material[inner_v[a < _IRIS_DEG + 3.0], :3] = iris_rgb
            if look.pupil is not None:
                material[inner_v[a < _PUPIL_DEG], :3] = look.pupil
        return keep

    @staticmethod
    def _tint_lips(rig: Rig, base: np.ndarray, skin_w: np.ndarray) -> None:
        """Colours skin vertices inside the outer lip contour (landmarks 48-59), softly."""
        lm = base[rig.landmark_vertices[:68]]
        outer = lm[48:60, :2].astype(np.float32)
        skin = np.flatnonzero(skin_w[:, 0] > 0)
        p = base[skin]
        # Only the front surface: within the lip depth range (excludes the mouth socket).
        zmin = lm[48:68, 2].min() - 0.6
        front = p[:, 2] >= zmin
        scale = 1.0 / max(float(np.ptp(outer[:, 0])), 1e-6)
        d = _polygon_distance(p[front, :2].astype(np.float64), outer.astype(np.float64))
        w = np.clip(d * scale * 12.0 + 0.5, 0.0, 1.0)
        skin_w[skin[front], 1] = w

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        avatar: Avatar | Rig,
        weights: np.ndarray | None = None,
        *,
        pose: Any = None,
        light: Light | Mapping[str, Any] | None = None,
        background: tuple[float, float, float] | BackgroundKind | np.ndarray | None = None,
        skin: tuple[float, float, float] | None = None,
        seed: int = 0,
    ) -> RenderResult:
        """Returns the avatar (or bare rig) rendered with expression weights, pose and light.

        Args:
            avatar: an :class:`Avatar` (its identity and look are used) or a :class:`Rig`
                (default look).
            weights: (C,) channel weights of the avatar's rig, or None for neutral.
            pose: head pose, see :func:`pose_matrix`.
            light: a :class:`Light`, a dict of its fields, or None for the default.
            background: RGB in [0, 1], an (H, W, 3) uint8 image (resized if needed), a procedural
                kind of :func:`make_background`, or None for ``options.background``.
            skin: RGB skin albedo in [0, 1] overriding the look's.
            seed: seed of procedural backgrounds.

        Raises:
            ConfigError: bad shapes or options.
        """
        if self._ctx is None:
            raise ConfigError("Renderer: render() after close()")
        # Another context made in this thread since (texture capture makes its own) would be
        # the current one: draw in ours, and give the other back afterwards.
        with self._ctx:
            return self._render(avatar, weights, pose, light, background, skin, seed)

    def _render(
        self,
        avatar: Avatar | Rig,
        weights: np.ndarray | None,
        pose: Any,
        light: Light | Mapping[str, Any] | None,
        background: tuple[float, float, float] | BackgroundKind | np.ndarray | None,
        skin: tuple[float, float, float] | None,
        seed: int,
    ) -> RenderResult:
        texture = None
        if isinstance(avatar, Rig):
            rig, look, base = avatar, Look(), avatar.neutral
        elif isinstance(avatar, Avatar):
            rig, look, base = avatar.rig, avatar.look, avatar.base
            texture = avatar.texture
        else:
            raise ConfigError(f"render: expected an Avatar or a Rig, got {type(avatar).__name__}")
        o = self.options
        lt = Light.of(light)
        if skin is not None:
            s = np.asarray(skin, np.float64).reshape(-1)
            if s.shape != (3,) or (s < 0).any() or (s > 1).any():
                raise ConfigError(f"render: skin must be RGB in [0, 1], got {skin}")
        skin_rgb = tuple(float(x) for x in (look.skin if skin is None else skin))
        st = self._mesh(rig, look, textured=texture is not None)
        if weights is None:
            verts = np.asarray(base, np.float32)
        else:
            verts = rig.evaluate(weights, base=base)
        normals = _vertex_normals(verts, st.corners, st.flat)
        src = st.extra["src"]
        if src is None:
            st.vbo_pos.write(np.ascontiguousarray(verts, np.float32))
            st.vbo_normal.write(normals)
        else:
            st.vbo_pos.write(np.ascontiguousarray(verts[src], np.float32))
            st.vbo_normal.write(np.ascontiguousarray(normals[src]))

        # model: pivot -> rotate -> back, then centre the face target at the camera axis.
        pm = pose_matrix(pose)
        to_pivot = np.eye(4)
        to_pivot[:3, 3] = -st.pivot
        from_pivot = np.eye(4)
        from_pivot[:3, 3] = st.pivot - st.target - np.array([0.0, 0.0, st.distance])
        rot = pm.copy()
        rot[:3, 3] = 0.0
        model = from_pivot @ rot @ to_pivot
        model[:3, 3] += pm[:3, 3]
        aspect = o.width / o.height
        near, far = max(st.distance * 0.05, 1e-3), st.distance * 4 + 100.0
        f = 1.0 / math.tan(math.radians(o.fov_deg) / 2)
        proj = np.array([
            [f / aspect, 0, 0, 0], [0, f, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0],
        ])  # fmt: skip
        prog = self._prog
        prog["model"].write(model.T.astype(np.float32).tobytes())
        prog["mvp"].write(proj.T.astype(np.float32).tobytes())
        prog["light_dir"].value = lt.direction
        prog["light_color"].value = lt.color
        prog["intensity"].value = lt.intensity
        prog["ambient"].value = lt.ambient
        prog["specular"].value = lt.specular
        prog["toon"].value = int(look.shading == "toon")
        prog["bands"].value = float(look.toon_bands - 1)
        prog["outline"].value = look.outline
        prog["skin"].value = skin_rgb
        prog["lip_tint"].value = look.lips if look.lips is not None else (1.0, 1.0, 1.0)
        prog["textured"].value = int(texture is not None)
        if texture is not None:
            self._texture(texture).use(location=0)
            prog["albedo"].value = 0

        ctx = self._ctx
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        self._fbo.use()
        self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        st.vao.render()
        if self._fbo is not self._fbo_out:
            ctx.copy_framebuffer(self._fbo_out, self._fbo)
        raw = self._fbo_out.read(components=4, alignment=1)
        rgba = np.frombuffer(raw, np.uint8).reshape(o.height, o.width, 4)[::-1]
        alpha = np.ascontiguousarray(rgba[..., 3])

        posed = (verts.astype(np.float64) @ model[:3, :3].T + model[:3, 3]).astype(np.float32)
        if rig.landmark_vertices is not None and len(rig.landmark_vertices) >= 68:
            px = _to_pixels(posed[rig.landmark_vertices[:68]], proj, o.width, o.height)
            visible = self._visible(st, px)
            lm2d = px[:, :2].astype(np.float32)
        else:
            lm2d = np.zeros((0, 2), np.float32)
            visible = np.zeros(0, bool)

        bg_src = o.background if background is None else background
        bg = self._background(bg_src, seed)
        a = alpha.astype(np.float32)[..., None] * (1.0 / 255.0)
        # The resolve averaged colour x coverage over a transparent black clear: premultiplied.
        img = rgba[..., :3].astype(np.float32) + bg.astype(np.float32) * (1.0 - a)
        image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        return RenderResult(image, alpha, lm2d, visible, posed, proj, o.width, o.height)

    def _texture(self, image: np.ndarray) -> Any:
        """Returns the (cached) mipmapped OpenGL texture of an (H, W, 3) uint8 image."""
        hit = self._textures.get(id(image))
        if hit is not None and hit[0] is image:
            return hit[1]
        if len(self._textures) >= 8:
            self._textures.pop(next(iter(self._textures)))[1].release()
        h, w = image.shape[:2]
        # OpenGL's first texture row is v = 0, the image's bottom row.
        tex = self._ctx.texture((w, h), 3, np.ascontiguousarray(image[::-1]).tobytes(), alignment=1)
        tex.build_mipmaps()
        tex.filter = (self._ctx.LINEAR_MIPMAP_LINEAR, self._ctx.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        self._textures[id(image)] = (image, tex)  # the image is kept alive: its id stays unique
        return tex

    def _visible(self, st: _MeshState, px: np.ndarray) -> np.ndarray:
        """Returns (N,) bool: the depth buffer at each point is not nearer than the point."""
        o = self.options
        fbo = self._fbo_out
        if o.samples:
            fbo = self._depth_fbo
            fbo.use()
            fbo.clear(depth=1.0)
            st.vao.render()
        depth = np.frombuffer(
            fbo.read(components=1, attachment=-1, dtype="f4"), np.float32
        ).reshape(o.height, o.width)[::-1]
        # The farthest surface in the 3x3 pixels around each point: a visible point on a slanted
        # surface has some of its neighbourhood at or behind it; an occluder covers it all.
        xi = np.clip(px[:, 0].astype(np.intp), 1, o.width - 2)
        yi = np.clip(px[:, 1].astype(np.intp), 1, o.height - 2)
        d = np.max([depth[yi + dy, xi + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        inside = (px[:, 0] >= 0) & (px[:, 0] < o.width) & (px[:, 1] >= 0) & (px[:, 1] < o.height)
        # Window depth changes by about near / z^2 per cm at distance z: allow 0.5 cm.
        near = st.distance * 0.05
        tol = 0.5 * near / st.distance**2
        return inside & (px[:, 2] <= d + tol)

    def _background(self, kind: Any, seed: int) -> np.ndarray:
        o = self.options
        if isinstance(kind, np.ndarray) and kind.ndim == 3:
            return make_background(kind, o.width, o.height)
        key = (kind if isinstance(kind, str) else tuple(np.asarray(kind, float).ravel()), seed)
        bg = self._backgrounds.get(key)
        if bg is None:
            bg = make_background(kind, o.width, o.height, seed)
            if len(self._backgrounds) > 64:
                self._backgrounds.clear()
            self._backgrounds[key] = bg
        return bg

"""Texture capture: a photo's pixels unwrapped into a rig's UV space, merged and filled.

Given an image, the rig's vertices posed in that image's camera (from the landmark fitter, or
from the renderer in tests) and the camera's intrinsics, :func:`unwrap` finds for every texel of
the skin materials the surface point it maps to, projects it into the image, and keeps its
colour where the point is seen: in front in the depth buffer (the mesh drawn from the camera, so
the nose hides the far cheek) and facing the camera; each texel is weighted by the cosine of the
view angle, so grazing views count little. :func:`merge` averages several frames by those
weights; :func:`fill_texture` completes what no frame saw: the mirror image of the other half of
the face where that half was seen, a low-frequency extension of the seen skin, and a skin tone
measured on the visible cheeks everywhere else, with feathered transitions so no seam shows. Eyes,
teeth, tongue and the mouth socket (its own material in :func:`atlas_rig`) are never textured,
so they keep the model's colours.

ICT FaceKit's UVs are UDIM tiles: the face in u in [0, 1], the back of the head, neck, mouth and
eye sockets in [1, 2], gums, teeth, eyes beyond. :func:`atlas_rig` makes the rig this module
works on: vertices split at UV seams (one UV per vertex, as renderers and glTF need) and u halved,
so the two skin tiles become one texture, ``(S, 2S, 3)``, face on the left.

Camera frame (as the fitter's): x right, y down, z forward from the camera, centimetres; pixel
centres at .5. Rasterisation runs in OpenGL (:func:`facexpr.avatars.render.gl_context`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from facexpr.avatars.avatar import HIDDEN_MATERIALS, SKIN_MATERIALS, Look
from facexpr.avatars.rig import Rig
from facexpr.core.errors import ConfigError

if TYPE_CHECKING:
    from facexpr.avatars.render import RenderResult

log = logging.getLogger(__name__)

__all__ = [
    "MOUTH_SOCKET",
    "Camera",
    "TextureOptions",
    "TextureSample",
    "atlas_rig",
    "delight",
    "fill_texture",
    "merge",
    "shading",
    "unwrap",
    "vertex_normals",
]

_ICT_VERTICES = 26719
_ICT_MOUTH_SOCKET = (11248, 13294)
MOUTH_SOCKET = "M_MouthSocket"


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: x right, y down, z forward; pixel centres at .5.

    Attributes:
        fx, fy: focal lengths, px.
        cx, cy: principal point, px.
        width, height: image size, px.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ConfigError(f"Camera: focal lengths must be > 0, got {self.fx}, {self.fy}")
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"Camera: image size must be >= 1 px, got {self.width}x{self.height}")

    @classmethod
    def from_render(cls, result: RenderResult) -> tuple[Camera, np.ndarray]:
        """Returns the camera of a renderer frame and its (V, 3) vertices in this camera's frame.

        The renderer's camera looks along -z with +y up; here z looks forward and y down.
        """
        m = result.mvp
        w, h = result.width, result.height
        cam = cls(m[0, 0] * w / 2, m[1, 1] * h / 2, w / 2, h / 2, w, h)
        return cam, (result.vertices * np.array([1.0, -1.0, -1.0], np.float32)).astype(np.float32)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Returns (..., 2) px of (..., 3) camera-frame points (z clamped to >= 1e-6)."""
        z = np.maximum(points[..., 2], 1e-6)
        return np.stack(
            [self.fx * points[..., 0] / z + self.cx, self.fy * points[..., 1] / z + self.cy], -1
        )

    def crop(self, x0: float, y0: float, width: int, height: int, scale: float = 1.0) -> Camera:
        """Returns the camera of the image cropped at (x0, y0) to width x height, then scaled."""
        return Camera(
            self.fx * scale, self.fy * scale, (self.cx - x0) * scale, (self.cy - y0) * scale,
            max(1, round(width * scale)), max(1, round(height * scale)),
        )  # fmt: skip


@dataclass
class TextureOptions:
    """How textures are captured and completed.

    Attributes:
        size: texture height S in texels; the atlas is (S, 2S) (face tile, back-of-head tile).
        min_cos: texels seen at a view angle whose cosine is below this get weight 0.
        depth_tolerance: cm a texel may lie behind the depth buffer and still count as seen.
        mirror: fill unseen face texels from the mirror-image texel of the other half.
        feather: texels of the transition from captured colour to fill, as a fraction of S.
        skin_materials: materials the texture covers.
        delight: divide each frame's low-frequency shading out of its colours (:func:`delight`)
            before merging, so that the avatar can be lit anew. Off by default: on the fixture
            photos it evens one-sided light but over-brightens eye sockets and nose sides into
            saturated patches (a first-order light has no shadows), which looked worse.
    """

    size: int = 1024
    min_cos: float = 0.15
    depth_tolerance: float = 0.5
    mirror: bool = True
    feather: float = 0.06
    skin_materials: tuple[str, ...] = SKIN_MATERIALS
    delight: bool = False

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 4096:
            raise ConfigError(f"TextureOptions.size must be in [32, 4096], got {self.size}")
        if not 0.0 <= self.min_cos < 1.0:
            raise ConfigError(f"TextureOptions.min_cos must be in [0, 1), got {self.min_cos}")
        if self.depth_tolerance < 0:
            raise ConfigError(
                f"TextureOptions.depth_tolerance must be >= 0, got {self.depth_tolerance}"
            )
        if not 0.0 <= self.feather <= 0.25:
            raise ConfigError(f"TextureOptions.feather must be in [0, 0.25], got {self.feather}")


@dataclass(frozen=True)
class TextureSample:
    """Colours and weights of the texels one or more images showed.

    Attributes:
        color: (S, 2S, 3) float32 RGB in [0, 1] (0 where unseen).
        weight: (S, 2S) float32 >= 0: the cosine of the view angle where seen (summed over
            merged frames), 0 where unseen.
        covered: (S, 2S) bool, texels on the skin materials' surface.
        normal: optional (S, 2S, 3) float32 unit surface normals in the camera frame (one
            frame's sample; None after :func:`merge`).
    """

    color: np.ndarray
    weight: np.ndarray
    covered: np.ndarray
    normal: np.ndarray | None = None

    @property
    def seen_fraction(self) -> float:
        """Returns the fraction of covered texels with a weight above 0."""
        n = int(self.covered.sum())
        return float((self.weight[self.covered] > 0).sum() / n) if n else 0.0


def atlas_rig(rig: Rig) -> Rig:
    """Returns an ICT FaceKit rig split at its UV seams with the two skin tiles in one atlas.

    Raises:
        ConfigError: the rig has no per-corner UVs of ICT FaceKit's UDIM layout.
    """
    if rig.uv is None or rig.face_material is None:
        raise ConfigError(f"atlas_rig: rig '{rig.name}' has no UVs or materials")
    split, src = rig.split_uv_seams()
    skin = [i for i, n in enumerate(rig.material_names) if n in SKIN_MATERIALS]
    if not skin:
        raise ConfigError(f"atlas_rig: rig '{rig.name}' has no {SKIN_MATERIALS} materials")
    used = split.uv[np.unique(split.faces[np.isin(split.face_material, skin)])]
    if used[:, 0].min() < 0 or used[:, 0].max() > 2 or used[:, 1].min() < 0 or used[:, 1].max() > 1:
        raise ConfigError(
            f"atlas_rig: rig '{rig.name}': skin UVs outside the tiles [0, 2] x [0, 1]"
        )
    uv = split.uv * np.array([0.5, 1.0], np.float32)
    mat, names = split.face_material, split.material_names
    if rig.n_vertices == _ICT_VERTICES and MOUTH_SOCKET not in names:
        # The mouth socket (inside of the lips and cheeks) shares the back-of-head material and
        # tile; as its own material it keeps the model's mouth colour instead of skin texture.
        a, b = _ICT_MOUTH_SOCKET
        ict_ids = np.asarray(src)[split.faces]
        socket = ((ict_ids >= a) & (ict_ids < b)).all(axis=1)
        mat = np.where(socket, len(names), mat).astype(np.int16)
        names = (*names, MOUTH_SOCKET)
    return replace(split, uv=uv, face_material=mat, material_names=names,
                   name=f"{rig.name}_atlas")  # fmt: skip


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Returns (V, 3) float32 unit area-weighted vertex normals ((0, 0, 0) where undefined)."""
    v = vertices.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(norm, 1e-12)).astype(np.float32)


_UV_VS = """
#version 330
in vec2 in_uv;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_pos;
out vec3 v_normal;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    gl_Position = vec4(in_uv * 2.0 - 1.0, 0.0, 1.0);
}
"""
_UV_FS = """
#version 330
in vec3 v_pos;
in vec3 v_normal;
layout(location = 0) out vec4 f_pos;
layout(location = 1) out vec4 f_normal;
void main() {
    f_pos = vec4(v_pos, 1.0);
    f_normal = vec4(v_normal, 1.0);
}
"""
_DEPTH_VS = """
#version 330
uniform vec4 intrinsics;  // fx, fy, cx, cy
uniform vec2 size;        // width, height px
uniform vec2 depth_ab;    // ndc z = a + b / z
in vec3 in_pos;
out float v_z;
void main() {
    float z = in_pos.z;
    float x = (intrinsics.x * in_pos.x + intrinsics.z * z) / size.x * 2.0 - z;
    float y = z - (intrinsics.y * in_pos.y + intrinsics.w * z) / size.y * 2.0;
    v_z = z;
    gl_Position = vec4(x, y, depth_ab.x * z + depth_ab.y, z);
}
"""
_DEPTH_FS = """
#version 330
in float v_z;
out vec4 f_z;
void main() { f_z = vec4(v_z, 0.0, 0.0, 1.0); }
"""


def _gl() -> Any:
    from facexpr.avatars.render import gl_context

    return gl_context()


def _texel_surface(
    ctx: Any, rig: Rig, vertices: np.ndarray, normals: np.ndarray, skin: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns per texel (S, 2S): camera-frame position (3), normal (3) and coverage (bool)."""
    faces = rig.faces[skin]
    uv = rig.uv[faces].reshape(-1, 2).astype(np.float32)
    pos = vertices[faces].reshape(-1, 3).astype(np.float32)
    nrm = normals[faces].reshape(-1, 3).astype(np.float32)
    prog = ctx.program(vertex_shader=_UV_VS, fragment_shader=_UV_FS)
    data = np.concatenate([uv, pos, nrm], axis=1)
    vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "2f 3f 3f", "in_uv", "in_pos", "in_normal")])
    shape = (2 * size, size)
    targets = [ctx.texture(shape, 4, dtype="f4") for _ in range(2)]
    fbo = ctx.framebuffer(color_attachments=targets)
    try:
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0)
        ctx.disable(ctx.DEPTH_TEST)
        vao.render()
        out = [
            np.frombuffer(fbo.read(components=4, attachment=k, dtype="f4"), np.float32).reshape(
                size, 2 * size, 4
            )[::-1]
            for k in range(2)
        ]
    finally:
        for obj in (vao, vbo, prog, fbo, *targets):
            obj.release()
    return out[0][..., :3], out[1][..., :3], out[0][..., 3] > 0.5


def _depth_map(ctx: Any, rig: Rig, vertices: np.ndarray, keep: np.ndarray, cam: Camera):
    """Returns the (H, W) float32 camera-frame depth (cm) of the nearest surface (1e9: none)."""
    faces = np.ascontiguousarray(rig.faces[keep], np.int32)
    prog = ctx.program(vertex_shader=_DEPTH_VS, fragment_shader=_DEPTH_FS)
    near, far = 1.0, 1.0e4
    b = -2.0 * near * far / (far - near)
    a = (far + near) / (far - near)
    prog["intrinsics"].value = (cam.fx, cam.fy, cam.cx, cam.cy)
    prog["size"].value = (float(cam.width), float(cam.height))
    prog["depth_ab"].value = (a, b)
    vbo = ctx.buffer(np.ascontiguousarray(vertices, np.float32).tobytes())
    ibo = ctx.buffer(faces.tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4)
    color = ctx.texture((cam.width, cam.height), 1, dtype="f4")
    depth = ctx.depth_renderbuffer((cam.width, cam.height))
    fbo = ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
    try:
        fbo.use()
        fbo.clear(1.0e9, 0.0, 0.0, 1.0, depth=1.0)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        vao.render()
        z = np.frombuffer(fbo.read(components=1, dtype="f4"), np.float32)
        z = z.reshape(cam.height, cam.width)[::-1].copy()
    finally:
        for obj in (vao, vbo, ibo, prog, fbo, color, depth):
            obj.release()
    return z


def _materials(rig: Rig, names: Sequence[str]) -> np.ndarray:
    if rig.face_material is None:
        return np.zeros(len(rig.faces), bool)
    ids = [i for i, n in enumerate(rig.material_names) if n in names]
    return np.isin(rig.face_material, ids)


def unwrap(
    image: np.ndarray,
    vertices: np.ndarray,
    camera: Camera,
    rig: Rig,
    options: TextureOptions | None = None,
    *,
    mask: np.ndarray | None = None,
) -> TextureSample:
    """Returns the texels of the rig's skin that the image shows, with their colours and weights.

    Args:
        image: (H, W, 3) uint8 RGB, the camera's image.
        vertices: (V, 3) the rig's vertices posed in the camera frame (cm, z forward).
        camera: the image's camera.
        rig: a rig with per-vertex UVs in [0, 1] (see :func:`atlas_rig`) and materials.
        options: see :class:`TextureOptions`.
        mask: optional (H, W) float weights in [0, 1] of the pixels that show the face (e.g. the
            landmarks' hull, so hair and background never paint the head).

    Raises:
        ConfigError: shapes that do not match.
    """
    import cv2

    o = options or TextureOptions()
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"unwrap: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if img.shape[:2] != (camera.height, camera.width):
        raise ConfigError(
            f"unwrap: image is {img.shape[1]}x{img.shape[0]}, the camera "
            f"{camera.width}x{camera.height}"
        )
    v = np.asarray(vertices, np.float32)
    if v.shape != rig.neutral.shape:
        raise ConfigError(f"unwrap: vertices must be {rig.neutral.shape}, got {v.shape}")
    if rig.uv is None or rig.uv.shape != (rig.n_vertices, 2):
        raise ConfigError(f"unwrap: rig '{rig.name}' needs per-vertex UVs (use atlas_rig)")
    if mask is not None and np.shape(mask) != img.shape[:2]:
        raise ConfigError(f"unwrap: mask must be {img.shape[:2]}, got {np.shape(mask)}")
    skin = _materials(rig, o.skin_materials)
    keep = ~_materials(rig, HIDDEN_MATERIALS)
    normals = vertex_normals(v, rig.faces[keep])
    s = o.size
    ctx = _gl()
    try:
        pos, nrm, covered = _texel_surface(ctx, rig, v, normals, skin, s)
        zmap = _depth_map(ctx, rig, v, keep, camera)
    finally:
        ctx.release()
    px = camera.project(pos)
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    view = -pos / np.maximum(np.linalg.norm(pos, axis=-1, keepdims=True), 1e-12)
    cos = (nrm * view).sum(-1)
    w_img, h_img = camera.width, camera.height
    inside = (px[..., 0] >= 0) & (px[..., 0] < w_img) & (px[..., 1] >= 0) & (px[..., 1] < h_img)
    ok = covered & inside & (pos[..., 2] > 0) & (cos > o.min_cos)
    # The farthest surface in the 3x3 pixels around each texel's pixel: a seen point on a slanted
    # surface has some of its neighbourhood at or behind it; an occluder covers all of it.
    zmax = cv2.dilate(np.where(zmap > 1e8, -1e9, zmap).astype(np.float32), np.ones((3, 3)))
    xi = np.clip(px[..., 0].astype(np.intp), 0, w_img - 1)
    yi = np.clip(px[..., 1].astype(np.intp), 0, h_img - 1)
    ok &= pos[..., 2] <= zmax[yi, xi] + o.depth_tolerance
    weight = np.where(ok, np.clip(cos, 0.0, 1.0), 0.0).astype(np.float32)
    # Pixel centres are at .5, cv2's at integers.
    map_x = np.where(ok, px[..., 0] - 0.5, -1).astype(np.float32)
    map_y = np.where(ok, px[..., 1] - 0.5, -1).astype(np.float32)
    color = cv2.remap(
        img.astype(np.float32) / 255.0, map_x, map_y, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    if mask is not None:
        m = cv2.remap(np.asarray(mask, np.float32), map_x, map_y, cv2.INTER_LINEAR)
        weight *= np.clip(m, 0.0, 1.0)
    color[weight <= 0] = 0.0
    return TextureSample(color.astype(np.float32), weight, covered, nrm.astype(np.float32))


def shading(normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Returns (..., 3) RGB shading factors of (..., 3) unit normals under a first-order light.

    Args:
        normals: camera-frame normals.
        light: (3, 4) per channel: ambient, then the x, y, z coefficients of the normal
            (first-order spherical harmonics), as :func:`delight` estimates.
    """
    n1 = np.concatenate([np.ones((*normals.shape[:-1], 1), np.float32), normals], axis=-1)
    return n1 @ np.asarray(light, np.float32).T


def delight(sample: TextureSample, *, min_weight: float = 0.3) -> tuple[TextureSample, np.ndarray]:
    """Returns the sample with the frame's low-frequency shading divided out, and that light.

    The classic morphable-model assumption: over the well-seen skin the albedo varies little, so
    the brightness (mean of RGB) is fitted (weighted least squares) by a white first-order
    spherical-harmonics light, ``b ~ L0 + L . n`` with ``n`` the texel's camera-frame normal; the
    light is scaled so that its mean shading over those texels is 1, and colours are divided by
    it (clipped to [0.25, 4]): a face lit from one side gets the same albedo on both. Brows, lips
    and shadows are darker than the mean, which biases the light a little, not the albedo's
    detail.

    Returns:
        (the de-lit sample, the (3, 4) light: :func:`shading` of a normal gives the factor that
        re-lights it as the frame was lit).

    Raises:
        ConfigError: the sample has no normals (a merged one), or too few texels are seen.
    """
    if sample.normal is None:
        raise ConfigError("delight: the sample has no normals (delight frames before merging)")
    use = sample.covered & (sample.weight >= min_weight)
    if use.sum() < 50:
        raise ConfigError(f"delight: {int(use.sum())} well-seen texels, too few to fit a light")
    n = sample.normal[use].astype(np.float64)
    a = np.concatenate([np.ones((len(n), 1)), n], axis=1)
    sw = np.sqrt(sample.weight[use].astype(np.float64))[:, None]
    # One white light fitted to the brightness: per-channel fits would take the skin's own
    # colour for the light's and divide it out (grey faces).
    grey = sample.color[use].mean(axis=1, keepdims=True).astype(np.float64)
    coef = np.linalg.lstsq(a * sw, grey * sw, rcond=None)[0][:, 0]
    coef /= max(float((a @ coef).mean()), 1e-6)
    light = np.tile(coef, (3, 1))
    shade = np.clip(shading(sample.normal, light), 0.25, 4.0)
    color = np.where(sample.weight[..., None] > 0, sample.color / shade, 0.0)
    out = TextureSample(np.clip(color, 0.0, 1.0).astype(np.float32), sample.weight,
                        sample.covered, sample.normal)  # fmt: skip
    return out, light.astype(np.float32)


def merge(samples: Sequence[TextureSample], *, robust: float | None = 0.08) -> TextureSample:
    """Returns the visibility-weighted mean of several frames' samples (weights summed).

    Args:
        samples: the frames' samples, all of one size.
        robust: with 3 frames or more, the colour distance (RGB in [0, 1]) at which a frame's
            texel counts half in two reweighting passes (Cauchy weights about the running mean),
            so what one frame shows alone (a hand, a strand of hair, a highlight) is outvoted;
            None for the plain weighted mean. The returned weights are the plain sums.

    Raises:
        ConfigError: no samples, or samples of different sizes.
    """
    if not samples:
        raise ConfigError("merge: no texture samples")
    shape = samples[0].weight.shape
    if any(x.weight.shape != shape for x in samples):
        raise ConfigError("merge: texture samples of different sizes")
    colors = np.stack([x.color for x in samples])
    weights = np.stack([x.weight for x in samples])
    w_sum = weights.sum(axis=0)

    def mean(wts: np.ndarray) -> np.ndarray:
        tot = wts.sum(axis=0)
        c = (colors * wts[..., None]).sum(axis=0)
        return np.where(tot[..., None] > 0, c / np.maximum(tot, 1e-12)[..., None], 0.0)

    c = mean(weights)
    if robust is not None and len(samples) >= 3:
        for _ in range(2):
            r = np.linalg.norm(colors - c[None], axis=-1)
            c = mean(weights / (1.0 + (r / robust) ** 2))
    covered = np.logical_or.reduce([x.covered for x in samples])
    return TextureSample(c.astype(np.float32), w_sum.astype(np.float32), covered)


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _cheek_tone(sample: TextureSample, rig: Rig, size: int) -> np.ndarray | None:
    """Returns the RGB median of the well-seen texels on both cheeks, or None if none is seen."""
    if rig.landmark_vertices is None or len(rig.landmark_vertices) < 68:
        return None
    lm = rig.neutral[rig.landmark_vertices[:68]].astype(np.float64)
    # Mid-cheek: between the jaw, the nose wing and the lower eyelid, on each side.
    centres = [(lm[2] + lm[31] + lm[40]) / 3, (lm[14] + lm[35] + lm[47]) / 3]
    face = np.unique(rig.faces[_materials(rig, ("M_Face",))])
    if not len(face):
        return None
    picked = []
    for c in centres:
        nearest = face[np.argmin(np.linalg.norm(rig.neutral[face] - c, axis=1))]
        near = face[np.linalg.norm(rig.neutral[face] - rig.neutral[nearest], axis=1) < 1.5]
        picked.append(near)
    verts = np.concatenate(picked)
    uv = rig.uv[verts]
    col = np.clip((uv[:, 0] * 2 * size).astype(np.intp), 0, 2 * size - 1)
    row = np.clip(((1.0 - uv[:, 1]) * size).astype(np.intp), 0, size - 1)
    w = sample.weight[row, col]
    good = w > 0.3 * max(float(w.max()), 1e-6)
    if not good.any() or w.max() <= 0:
        return None
    return np.median(sample.color[row[good], col[good]], axis=0).astype(np.float32)


def _outer_edge_weight(covered: np.ndarray, width: float) -> np.ndarray:
    """Returns (H, W) float32: 0 at the outer border of the covered texels (their holes, the
    eye and mouth openings, filled first), rising smoothly to 1 ``width`` texels inside."""
    import cv2

    inside = covered.astype(np.uint8)
    h, w = inside.shape
    # Flood the outside from the border; what is neither covered nor outside is a hole.
    flood = inside.copy()
    mask = np.zeros((h + 2, w + 2), np.uint8)
    for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
        if flood[y, x] == 0:
            cv2.floodFill(flood, mask, (x, y), 2)
    solid = (flood != 2).astype(np.uint8)
    dist = cv2.distanceTransform(solid, cv2.DIST_L2, 5)
    return _smoothstep(0.0, max(width, 1.0), dist).astype(np.float32)


def _normalized_blur(c: np.ndarray, w: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (colour, confidence in [0, 1]) of a Gaussian normalized convolution."""
    import cv2

    rows, cols = c.shape[:2]
    # Wide blurs run on a reduced copy (the result is smooth anyway): 30x faster at S = 1024.
    k = max(1, int(sigma // 3))
    size = (max(1, cols // k), max(1, rows // k))

    def blur(x: np.ndarray) -> np.ndarray:
        if k == 1:
            return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        small = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)

    num = blur(np.ascontiguousarray(c * w[..., None]))
    den = blur(np.ascontiguousarray(w))
    col = num / np.maximum(den, 1e-6)[..., None]
    return col, np.clip(den / max(float(w.max()), 1e-6) * 2.0, 0.0, 1.0)


def fill_texture(
    sample: TextureSample,
    rig: Rig,
    options: TextureOptions | None = None,
    *,
    look: Look | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the completed (S, 2S, 3) uint8 texture and the (3,) float32 skin tone used.

    Face texels the image did not show take the mirror-image texel (ICT's face tile is symmetric
    about u = 0.5) where that was seen; the rest is a normalized-convolution extension of the
    seen skin at two scales, fading to the skin tone of the visible cheeks; captured colours fade
    into the fill over ``options.feather``.

    Args:
        sample: merged texture sample (:func:`merge`).
        rig: the atlas rig it was captured on.
        options: see :class:`TextureOptions`.
        look: source of the fallback skin tone when no cheek is seen.
    """
    import cv2

    o = options or TextureOptions()
    lk = look or Look()
    s = sample.weight.shape[0]
    if sample.weight.shape != (s, 2 * s):
        raise ConfigError(f"fill_texture: expected an (S, 2S) sample, got {sample.weight.shape}")
    c = sample.color.astype(np.float32).copy()
    w = sample.weight.astype(np.float32).copy()
    if o.mirror:
        cf, wf = c[:, :s], w[:, :s]
        cm, wm = cf[:, ::-1], wf[:, ::-1]
        # The mirror fills where the texel's own view is weak (grazing, at a turned face's far
        # side) and stays out where it is good (cos > 0.6): asymmetric features stay.
        wm = wm * (1.0 - _smoothstep(0.2, 0.6, wf))
        tot = wf + wm
        c[:, :s] = np.where(
            tot[..., None] > 0, (cf * wf[..., None] + cm * wm[..., None]) / np.maximum(tot, 1e-12)[
                ..., None], 0.0)  # fmt: skip
        w[:, :s] = tot
    tone = _cheek_tone(TextureSample(c, w, sample.covered), rig, s)
    if tone is None:
        log.warning("no cheek visible: the fill uses the default skin colour")
        tone = np.asarray(lk.skin, np.float32)
    out = np.empty_like(c)
    feather = max(1.0, o.feather * s)
    for tile in (slice(0, s), slice(s, 2 * s)):
        ct, wt = c[:, tile], np.minimum(w[:, tile], 1.0)
        if wt.max() <= 0:
            out[:, tile] = tone
            continue
        coarse, conf_c = _normalized_blur(ct, wt, s / 8.0)
        fine, conf_f = _normalized_blur(ct, wt, s / 32.0)
        fill = tone + (coarse - tone) * conf_c[..., None]
        fill = fill + (fine - fill) * conf_f[..., None]
        # Captured colour fades in over a feather from the outer border of the seen texels
        # (their least reliable pixels; 2% of S left a visible line on the cheeks of the
        # fixture video, 6% does not); not around the eye and mouth holes, whose edges (lids,
        # lips) are the detail to keep.
        alpha = _smoothstep(0.05, 0.4, wt) * _outer_edge_weight(wt > 0.05, feather)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(feather / 4.0, 0.5))
        if tile.start == 0:
            # The face tile's outer edge meets the back-of-head tile, which is all tone: fade to
            # the tone there, so the seam on the temples and jaw does not show.
            edge = _outer_edge_weight(sample.covered[:, tile], 0.06 * s)
            fill = tone + (fill - tone) * edge[..., None]
            alpha = alpha * edge
        out[:, tile] = fill + (ct - fill) * alpha[..., None]
    tex = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return tex, tone

"""New expressions of a captured person in the source photo: re-rendering or mesh-guided warping.

Two ways to show a captured person with another expression, in the photo's own camera and
scene (hair, background and light stay the photo's):

- ``"render"``: the textured avatar (:mod:`facexpr.avatars.texture`) drawn unlit at the target
  expression (the texture already holds the photo's light) and composited over the photo;
- ``"warp"``: piecewise-affine warping of the photo over the mesh triangles: every pixel of the
  target mesh takes the photo's pixel at the same barycentric place of the same triangle in the
  source pose (the source position is a vertex attribute, so the rasteriser's interpolation *is*
  the per-triangle affine map). Pixels whose triangle the photo did not show (the inside of an
  opening mouth, teeth, the far side of the face) come from the re-render, as in the
  literature's mouth-interior compositing.

Both composite with the target head's coverage, feathered at its edge. Where the source head
covered more than the target (a mouth that was open and closes), the photo's own pixels remain
(no inpainting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from facexpr.avatars.avatar import Avatar
from facexpr.avatars.texture import Camera, _depth_map, _gl, _materials, vertex_normals
from facexpr.core.errors import ConfigError

__all__ = ["SourceView", "render_view"]


@dataclass(frozen=True)
class SourceView:
    """A captured person's source frame: the photo, its camera and the fitted pose.

    Attributes:
        image: (H, W, 3) uint8 RGB (the face's crop of the source frame).
        camera: the crop's camera.
        rotation: (3, 3) float64, model frame (ICT: +y up, face toward +z) to camera frame.
        translation: (3,) float64 cm, camera frame.
        weights: (C,) float32 the fitted expression of the frame.
        mask: (H, W) float32 in [0, 1], the pixels that show the face's skin.
        light: optional (3, 4) first-order light of the frame (:func:`facexpr.avatars.texture.
            delight`): a de-lit texture is re-lit with it; None when the texture kept the light.
    """

    image: np.ndarray
    camera: Camera
    rotation: np.ndarray
    translation: np.ndarray
    weights: np.ndarray
    mask: np.ndarray
    light: np.ndarray | None = None

    def pose(self, vertices: np.ndarray) -> np.ndarray:
        """Returns (V, 3) float32 camera-frame positions of (V, 3) model-frame vertices."""
        return (np.asarray(vertices, np.float64) @ self.rotation.T + self.translation).astype(
            np.float32
        )


_VS = """
#version 330
uniform vec4 intrinsics;
uniform vec2 size;
uniform vec2 depth_ab;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
in vec2 in_src;
in vec4 in_color;  // rgb base colour, a: 1 textured skin
in vec3 in_flags;  // seen in the source, mouth or eye interior, part of the face
out vec3 v_normal;
out vec2 v_uv;
out vec2 v_src;
out vec4 v_color;
out vec3 v_flags;
void main() {
    float z = in_pos.z;
    float x = (intrinsics.x * in_pos.x + intrinsics.z * z) / size.x * 2.0 - z;
    float y = z - (intrinsics.y * in_pos.y + intrinsics.w * z) / size.y * 2.0;
    v_normal = in_normal;
    v_uv = in_uv;
    v_src = in_src;
    v_color = in_color;
    v_flags = in_flags;
    gl_Position = vec4(x, y, depth_ab.x * z + depth_ab.y, z);
}
"""
_FS = """
#version 330
uniform sampler2D albedo;
uniform mat4 light;  // rows: R, G, B first-order light (ambient, x, y, z); row 3 unused
in vec3 v_normal;
in vec2 v_uv;
in vec2 v_src;
in vec4 v_color;
in vec3 v_flags;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_src;
void main() {
    vec3 n = normalize(v_normal);
    if (n.z > 0.0) n = -n;  // camera frame: z forward, so a surface facing the camera has n.z < 0
    float shade = 0.55 + 0.45 * max(dot(n, normalize(vec3(-0.3, -0.4, -1.0))), 0.0);
    vec4 n1 = vec4(1.0, n);  // n: the outward normal of the seen side, camera frame
    vec3 relit = vec3(dot(light[0], n1), dot(light[1], n1), dot(light[2], n1));
    vec3 c = v_color.a > 0.5 ? texture(albedo, v_uv).rgb * clamp(relit, 0.25, 4.0)
                             : v_color.rgb * shade;
    f_color = vec4(c, v_flags.z);
    f_src = vec4(v_src, v_flags.x, v_flags.y);
}
"""


_INTERIOR = ("M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_IrisLeft", "M_ScleraRight",
             "M_IrisRight", "M_MouthSocket")  # fmt: skip
_NOT_FACE = ("M_BackHead",)  # scalp, neck, ears: the photo keeps its own


def _vertex_colors(avatar: Avatar) -> tuple[np.ndarray, np.ndarray]:
    """Returns (V, 4) base colours (a = 1 on textured skin) and the (F,) faces to draw."""
    from facexpr.avatars.render import Renderer

    rig, look = avatar.rig, avatar.look
    color = np.zeros((rig.n_vertices, 4), np.float32)
    keep = np.ones(len(rig.faces), bool)
    if rig.face_material is not None:
        for m, name in enumerate(rig.material_names):
            sel = rig.face_material == m
            if name in look.hidden:
                keep &= ~sel
                continue
            verts = np.unique(rig.faces[sel])
            if name in look.skin_materials:
                color[verts] = (1.0, 1.0, 1.0, 1.0)
            else:
                color[verts, :3] = look.color_of(name)
        # The eyes as the renderer draws them: the outer shell opened over the iris.
        material = np.zeros((rig.n_vertices, 4), np.float32)
        material[:, :3] = color[:, :3]
        keep &= Renderer._eyes(rig, avatar.base, material, look)
        eyes = color[:, 3] < 0.5
        color[eyes, :3] = material[eyes, :3]
    return color, keep


def render_view(
    avatar: Avatar,
    view: SourceView,
    weights: np.ndarray,
    mode: Literal["render", "warp"] = "warp",
) -> np.ndarray:
    """Returns the (H, W, 3) uint8 source view showing the avatar's person with ``weights``.

    Args:
        avatar: the captured avatar (textured, with the fitted identity).
        view: its source view.
        weights: (C,) target expression weights of the avatar's rig.
        mode: ``"render"`` (textured re-render) or ``"warp"`` (the photo warped over the mesh,
            unseen parts re-rendered).

    Raises:
        ConfigError: no texture, a bad mode or shapes.
    """
    import cv2

    if avatar.texture is None:
        raise ConfigError(f"render_view: avatar '{avatar.name}' has no texture")
    if mode not in ("render", "warp"):
        raise ConfigError(f"render_view: mode must be 'render' or 'warp', got {mode!r}")
    rig = avatar.rig
    cam = view.camera
    src_v = view.pose(avatar.evaluate(view.weights))
    dst_v = view.pose(avatar.evaluate(np.asarray(weights, np.float32)))
    color, keep = _vertex_colors(avatar)
    interior = np.zeros(rig.n_vertices, bool)
    interior[np.unique(rig.faces[_materials(rig, _INTERIOR)])] = True
    face = np.ones(rig.n_vertices, bool)
    face[np.unique(rig.faces[_materials(rig, _NOT_FACE)])] = False
    normals = vertex_normals(dst_v, rig.faces[keep])
    src_px = cam.project(src_v).astype(np.float32)
    ctx = _gl()
    try:
        # Seen in the source: in front in the source's depth buffer, facing it, on the skin mask.
        zmap = _depth_map(ctx, rig, src_v, keep, cam)
        xi = np.clip(src_px[:, 0].astype(np.intp), 0, cam.width - 1)
        yi = np.clip(src_px[:, 1].astype(np.intp), 0, cam.height - 1)
        zmax = cv2.dilate(np.where(zmap > 1e8, -1e9, zmap).astype(np.float32), np.ones((3, 3)))
        n_src = vertex_normals(src_v, rig.faces[keep])
        facing = -(n_src * src_v).sum(-1) / np.maximum(np.linalg.norm(src_v, axis=-1), 1e-9)
        inside = (src_px[:, 0] >= 0) & (src_px[:, 0] < cam.width)
        inside &= (src_px[:, 1] >= 0) & (src_px[:, 1] < cam.height)
        seen = inside & (src_v[:, 2] <= zmax[yi, xi] + 0.3) & (facing > 0.2)
        # Skin counts where the mask shows it; eyes, teeth and tongue wherever the depth test and
        # the angle let the photo show them (through the eye and mouth openings).
        seen = seen & ((view.mask[yi, xi] > 0.5) | interior)
        flags = np.stack([seen, interior, face], axis=1).astype(np.float32)
        image, src_map, face_cov = _draw(ctx, avatar, dst_v, normals, color, keep, src_px, flags,
                                         cam, view.light)  # fmt: skip
    finally:
        ctx.release()
    photo = view.image.astype(np.float32) / 255.0
    mx, my = src_map[..., 0] - 0.5, src_map[..., 1] - 0.5
    # Triangles whose corners were all seen interpolate the flag to 1: a soft border.
    w = np.clip((src_map[..., 2] - 0.5) * 2.0, 0.0, 1.0)
    out = image
    if mode == "warp":
        warped = cv2.remap(photo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = warped * w[..., None] + image * (1.0 - w[..., None])
    # What is replaced, in both modes: the face skin the source mask showed, carried to the
    # target by the same warp, and the mouth and eye interiors (warped where the photo showed
    # them, re-rendered where not).
    skin = cv2.remap(view.mask.astype(np.float32), mx, my, cv2.INTER_LINEAR) * w
    a = face_cov * np.clip(skin + src_map[..., 3], 0.0, 1.0)
    a = cv2.GaussianBlur(a, (0, 0), max(1.0, 0.004 * cam.width))[..., None]
    res = out * a + photo * (1.0 - a)
    return np.clip(res * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _draw(
    ctx: Any,
    avatar: Avatar,
    verts: np.ndarray,
    normals: np.ndarray,
    color: np.ndarray,
    keep: np.ndarray,
    src_px: np.ndarray,
    flags: np.ndarray,
    cam: Camera,
    light: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the re-render (H, W, 3) float32, the source map (H, W, 4: x, y, seen, interior)
    and the (H, W) float32 coverage of the face parts."""
    rig = avatar.rig
    prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
    near, far = 1.0, 1.0e4
    prog["intrinsics"].value = (cam.fx, cam.fy, cam.cx, cam.cy)
    prog["size"].value = (float(cam.width), float(cam.height))
    prog["depth_ab"].value = ((far + near) / (far - near), -2.0 * near * far / (far - near))
    data = np.concatenate([verts, normals, rig.uv, src_px, color, flags], axis=1).astype(np.float32)
    vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
    ibo = ctx.buffer(np.ascontiguousarray(rig.faces[keep], np.int32).tobytes())
    vao = ctx.vertex_array(
        prog,
        [(vbo, "3f 3f 2f 2f 4f 3f", "in_pos", "in_normal", "in_uv", "in_src", "in_color",
          "in_flags")],
        index_buffer=ibo, index_element_size=4,
    )  # fmt: skip
    h, w = avatar.texture.shape[:2]
    tex = ctx.texture((w, h), 3, np.ascontiguousarray(avatar.texture[::-1]).tobytes(), alignment=1)
    tex.build_mipmaps()
    tex.filter = (ctx.LINEAR_MIPMAP_LINEAR, ctx.LINEAR)
    tex.repeat_x = tex.repeat_y = False
    size = (cam.width, cam.height)
    targets = [ctx.texture(size, 4, dtype="f4") for _ in range(2)]
    depth = ctx.depth_renderbuffer(size)
    fbo = ctx.framebuffer(color_attachments=targets, depth_attachment=depth)
    try:
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        tex.use(location=0)
        prog["albedo"].value = 0
        lt = np.zeros((4, 4), np.float32)
        lt[:3] = (1.0, 0.0, 0.0, 0.0) if light is None else light
        # GLSL reads a mat4 column by column and light[i] is column i: row i of ``lt``.
        prog["light"].write(np.ascontiguousarray(lt).tobytes())
        vao.render()
        out = [
            np.frombuffer(fbo.read(components=4, attachment=k, dtype="f4"), np.float32).reshape(
                cam.height, cam.width, 4
            )[::-1]
            for k in range(2)
        ]
    finally:
        for obj in (vao, vbo, ibo, prog, fbo, tex, depth, *targets):
            obj.release()
    return out[0][..., :3].copy(), out[1].copy(), out[0][..., 3].copy()

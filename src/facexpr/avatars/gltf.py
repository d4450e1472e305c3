"""glTF 2.0 (.gltf / .glb) rigs with morph targets: read any, write ours with an animation.

Reading merges every mesh primitive of the default scene (node transforms applied) into one
:class:`~facexpr.avatars.rig.Rig`; morph targets are channels, named from
``mesh.extras.targetNames`` (the common convention of Blender, three.js and ARKit exporters),
else the primitive's extras, else the target accessors' names. Exporter prefixes
(``blendShape1.jawOpen``) are stripped, and :func:`facexpr.avatars.rig.arkit_index` matches names
to ARKit case-insensitively.

Writing stores POSITION (with the min/max the spec requires), smooth NORMAL, per-vertex UVs when
the rig has them, one primitive per material sharing the vertex accessors, morph targets as
POSITION deltas with ``targetNames`` extras, and optionally a ``weights`` animation (LINEAR) that
three.js and Blender play.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.avatars._gltf_doc import LIMITS, GltfDoc, Limits
from facexpr.avatars.rig import Rig, arkit_index
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError
from facexpr.io._files import commit_temp, unique_temp

log = logging.getLogger(__name__)

__all__ = [
    "LIMITS",
    "GltfTexture",
    "Limits",
    "load_gltf",
    "load_gltf_texture",
    "save_avatar_gltf",
    "save_gltf",
]

_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pygltflib() -> Any:
    try:
        import pygltflib
    except ImportError as e:
        raise MissingDependencyError("pygltflib", "all", "reading and writing glTF") from e
    return pygltflib


# --------------------------------------------------------------------------- reading
def _node_matrix(doc: GltfDoc, node: dict, where: str) -> np.ndarray:
    mat = doc.numbers(node, "matrix", where, 16)
    if mat is not None:
        return np.asarray(mat, np.float64).reshape(4, 4).T
    m = np.eye(4)
    scale = doc.numbers(node, "scale", where, 3)
    if scale is not None:
        m = np.diag([*scale, 1.0]) @ m
    rot = doc.numbers(node, "rotation", where, 4)
    if rot is not None:
        x, y, z, w = rot
        r = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])  # fmt: skip
        rm = np.eye(4)
        rm[:3, :3] = r
        m = rm @ m
    translation = doc.numbers(node, "translation", where, 3)
    if translation is not None:
        t = np.eye(4)
        t[:3, 3] = translation
        m = t @ m
    return m


def _mesh_instances(doc: GltfDoc) -> list[tuple[int, int, np.ndarray]]:
    """Returns (node, mesh, world matrix) of every mesh node of the default scene.

    The node graph must be a forest: a node with two parents or a cycle is an error (a cycle
    would otherwise be walked forever).
    """
    nodes = doc.get_list(doc.json, "nodes", "nodes")
    scenes = doc.get_list(doc.json, "scenes", "scenes")
    if not scenes:
        meshes = doc.get_list(doc.json, "meshes", "meshes")
        return [(-1, k, np.eye(4)) for k in range(len(meshes))]
    s = doc.get_int(doc.json, "scene", "glTF", default=0)
    roots = doc.get_list(doc.item("scenes", s), "nodes", f"scenes[{s}].nodes")
    parent: dict[int, int] = {}
    children: list[list[int]] = []
    for i in range(len(nodes)):
        kids = doc.get_list(doc.item("nodes", i), "children", f"nodes[{i}].children")
        for c in kids:
            doc.item("nodes", c)
            if c == i:
                doc.fail(f"nodes[{i}] is its own child (a cycle in the node tree)")
            if c in parent:
                doc.fail(f"nodes[{c}] has two parents, nodes[{parent[c]}] and nodes[{i}] "
                         "(a glTF node tree allows one)")  # fmt: skip
            parent[c] = i
        children.append(kids)
    # Each node has one parent at most, so a cycle is a chain of parents that never ends.
    state = [0] * len(nodes)  # 0 unseen, 1 on the chain being walked, 2 reaches a root
    for i in range(len(nodes)):
        chain = []
        j = i
        while state[j] == 0:
            state[j] = 1
            chain.append(j)
            if j not in parent:
                break
            j = parent[j]
        else:
            if state[j] == 1:
                doc.fail(f"the node tree has a cycle through nodes[{j}]")
        for k in chain:
            state[k] = 2
    seen: set[int] = set()
    for r in roots:
        doc.item("nodes", r)
        if r in parent:
            doc.fail(f"scenes[{s}] lists nodes[{r}] as a root, but it is a child of "
                     f"nodes[{parent[r]}]")  # fmt: skip
        if r in seen:
            doc.fail(f"scenes[{s}] lists nodes[{r}] twice")
        seen.add(r)
    items: list[tuple[int, int, np.ndarray]] = []
    queue = deque((r, np.eye(4)) for r in roots)
    while queue:
        i, above = queue.popleft()
        node = doc.item("nodes", i)
        m = above @ _node_matrix(doc, node, f"nodes[{i}]")
        if node.get("mesh") is not None:
            doc.item("meshes", node["mesh"])
            items.append((i, node["mesh"], m))
        queue.extend((c, m) for c in children[i])
    return items


def _strip_prefix(name: str) -> str:
    """Returns a morph target name without exporter prefix ('blendShape1.jawOpen' -> 'jawOpen')."""
    if "." in name and not name.endswith((".L", ".R", ".l", ".r")):
        name = name.rsplit(".", 1)[1]
    return name.split(":")[-1]


def _target_names(doc: GltfDoc, mesh: dict, targets: list) -> list[str]:
    n = len(targets)
    prims = mesh.get("primitives") or [{}]
    for extras in (mesh.get("extras"), prims[0].get("extras")):
        names = extras.get("targetNames") if isinstance(extras, dict) else None
        if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
            return list(names)
    out = []
    mesh_name = mesh.get("name") if isinstance(mesh.get("name"), str) else None
    for k, t in enumerate(targets):
        acc = t.get("POSITION")
        name = doc.item("accessors", acc).get("name") if acc is not None else None
        out.append(name if isinstance(name, str) and name else f"{mesh_name or 'mesh'}_target{k}")
    return out


def _triangles(mode: int, idx: np.ndarray) -> np.ndarray:
    if mode == 4:
        return idx.reshape(-1, 3)
    if len(idx) < 3:
        return np.zeros((0, 3), idx.dtype)
    if mode == 5:  # strip: alternate winding
        tri = np.stack([idx[:-2], idx[1:-1], idx[2:]], axis=1)
        tri[1::2] = tri[1::2][:, [1, 0, 2]]
        return tri
    if mode == 6:  # fan
        return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], axis=1)
    return np.zeros((0, 3), idx.dtype)


@dataclass
class _Prim:
    node: int
    matrix: np.ndarray
    where: str
    prim: dict
    mode: int
    names: list[str]
    n_vertices: int


@dataclass(frozen=True)
class _MeshPrim:
    where: str
    prim: dict
    mode: int
    names: list[str]
    position: Any
    n_vertices: int
    n_triangles: int


def _check_mesh(doc: GltfDoc, mesh_i: int, channels: set[str]) -> list[_MeshPrim]:
    """Returns the checked triangle primitives of a mesh (done once per mesh, not per node)."""
    mesh = doc.item("meshes", mesh_i)
    mw = f"meshes[{mesh_i}]"
    out: list[_MeshPrim] = []
    n_targets: int | None = None
    names: list[str] = []
    for p_i, prim in enumerate(doc.get_list(mesh, "primitives", f"{mw}.primitives")):
        pw = f"{mw}.primitives[{p_i}]"
        if not isinstance(prim, dict) or not isinstance(prim.get("attributes", {}), dict):
            doc.fail(f"{pw} must be an object with an attributes object")
        targets = doc.get_list(prim, "targets", f"{pw}.targets")
        if not all(isinstance(t, dict) for t in targets):
            doc.fail(f"{pw}.targets must be a list of objects")
        if n_targets is None:
            n_targets = len(targets)
            names = _target_names(doc, mesh, targets)
            lower = [x.lower() for x in names]
            dup = sorted({x for x in lower if lower.count(x) > 1})
            if dup:
                doc.fail(f"{mw} has several morph targets named {dup[0]!r}")
        elif len(targets) != n_targets:
            doc.fail(f"{pw} has {len(targets)} morph targets, {mw}.primitives[0] has "
                     f"{n_targets} (glTF requires the same number)")  # fmt: skip
        mode = doc.get_int(prim, "mode", pw, default=4, hi=6)
        attrs = prim.get("attributes", {})
        pos = attrs.get("POSITION")
        if pos is None:
            continue
        n = doc.info(pos, f"{pw} POSITION", ("VEC3",)).count
        for k, t in enumerate(targets):
            if t.get("POSITION") is not None:
                tn = doc.info(t["POSITION"], f"{pw} morph target {k}", ("VEC3",)).count
                if tn != n:
                    doc.fail(f"{pw}: morph target {k} has {tn} vertices, the primitive's "
                             f"POSITION has {n}")  # fmt: skip
                channels.add(names[k].lower())
                if len(channels) > doc.limits.channels:
                    doc.fail(f"more than the {doc.limits.channels} morph targets allowed")
        if attrs.get("TEXCOORD_0") is not None:
            un = doc.info(attrs["TEXCOORD_0"], f"{pw} TEXCOORD_0", ("VEC2",)).count
            if un != n:
                doc.fail(f"{pw}: TEXCOORD_0 has {un} elements, POSITION has {n}")
        if prim.get("indices") is not None:
            info = doc.info(prim["indices"], f"{pw} indices", ("SCALAR",))
            if info.dtype.kind != "u":
                doc.fail(f"{pw}: indices must be unsigned integers, got {info.dtype}")
            n_idx = info.count
        else:
            n_idx = n
        if mode == 4 and n_idx % 3:
            doc.fail(f"{pw}: {n_idx} indices is not a whole number of triangles")
        n_tri = n_idx // 3 if mode == 4 else max(n_idx - 2, 0) if mode in (5, 6) else 0
        if prim.get("material") is not None:
            doc.item("materials", prim["material"])
        out.append(_MeshPrim(pw, prim, mode, names, pos, n, n_tri))
    return out


def _plan(doc: GltfDoc, items: list[tuple[int, int, np.ndarray]]) -> list[_Prim]:
    """Returns the primitives to read, after checking every size against :data:`LIMITS`.

    Nothing is decoded here, so a file claiming a billion vertices fails before any allocation;
    totals are checked as they grow, since instancing multiplies a small file's work.
    """
    lim = doc.limits
    plan: list[_Prim] = []
    meshes: dict[int, list[_MeshPrim]] = {}
    vertices: set[tuple[int, Any]] = set()
    channels: set[str] = set()
    n_tri = n_verts = 0
    for node_i, mesh_i, m in items:
        if mesh_i not in meshes:
            meshes[mesh_i] = _check_mesh(doc, mesh_i, channels)
        for mp in meshes[mesh_i]:
            if len(plan) >= lim.primitives:
                doc.fail(f"the scene has more than the {lim.primitives} primitives allowed")
            if (node_i, mp.position) not in vertices:
                vertices.add((node_i, mp.position))
                n_verts += mp.n_vertices
                if n_verts > lim.vertices:
                    doc.fail(f"the scene has more than the {lim.vertices} vertices allowed")
            n_tri += mp.n_triangles
            if n_tri > lim.triangles:
                doc.fail(f"the scene has more than the {lim.triangles} triangles allowed")
            plan.append(_Prim(node_i, m, mp.where, mp.prim, mp.mode, mp.names, mp.n_vertices))
    if len(channels) * n_verts * 12 > lim.delta_bytes:
        doc.fail(f"{len(channels)} morph targets x {n_verts} vertices need "
                 f"{len(channels) * n_verts * 12 >> 20} MiB, more than the "
                 f"{lim.delta_bytes >> 20} MiB allowed")  # fmt: skip
    return plan


def load_gltf(
    path: str | Path, *, names: Literal["strip", "arkit", "keep"] = "strip", name: str | None = None
) -> Rig:
    """Returns the rig of a glTF 2.0 / GLB file with morph targets (all primitives merged).

    The file is untrusted: buffers are read only from ``data:`` URIs, the GLB binary chunk or
    files inside the glTF file's folder, and every size is checked before allocating (see
    :mod:`facexpr.avatars._gltf_doc`).

    Args:
        path: a .glb or .gltf file.
        names: channel naming: ``"strip"`` removes exporter prefixes (``blendShape1.``),
            ``"arkit"`` also renames channels that match an ARKit name to it (``mouthSmile_L``
            -> ``mouthSmileLeft``; kept when two would collide), ``"keep"`` keeps names as stored.
        name: rig name (default the file stem).

    Raises:
        InputError: the file cannot be read, breaks the glTF rules or facexpr's limits, or has
            no triangle mesh.
        ConfigError: bad ``names``.
    """
    if names not in ("strip", "arkit", "keep"):
        raise ConfigError(f"load_gltf: names must be 'strip', 'arkit' or 'keep', got {names!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(path, "glTF file not found")
    doc = GltfDoc(path)
    items = _mesh_instances(doc)
    if not items:
        raise InputError(path, "no mesh in the scene")
    plan = _plan(doc, items)

    positions: list[np.ndarray] = []
    uvs: list[np.ndarray | None] = []
    faces: list[np.ndarray] = []
    face_mat: list[np.ndarray] = []
    deltas: dict[str, list[tuple[int, np.ndarray]]] = {}
    spelling: dict[str, str] = {}
    offsets: dict[tuple[int, Any], int] = {}
    n_verts = 0
    mat_names = [
        m.get("name") if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"]
        else f"material_{i}"
        for i, m in enumerate(doc.get_list(doc.json, "materials", "materials"))
    ]  # fmt: skip
    default_mat = -1
    for p in plan:
        tnames = p.names if names == "keep" else [_strip_prefix(t) for t in p.names]
        lin = p.matrix[:3, :3]
        attrs = p.prim.get("attributes", {})
        key = (p.node, attrs["POSITION"])
        if key not in offsets:
            v = doc.accessor(attrs["POSITION"], f"{p.where} POSITION", ("VEC3",))
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                v = (v.astype(np.float64) @ lin.T + p.matrix[:3, 3]).astype(np.float32)
            if not np.isfinite(v).all():
                doc.fail(f"{p.where}: vertex positions are not finite after the node transform")
            offsets[key] = n_verts
            positions.append(v)
            if attrs.get("TEXCOORD_0") is None:
                uvs.append(None)
            else:  # glTF's UV origin is the top left; ours (OBJ's) the bottom left.
                t = doc.accessor(attrs["TEXCOORD_0"], f"{p.where} TEXCOORD_0", ("VEC2",))
                t = t.astype(np.float32)
                uvs.append(np.stack([t[:, 0], 1.0 - t[:, 1]], axis=1))
            for k, t in enumerate(p.prim.get("targets", [])):
                if t.get("POSITION") is None:
                    continue
                d = doc.accessor(t["POSITION"], f"{p.where} morph target {k}", ("VEC3",))
                with np.errstate(over="ignore", invalid="ignore"):
                    d = (d.astype(np.float64) @ lin.T).astype(np.float32)
                if not np.isfinite(d).all():
                    doc.fail(f"{p.where}: morph target {k} is not finite after the node transform")
                low = tnames[k].lower()
                if low not in deltas:
                    deltas[low] = []
                    spelling[low] = tnames[k]
                deltas[low].append((n_verts, d))
            n_verts += len(v)
        off = offsets[key]
        if p.prim.get("indices") is not None:
            idx = doc.accessor(p.prim["indices"], f"{p.where} indices", ("SCALAR",))
            idx = idx.reshape(-1).astype(np.int64)
            if idx.size and idx.max() >= p.n_vertices:
                doc.fail(f"{p.where}: index {int(idx.max())} is past the primitive's "
                         f"{p.n_vertices} vertices")  # fmt: skip
        else:
            idx = np.arange(p.n_vertices, dtype=np.int64)
        tri = _triangles(p.mode, idx)
        if p.mode not in (4, 5, 6):
            log.warning("%s: skipped a primitive of mode %s (not triangles)", path, p.mode)
        if p.prim.get("material") is None:
            if default_mat < 0:
                default_mat = len(mat_names)
                mat_names.append("default")
            mat = default_mat
        else:
            mat = p.prim["material"]
        faces.append(tri + off)
        face_mat.append(np.full(len(tri), mat, np.int16))
    if not faces or not sum(len(f) for f in faces):
        raise InputError(path, "no triangles in the scene's meshes")
    neutral = np.concatenate(positions)
    all_deltas = np.zeros((len(deltas), n_verts, 3), np.float32)
    for c, parts in enumerate(deltas.values()):
        for off, d in parts:
            all_deltas[c, off : off + len(d)] += d
    channel_names = [spelling[k] for k in deltas]
    if names == "arkit":
        renamed = [
            ARKIT_NAMES[j] if (j := arkit_index(ch)) is not None else ch for ch in channel_names
        ]
        lower = [r.lower() for r in renamed]
        channel_names = [
            r if lower.count(r.lower()) == 1 else ch
            for r, ch in zip(renamed, channel_names, strict=True)
        ]
    uv = np.concatenate(uvs) if all(u is not None for u in uvs) else None
    try:
        return Rig(
            neutral=neutral,
            faces=np.concatenate(faces).astype(np.int32),
            channel_names=tuple(channel_names),
            deltas=all_deltas,
            uv=uv,
            face_material=np.concatenate(face_mat),
            material_names=tuple(mat_names),
            name=name or path.stem,
        )
    except ConfigError as e:
        raise InputError(path, str(e)) from None


# --------------------------------------------------------------------------- textures
def _png_bytes(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@dataclass(frozen=True)
class GltfTexture:
    """The base-colour texture of a glTF file's materials.

    Attributes:
        image: (H, W, 3) uint8 RGB, rows top first (the rig's v = 1 is row 0).
        materials: names of the materials that use it (as :func:`load_gltf` names them).
    """

    image: np.ndarray
    materials: tuple[str, ...]


def load_gltf_texture(path: str | Path, *, max_side: int = 8192) -> GltfTexture | None:
    """Returns the base-colour texture most materials of a glTF/GLB file use, or None.

    The image is read like buffers (from the GLB binary chunk through a bufferView, a base64
    ``data:`` URI, or a file inside the glTF file's folder) and its header is checked before any
    pixel is decoded; PNG and JPEG only. Textures on a UV set other than ``TEXCOORD_0`` are
    ignored (facexpr reads that set only).

    Raises:
        InputError: the file or its image cannot be read, the image is not PNG/JPEG or is larger
            than ``max_side`` on a side.
    """
    import io

    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise InputError(path, "glTF file not found")
    doc = GltfDoc(path)
    mats = doc.get_list(doc.json, "materials", "materials")
    users: dict[int, list[str]] = {}
    for i, m in enumerate(mats):
        if not isinstance(m, dict):
            continue
        pbr = m.get("pbrMetallicRoughness")
        info = pbr.get("baseColorTexture") if isinstance(pbr, dict) else None
        if not isinstance(info, dict) or info.get("texCoord", 0) != 0:
            continue
        t = doc.get_int(info, "index", f"materials[{i}].baseColorTexture")
        name = m.get("name") if isinstance(m.get("name"), str) and m["name"] else f"material_{i}"
        users.setdefault(t, []).append(name)
    if not users:
        return None
    t = max(users, key=lambda k: len(users[k]))
    tex = doc.item("textures", t)
    src = doc.get_int(tex, "source", f"textures[{t}]")
    data = doc.image(src)
    where = f"images[{src}]"
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("PNG", "JPEG"):
                doc.fail(f"{where} is {im.format}, facexpr reads PNG and JPEG textures")
            w, h = im.size
            if max(w, h) > max_side:
                doc.fail(f"{where} is {w}x{h}, larger than {max_side} px on a side")
            rgb = np.asarray(im.convert("RGB"), np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        doc.fail(f"{where} cannot be decoded ({e})")
    return GltfTexture(np.ascontiguousarray(rgb), tuple(users[t]))


# --------------------------------------------------------------------------- writing
def _normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p0 = v[faces[:, 0]]
    fn = np.cross(v[faces[:, 1]] - p0, v[faces[:, 2]] - p0)
    n = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return n.astype(np.float32)


def save_gltf(
    rig: Rig,
    path: str | Path,
    *,
    animation: np.ndarray | None = None,
    fps: float = 30.0,
    colors: Mapping[str, tuple[float, float, float]] | None = None,
    per_material: bool = True,
    texture: np.ndarray | None = None,
    textured: tuple[str, ...] = ("M_Face", "M_BackHead"),
    skip: tuple[str, ...] = (),
) -> Path:
    """Writes a rig as glTF 2.0 with morph targets and, optionally, a weights animation.

    Args:
        rig: the rig (its neutral is the base mesh; identity modes are not written).
        path: ``.glb`` (binary) or ``.gltf`` (JSON with the buffer embedded as a data URI).
        animation: optional (T, C) weights, one row per frame, animating the morph targets.
        fps: frame rate of ``animation``, Hz (key times are ``t / fps`` seconds).
        colors: material name -> RGB base colour (default: facexpr's avatar colours).
        per_material: one primitive per material (else one primitive, one material).
        texture: optional (H, W, 3) uint8 RGB base-colour texture (u right, v up from the
            bottom row, the rig's UV convention), embedded as PNG and used by the ``textured``
            materials; a rig with per-corner UVs is split at its seams first
            (:meth:`Rig.split_uv_seams`).
        textured: material names that get the texture (the others keep their colours).
        skip: material names whose triangles are not written (e.g. overlay meshes that need
            translucent shaders; their vertices stay).

    Returns:
        The written path.

    Raises:
        ConfigError: bad suffix, animation shape or fps, a texture without UVs or not uint8 RGB.
    """
    pg = _pygltflib()
    from facexpr.avatars.avatar import Look

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ConfigError(f"save_gltf: {path}: use a .glb or .gltf suffix")
    if animation is not None:
        animation = np.asarray(animation, np.float32)
        if animation.ndim != 2 or animation.shape[1] != rig.n_channels or len(animation) < 1:
            raise ConfigError(
                f"save_gltf: animation must be (T, {rig.n_channels}) weights, got {animation.shape}"
            )
        if not fps > 0:
            raise ConfigError(f"save_gltf: fps must be > 0, got {fps}")

    png = None
    if texture is not None:
        tex = np.asarray(texture)
        if tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3:
            raise ConfigError(
                f"save_gltf: texture must be (H, W, 3) uint8 RGB, got {tex.shape} {tex.dtype}"
            )
        if rig.uv is None:
            raise ConfigError(f"save_gltf: rig '{rig.name}' has no UVs for the texture")
        rig, _ = rig.split_uv_seams()
        png = _png_bytes(tex)

    blob = bytearray()
    views: list[Any] = []
    accessors: list[Any] = []

    def add(arr: np.ndarray, kind: str, target: int | None, minmax: bool = False) -> int:
        arr = np.ascontiguousarray(arr, np.uint32 if arr.dtype == np.uint32 else np.float32)
        while len(blob) % 4:
            blob.append(0)
        views.append(pg.BufferView(
            buffer=0, byteOffset=len(blob), byteLength=arr.nbytes, target=target
        ))  # fmt: skip
        blob.extend(arr.tobytes())
        comp = _UINT if arr.dtype == np.uint32 else _FLOAT
        count = arr.shape[0]
        acc = pg.Accessor(bufferView=len(views) - 1, componentType=comp, count=count, type=kind)
        if minmax:
            flat = arr.reshape(count, -1)
            acc.min = [float(x) for x in flat.min(axis=0)]
            acc.max = [float(x) for x in flat.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    v = np.asarray(rig.neutral, np.float32)
    attrs = pg.Attributes(
        POSITION=add(v, "VEC3", _ARRAY_BUFFER, minmax=True),
        NORMAL=add(_normals(v.astype(np.float64), rig.faces), "VEC3", _ARRAY_BUFFER),
    )
    if rig.uv is not None and rig.uv.shape == (rig.n_vertices, 2):
        # glTF's UV origin is the top left.
        attrs.TEXCOORD_0 = add(rig.uv * [1, -1] + [0, 1], "VEC2", _ARRAY_BUFFER)
    targets = []
    for c in range(rig.n_channels):
        d = np.asarray(rig.deltas[c], np.float32)
        targets.append({"POSITION": add(d, "VEC3", _ARRAY_BUFFER, minmax=True)})
    look = Look(colors=dict(colors or {}))
    if per_material and rig.face_material is not None:
        groups = [
            (rig.material_names[m], rig.faces[rig.face_material == m])
            for m in range(len(rig.material_names))
        ]
        groups = [(n, f) for n, f in groups if len(f) and n not in skip]
    else:
        groups = [("default", rig.faces)]
    images, textures, samplers = [], [], []
    if png is not None:
        while len(blob) % 4:
            blob.append(0)
        views.append(pg.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(png)))
        blob.extend(png)
        images.append(pg.Image(bufferView=len(views) - 1, mimeType="image/png"))
        # LINEAR, LINEAR_MIPMAP_LINEAR, CLAMP_TO_EDGE: the atlas's tiles must not wrap.
        samplers.append(pg.Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071))
        textures.append(pg.Texture(sampler=0, source=0))
    materials, prims = [], []
    for mname, f in groups:
        rgb = look.color_of(mname)
        pbr = pg.PbrMetallicRoughness(
            baseColorFactor=[*rgb, 1.0], metallicFactor=0.0, roughnessFactor=0.7
        )
        if png is not None and (mname in textured or not per_material):
            pbr.baseColorFactor = [1.0, 1.0, 1.0, 1.0]
            pbr.baseColorTexture = pg.TextureInfo(index=0)
        materials.append(pg.Material(name=mname, doubleSided=True, pbrMetallicRoughness=pbr))
        idx = add(f.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)
        prims.append(pg.Primitive(
            attributes=attrs, indices=idx, material=len(materials) - 1, mode=4,
            targets=targets or None,
        ))  # fmt: skip
    mesh = pg.Mesh(
        name=rig.name, primitives=prims,
        weights=[0.0] * rig.n_channels if rig.n_channels else None,
        extras={"targetNames": list(rig.channel_names)},
    )  # fmt: skip
    animations = []
    if animation is not None:
        times = (np.arange(len(animation), dtype=np.float32) / np.float32(fps)).reshape(-1, 1)
        t_acc = add(times, "SCALAR", None, minmax=True)
        w_acc = add(animation.reshape(-1, 1), "SCALAR", None)
        animations.append(pg.Animation(
            name="expression",
            samplers=[pg.AnimationSampler(input=t_acc, output=w_acc, interpolation="LINEAR")],
            channels=[pg.AnimationChannel(
                sampler=0, target=pg.AnimationChannelTarget(node=0, path="weights")
            )],
        ))  # fmt: skip
    gltf = pg.GLTF2(
        asset=pg.Asset(version="2.0", generator="facexpr"),
        scene=0,
        scenes=[pg.Scene(nodes=[0])],
        nodes=[pg.Node(name=rig.name, mesh=0)],
        meshes=[mesh],
        materials=materials,
        accessors=accessors,
        bufferViews=views,
        buffers=[pg.Buffer(byteLength=len(blob))],
        animations=animations,
        images=images,
        textures=textures,
        samplers=samplers,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = unique_temp(path)
    except OSError as e:
        raise InputError(path, f"cannot write there ({e.strerror})") from None
    try:
        if suffix == ".glb":
            gltf.set_binary_blob(bytes(blob))
            gltf.save_binary(str(tmp))
        else:
            gltf.buffers[0].uri = "data:application/octet-stream;base64," + base64.b64encode(
                bytes(blob)
            ).decode("ascii")
            gltf.save_json(str(tmp))
        commit_temp(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise InputError(path, f"cannot write ({e.strerror})") from None
        raise
    return path


def save_avatar_gltf(avatar: Any, path: str | Path) -> Path:
    """Writes an :class:`~facexpr.avatars.avatar.Avatar` as glTF: its identity's neutral face, the
    rig's morph targets and, when it has one, its texture on the look's skin materials.

    The look's hidden materials (ICT's translucent eye overlays, opaque eyelash strips) are left
    out, so viewers without facexpr's shading show the eyes.

    Returns:
        The written path.
    """
    rig = avatar.rig.with_neutral(avatar.base)
    return save_gltf(
        rig,
        path,
        texture=avatar.texture,
        textured=tuple(avatar.look.skin_materials),
        skip=tuple(avatar.look.hidden),
    )

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
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.avatars.rig import Rig, arkit_index
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError

log = logging.getLogger(__name__)

__all__ = ["load_gltf", "save_gltf"]

_COMPONENT = {
    5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
    5126: np.float32,
}  # fmt: skip
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pygltflib() -> Any:
    try:
        import pygltflib
    except ImportError as e:
        raise MissingDependencyError("pygltflib", "all", "reading and writing glTF") from e
    return pygltflib


# --------------------------------------------------------------------------- reading
class _Reader:
    def __init__(self, gltf: Any, path: Path) -> None:
        self.gltf = gltf
        self.path = path
        self.buffers: dict[int, bytes] = {}

    def buffer(self, i: int) -> bytes:
        if i not in self.buffers:
            buf = self.gltf.buffers[i]
            if buf.uri is None:
                data = self.gltf.binary_blob()
                if data is None:
                    raise InputError(self.path, f"buffer {i} has no uri and there is no GLB blob")
            elif buf.uri.startswith("data:"):
                data = base64.b64decode(buf.uri.split(",", 1)[1])
            else:
                try:
                    data = (self.path.parent / buf.uri).read_bytes()
                except OSError as e:
                    raise InputError(self.path, f"cannot read buffer '{buf.uri}' ({e})") from e
            self.buffers[i] = data
        return self.buffers[i]

    def accessor(self, i: int) -> np.ndarray:
        acc = self.gltf.accessors[i]
        dtype = np.dtype(_COMPONENT[acc.componentType])
        n = _NCOMP[acc.type]
        if acc.bufferView is None:
            out = np.zeros((acc.count, n), dtype)
        else:
            view = self.gltf.bufferViews[acc.bufferView]
            data = self.buffer(view.buffer)
            start = (view.byteOffset or 0) + (acc.byteOffset or 0)
            item = dtype.itemsize * n
            stride = view.byteStride or item
            if stride == item:
                out = np.frombuffer(data, dtype, acc.count * n, start).reshape(acc.count, n)
            else:
                raw = np.frombuffer(data, np.uint8, stride * (acc.count - 1) + item, start)
                rows = np.lib.stride_tricks.as_strided(raw, (acc.count, item), (stride, 1))
                out = np.ascontiguousarray(rows).view(dtype).reshape(acc.count, n)
        if acc.sparse is not None:
            out = out.copy()
            sp = acc.sparse
            iv = self.gltf.bufferViews[sp.indices.bufferView]
            idt = np.dtype(_COMPONENT[sp.indices.componentType])
            idx = np.frombuffer(
                self.buffer(iv.buffer), idt, sp.count,
                (iv.byteOffset or 0) + (sp.indices.byteOffset or 0),
            )  # fmt: skip
            vv = self.gltf.bufferViews[sp.values.bufferView]
            vals = np.frombuffer(
                self.buffer(vv.buffer), dtype, sp.count * n,
                (vv.byteOffset or 0) + (sp.values.byteOffset or 0),
            ).reshape(sp.count, n)  # fmt: skip
            out[idx.astype(np.intp)] = vals
        if acc.normalized and dtype.kind in "iu":
            out = out.astype(np.float32) / np.iinfo(dtype).max
        return out


def _node_matrix(node: Any) -> np.ndarray:
    if node.matrix is not None:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.scale is not None:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation is not None:
        x, y, z, w = node.rotation
        r = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])  # fmt: skip
        rm = np.eye(4)
        rm[:3, :3] = r
        m = rm @ m
    if node.translation is not None:
        t = np.eye(4)
        t[:3, 3] = node.translation
        m = t @ m
    return m


def _strip_prefix(name: str) -> str:
    """Returns a morph target name without exporter prefix ('blendShape1.jawOpen' -> 'jawOpen')."""
    if "." in name and not name.endswith((".L", ".R", ".l", ".r")):
        name = name.rsplit(".", 1)[1]
    return name.split(":")[-1]


def _target_names(gltf: Any, mesh: Any, reader: _Reader) -> list[str]:
    n = len(mesh.primitives[0].targets or [])
    for extras in (mesh.extras, mesh.primitives[0].extras):
        names = (extras or {}).get("targetNames") if isinstance(extras, dict) else None
        if names and len(names) == n:
            return [str(x) for x in names]
    out = []
    for k, t in enumerate(mesh.primitives[0].targets or []):
        acc = t.get("POSITION") if isinstance(t, dict) else getattr(t, "POSITION", None)
        name = gltf.accessors[acc].name if acc is not None else None
        out.append(str(name) if name else f"{mesh.name or 'mesh'}_target{k}")
    return out


def _triangles(mode: int | None, idx: np.ndarray) -> np.ndarray:
    mode = 4 if mode is None else mode
    if mode == 4:
        return idx.reshape(-1, 3)
    if mode == 5:  # strip: alternate winding
        tri = np.stack([idx[:-2], idx[1:-1], idx[2:]], axis=1)
        tri[1::2] = tri[1::2][:, [1, 0, 2]]
        return tri
    if mode == 6:  # fan
        return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], axis=1)
    return np.zeros((0, 3), idx.dtype)


def load_gltf(
    path: str | Path, *, names: Literal["strip", "arkit", "keep"] = "strip", name: str | None = None
) -> Rig:
    """Returns the rig of a glTF 2.0 / GLB file with morph targets (all primitives merged).

    Args:
        path: a .glb or .gltf file.
        names: channel naming: ``"strip"`` removes exporter prefixes (``blendShape1.``),
            ``"arkit"`` also renames channels that match an ARKit name to it (``mouthSmile_L``
            -> ``mouthSmileLeft``; kept when two would collide), ``"keep"`` keeps names as stored.
        name: rig name (default the file stem).

    Raises:
        InputError: the file cannot be read or has no triangle mesh.
        ConfigError: bad ``names``.
    """
    if names not in ("strip", "arkit", "keep"):
        raise ConfigError(f"load_gltf: names must be 'strip', 'arkit' or 'keep', got {names!r}")
    pg = _pygltflib()
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "glTF file not found")
    try:
        gltf = pg.GLTF2().load(str(path))
    except Exception as e:
        raise InputError(path, f"cannot parse glTF ({e})") from e
    if gltf is None:
        raise InputError(path, "cannot parse glTF")
    reader = _Reader(gltf, path)

    # Mesh nodes with world matrices, from the default scene's roots (or all meshes if none).
    items: list[tuple[int, int, np.ndarray]] = []
    if gltf.scenes:
        scene = gltf.scenes[gltf.scene or 0]
        stack = [(i, np.eye(4)) for i in scene.nodes or []]
        while stack:
            i, parent = stack.pop(0)
            node = gltf.nodes[i]
            m = parent @ _node_matrix(node)
            if node.mesh is not None:
                items.append((i, node.mesh, m))
            stack.extend((c, m) for c in node.children or [])
    else:
        items = [(-1, k, np.eye(4)) for k in range(len(gltf.meshes))]
    if not items:
        raise InputError(path, "no mesh in the scene")

    positions: list[np.ndarray] = []
    uvs: list[np.ndarray | None] = []
    faces: list[np.ndarray] = []
    face_mat: list[np.ndarray] = []
    deltas: dict[str, list[tuple[int, np.ndarray]]] = {}
    order: list[str] = []
    offsets: dict[tuple[int, int], int] = {}
    n_verts = 0
    mat_names = [m.name or f"material_{i}" for i, m in enumerate(gltf.materials or [])]
    default_mat = -1
    for node_i, mesh_i, m in items:
        mesh = gltf.meshes[mesh_i]
        tnames = _target_names(gltf, mesh, reader)
        if names != "keep":
            tnames = [_strip_prefix(t) for t in tnames]
        lin = m[:3, :3]
        for prim in mesh.primitives:
            pos_acc = prim.attributes.POSITION
            if pos_acc is None:
                continue
            key = (node_i, pos_acc)
            if key not in offsets:
                p = reader.accessor(pos_acc).astype(np.float64)
                offsets[key] = n_verts
                positions.append((p @ lin.T + m[:3, 3]).astype(np.float32))
                uv_acc = prim.attributes.TEXCOORD_0
                if uv_acc is None:
                    uvs.append(None)
                else:  # glTF's UV origin is the top left; ours (OBJ's) the bottom left.
                    t = reader.accessor(uv_acc).astype(np.float32)
                    uvs.append(np.stack([t[:, 0], 1.0 - t[:, 1]], axis=1))
                for k, t in enumerate(prim.targets or []):
                    acc = t.get("POSITION") if isinstance(t, dict) else None
                    if acc is None or k >= len(tnames):
                        continue
                    d = (reader.accessor(acc).astype(np.float64) @ lin.T).astype(np.float32)
                    if tnames[k] not in deltas:
                        deltas[tnames[k]] = []
                        order.append(tnames[k])
                    deltas[tnames[k]].append((n_verts, d))
                n_verts += len(p)
            off = offsets[key]
            count = len(positions[[*offsets].index(key)])
            if prim.indices is not None:
                idx = reader.accessor(prim.indices).reshape(-1).astype(np.int64)
            else:
                idx = np.arange(count, dtype=np.int64)
            tri = _triangles(prim.mode, idx)
            if prim.mode not in (None, 4, 5, 6):
                log.warning("%s: skipped a primitive of mode %s (not triangles)", path, prim.mode)
            if prim.material is None:
                if default_mat < 0:
                    default_mat = len(mat_names)
                    mat_names.append("default")
                mat = default_mat
            else:
                mat = prim.material
            faces.append(tri + off)
            face_mat.append(np.full(len(tri), mat, np.int16))
    if not faces or not sum(len(f) for f in faces):
        raise InputError(path, "no triangles in the scene's meshes")
    neutral = np.concatenate(positions)
    all_deltas = np.zeros((len(order), n_verts, 3), np.float32)
    for c, ch in enumerate(order):
        for off, d in deltas[ch]:
            all_deltas[c, off : off + len(d)] += d
    channel_names = list(order)
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
) -> Path:
    """Writes a rig as glTF 2.0 with morph targets and, optionally, a weights animation.

    Args:
        rig: the rig (its neutral is the base mesh; identity modes are not written).
        path: ``.glb`` (binary) or ``.gltf`` (JSON with the buffer embedded as a data URI).
        animation: optional (T, C) weights, one row per frame, animating the morph targets.
        fps: frame rate of ``animation``, Hz (key times are ``t / fps`` seconds).
        colors: material name -> RGB base colour (default: facexpr's avatar colours).
        per_material: one primitive per material (else one primitive, one material).

    Returns:
        The written path.

    Raises:
        ConfigError: bad suffix, animation shape or fps.
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
        groups = [(n, f) for n, f in groups if len(f)]
    else:
        groups = [("default", rig.faces)]
    materials, prims = [], []
    for mname, f in groups:
        rgb = look.color_of(mname)
        materials.append(pg.Material(
            name=mname, doubleSided=True,
            pbrMetallicRoughness=pg.PbrMetallicRoughness(
                baseColorFactor=[*rgb, 1.0], metallicFactor=0.0, roughnessFactor=0.7
            ),
        ))  # fmt: skip
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
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if suffix == ".glb":
        gltf.set_binary_blob(bytes(blob))
        gltf.save_binary(str(tmp))
    else:
        gltf.buffers[0].uri = "data:application/octet-stream;base64," + base64.b64encode(
            bytes(blob)
        ).decode("ascii")
        gltf.save_json(str(tmp))
    tmp.replace(path)
    return path

"""ICT FaceKit light model (MIT, ICT-VGL/ICT-FaceKit) as a :class:`~facexpr.avatars.rig.Rig`.

Three sources load:

- the compact asset shipped in the package (``assets/ict_facekit_light.npz``, built by
  ``scripts/build_ict_asset.py``): the whole head topology, the 53 expression shapes as float16
  deltas (max abs error 0.001 cm) and the first 50 identity modes as float16 (0.0005 cm);
- a lossless npz with the same array names (``neutral``, ``quads``, ``quad_material``,
  ``material_names``, ``uv``, ``quad_uv``, ``expression_names``, ``expression_deltas``,
  ``identity_deltas``, ``landmarks68``), such as the full 100-mode ``ict_facekit.npz``;
- a user's upstream ``FaceXModel/`` folder: ``generic_neutral_mesh.obj``, ``vertex_indices.json``
  and one OBJ per expression shape and identity mode (``jawOpen.obj``, ``identity000.obj`` ...).

Coordinates are centimetres, +y up, the face looks toward +z and +x is the subject's left.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.avatars.rig import Rig
from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "ICT_LANDMARKS68",
    "ICT_PARTS",
    "default_asset_path",
    "load_ict",
    "load_ict_folder",
    "load_ict_npz",
    "read_obj",
    "triangulate",
]

# Vertex ranges (inclusive start, exclusive stop) of the parts of the ICT topology.
ICT_PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "narrow_face": (0, 6706),
    "head_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_sockets": (13294, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "sclera_left": (21451, 22221),
    "iris_left": (22221, 23021),
    "sclera_right": (23021, 23791),
    "iris_right": (23791, 24591),
    "lacrimal_fluid": (24591, 24999),
    "eye_blend": (24999, 25047),
    "eye_occlusion": (25047, 25351),
    "eyelashes": (25351, 26719),
}

# Multi-PIE 68 landmarks as vertex ids (``idx_to_landmark_verts`` of vertex_indices.json).
ICT_LANDMARKS68: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
    6207, 6470, 5517, 5966,
)  # fmt: skip

_ASSET = "ict_facekit_light.npz"
_NEUTRAL_OBJ = "generic_neutral_mesh.obj"
_INDEX_JSON = "vertex_indices.json"
_IDENTITY_OBJ = re.compile(r"^identity(\d+)\.obj$")


def default_asset_path() -> Path:
    """Returns the path of the ICT asset shipped inside the package."""
    return Path(str(resources.files("facexpr.avatars") / "assets" / _ASSET))


def triangulate(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (F, 3) int32 triangles and (F,) int64 source-quad ids from (Q, 4) quads.

    A quad (a, b, c, d) becomes (a, b, c) and (a, c, d); a 4th index of -1 marks a triangle. The
    triangles keep the quads' order, so per-quad attributes index with the returned ids.
    """
    quads = np.asarray(quads)
    is_quad = quads[:, 3] >= 0
    n = len(quads)
    first = quads[:, [0, 1, 2]]
    second = quads[is_quad][:, [0, 2, 3]]
    # Interleave: quad i -> rows [first_i, second_i (if quad)].
    counts = 1 + is_quad.astype(np.int64)
    src = np.repeat(np.arange(n), counts)
    out = np.empty((len(src), 3), np.int32)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out[start] = first
    out[start[is_quad] + 1] = second
    return out, src


def _corner_ids(src: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Returns (F, 3) corner slots (0..3) of each triangle's corners in its source quad."""
    corner = np.tile(np.array([0, 1, 2], np.int64), (len(src), 1))
    second = np.zeros(len(src), bool)
    second[1:] = src[1:] == src[:-1]
    corner[second] = [0, 2, 3]
    return corner


def _rig_from_arrays(
    arrays: dict[str, np.ndarray], names: tuple[str, ...], n_identity: int | None, label: str
) -> Rig:
    quads = arrays["quads"]
    faces, src = triangulate(quads)
    uv = None
    if "uv" in arrays and "quad_uv" in arrays:
        corner = _corner_ids(src, quads)
        uv_ids = arrays["quad_uv"][src[:, None], corner]
        uv = np.asarray(arrays["uv"], np.float32)[uv_ids]
    mat = arrays.get("quad_material")
    basis = arrays.get("identity_deltas")
    if basis is not None and n_identity is not None:
        if n_identity > basis.shape[0]:
            raise ConfigError(
                f"{label}: asked for {n_identity} identity modes, the model has {basis.shape[0]}"
            )
        basis = basis[:n_identity]
    lmk = arrays.get("landmarks68")
    return Rig(
        neutral=arrays["neutral"],
        faces=faces,
        channel_names=names,
        deltas=arrays["expression_deltas"],
        uv=uv,
        face_material=None if mat is None else mat[src],
        material_names=tuple(str(m) for m in arrays.get("material_names", ())),
        identity_basis=basis,
        landmark_vertices=np.asarray(ICT_LANDMARKS68 if lmk is None else lmk),
        name="ict",
    )


def load_ict_npz(path: str | Path, *, n_identity: int | None = None) -> Rig:
    """Returns the ICT rig stored in an npz (the shipped asset or the lossless full model).

    Only the 53 channels of :data:`facexpr.core.arkit.ICT_CHANNELS` are kept, in that order
    (extra upstream shapes such as ``PupilDilate_L`` are dropped); float16 arrays are kept as
    float16 and promoted when evaluated.

    Args:
        path: the .npz file.
        n_identity: keep the first this many identity modes (default all).

    Raises:
        InputError: the file is missing, unreadable or lacks arrays or channels.
        ConfigError: more identity modes asked for than stored.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ICT FaceKit npz not found")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read the npz ({e})") from e
    need = ("neutral", "quads", "expression_names", "expression_deltas")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise InputError(path, f"not an ICT FaceKit npz: missing arrays {missing}")
    have = [str(n) for n in arrays["expression_names"]]
    absent = [n for n in ICT_CHANNELS if n not in have]
    if absent:
        raise InputError(path, f"missing ICT expression shapes {absent}")
    order = [have.index(n) for n in ICT_CHANNELS]
    if order != list(range(len(have))):
        arrays["expression_deltas"] = arrays["expression_deltas"][order]
    return _rig_from_arrays(arrays, ICT_CHANNELS, n_identity, str(path))


def read_obj(path: str | Path, *, faces: bool = True) -> dict[str, np.ndarray]:
    """Returns the arrays of a Wavefront OBJ with quads/triangles and optional per-corner UVs.

    Args:
        path: the .obj file.
        faces: also parse faces, UVs and ``usemtl`` materials (else only ``v`` lines).

    Returns:
        ``neutral`` (V, 3) float32, and with ``faces``: ``quads`` (Q, 4) int32 0-based (-1 in the
        4th slot for triangles), ``uv`` (T, 2) float32, ``quad_uv`` (Q, 4) int32,
        ``quad_material`` (Q,) int16 and ``material_names`` (M,) str.

    Raises:
        InputError: the file is missing or malformed (faces with more than 4 corners).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(path, f"cannot read OBJ ({e})") from e
    lines = text.splitlines()
    v = [ln[2:] for ln in lines if ln.startswith("v ")]
    if not v:
        raise InputError(path, "OBJ has no vertices")
    try:
        verts = np.array(" ".join(v).split(), np.float32).reshape(len(v), -1)[:, :3]
    except ValueError as e:
        raise InputError(path, f"malformed vertex lines ({e})") from e
    out = {"neutral": np.ascontiguousarray(verts)}
    if not faces:
        return out
    vt = [ln[3:] for ln in lines if ln.startswith("vt ")]
    uv = np.array(" ".join(vt).split(), np.float32).reshape(len(vt), -1)[:, :2] if vt else None
    quads: list[list[int]] = []
    quad_uv: list[list[int]] = []
    mats: list[int] = []
    names: list[str] = []
    cur = -1
    for ln in lines:
        if ln.startswith("usemtl "):
            name = ln[7:].strip()
            if name not in names:
                names.append(name)
            cur = names.index(name)
        elif ln.startswith("f "):
            corners = ln[2:].split()
            if not 3 <= len(corners) <= 4:
                raise InputError(path, f"face with {len(corners)} corners: {ln!r}")
            ids = [c.split("/") for c in corners]
            q = [int(c[0]) - 1 for c in ids] + [-1] * (4 - len(ids))
            t = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in ids] + [-1] * (4 - len(ids))
            quads.append(q)
            quad_uv.append(t)
            mats.append(max(cur, 0))
    if not quads:
        raise InputError(path, "OBJ has no faces")
    out["quads"] = np.array(quads, np.int32)
    if uv is not None and min(min(t[:3]) for t in quad_uv) >= 0:
        out["uv"] = uv
        out["quad_uv"] = np.array(quad_uv, np.int32)
    out["quad_material"] = np.array(mats, np.int16)
    out["material_names"] = np.array(names or ["default"])
    return out


def load_ict_folder(
    folder: str | Path,
    *,
    n_identity: int | None = None,
    on_missing: Literal["raise", "warn", "zero"] = "warn",
) -> Rig:
    """Returns the ICT rig of an upstream ``FaceXModel/`` folder (OBJs + vertex_indices.json).

    Expression channels are the shapes ``vertex_indices.json`` lists, in its order.

    Args:
        folder: the folder holding ``generic_neutral_mesh.obj`` and ``vertex_indices.json``.
        n_identity: read the first this many ``identityNNN.obj`` (default all present).
        on_missing: what to do with listed shapes whose OBJ is absent: ``"raise"`` an error,
            ``"warn"`` and leave the channel out, or ``"zero"``: warn and keep the channel with zero
            deltas (so the channels are still all the listed ones).

    Raises:
        InputError: the folder or its neutral mesh / index is missing, an OBJ's vertex count
            differs from the neutral's, or (``on_missing="raise"``) a listed shape is absent.
        ConfigError: bad ``on_missing``.
    """
    if on_missing not in ("raise", "warn", "zero"):
        raise ConfigError(f"on_missing must be 'raise', 'warn' or 'zero', got {on_missing!r}")
    folder = Path(folder)
    if not (folder / _NEUTRAL_OBJ).is_file():
        raise InputError(folder, f"not an ICT FaceKit folder: no {_NEUTRAL_OBJ}")
    index_path = folder / _INDEX_JSON
    try:
        index = json.loads(index_path.read_text())
        listed = [str(n) for n in index["expressions"]]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(index_path, f"cannot read the expression list ({e})") from e
    arrays = read_obj(folder / _NEUTRAL_OBJ)
    neutral = arrays["neutral"]

    def shape(path: Path) -> np.ndarray:
        v = read_obj(path, faces=False)["neutral"]
        if v.shape != neutral.shape:
            raise InputError(path, f"has {len(v)} vertices, the neutral mesh {len(neutral)}")
        return v - neutral

    names: list[str] = []
    deltas: list[np.ndarray] = []
    absent: list[str] = []
    for name in listed:
        path = folder / f"{name}.obj"
        if path.is_file():
            names.append(name)
            deltas.append(shape(path))
        else:
            absent.append(name)
            if on_missing == "zero":
                names.append(name)
                deltas.append(np.zeros_like(neutral))
    if absent:
        msg = f"{len(absent)} of {len(listed)} listed expression OBJs are missing: {absent}"
        if on_missing == "raise":
            raise InputError(folder, msg)
        log.warning(
            "%s: %s (%s)", folder, msg, "zero deltas" if on_missing == "zero" else "dropped"
        )
    ids = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _IDENTITY_OBJ.match(p.name))
    )
    if n_identity is not None:
        if n_identity > len(ids):
            raise ConfigError(f"{folder}: asked for {n_identity} identity modes, found {len(ids)}")
        ids = ids[:n_identity]
    if ids:
        arrays["identity_deltas"] = np.stack([shape(p) for _, p in ids])
    lmk = index.get("idx_to_landmark_verts")
    if lmk is not None:
        arrays["landmarks68"] = np.asarray(lmk, np.int64)
    arrays["expression_deltas"] = (
        np.stack(deltas) if deltas else np.zeros((0, *neutral.shape), np.float32)
    )
    return _rig_from_arrays(arrays, tuple(names), None, str(folder))


@cache
def _shipped(n_identity: int | None) -> Rig:
    path = default_asset_path()
    if not path.is_file():
        raise InputError(path, "the shipped ICT asset is missing: reinstall facexpr")
    return load_ict_npz(path, n_identity=n_identity)


def load_ict(
    path: str | Path | None = None,
    *,
    n_identity: int | None = None,
    on_missing: Literal["raise", "warn", "zero"] = "warn",
) -> Rig:
    """Returns the ICT FaceKit rig: the shipped asset, or a user's npz or upstream folder.

    The shipped rig is cached (it is immutable), so repeated calls are free.

    Args:
        path: None for the asset shipped in the package (53 channels, 50 identity modes), an
            ``.npz`` with the arrays of ``scripts/build_ict_asset.py`` / the full model, or an
            upstream ``FaceXModel/`` folder (or its parent ``ICT-FaceKit/`` clone).
        n_identity: keep the first this many identity modes (default all).
        on_missing: for folders, see :func:`load_ict_folder`.

    Raises:
        InputError: the path is missing or not an ICT model.
        ConfigError: bad options.
    """
    if path is None:
        return _shipped(n_identity)
    path = Path(path)
    if path.is_dir():
        if not (path / _NEUTRAL_OBJ).is_file() and (path / "FaceXModel" / _NEUTRAL_OBJ).is_file():
            path = path / "FaceXModel"
        return load_ict_folder(path, n_identity=n_identity, on_missing=on_missing)
    if path.suffix.lower() == ".npz":
        return load_ict_npz(path, n_identity=n_identity)
    raise InputError(path, "expected an ICT FaceKit .npz or a FaceXModel/ folder")

"""Hostile glTF/GLB avatars for ``facexpr animate --avatar FILE --gltf out.glb``: buffer URIs that
leave the folder (absolute, ``../``, ``file:``, percent-encoded, symlinks, ``/dev/zero``,
``/proc/self/environ``), node cycles, counts that disagree with the buffers, unknown types, views
out of bounds, NaN positions, truncated and malformed GLB containers.

The good avatar these start from (4 vertices, 2 triangles, morph targets jawOpen and
mouthSmileLeft) is written here with the standard library; the control cases check that it still
animates (exit 0)."""

from __future__ import annotations

import base64
import copy
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cases_tables import table_rows, write_table
from corpus import Case, CaseDirs, Run, Setup

Doc = dict[str, Any]

_POS = struct.pack("<12f", 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0)
_IDX = struct.pack("<6I", 0, 1, 2, 0, 2, 3)
_T0 = struct.pack("<12f", 0, -0.1, 0, 0, -0.1, 0, 0, 0, 0, 0, 0, 0)
_T1 = struct.pack("<12f", 0.05, 0, 0, 0, 0, 0, 0, 0.05, 0, 0, 0, 0)
BIN = _POS + _IDX + _T0 + _T1  # 168 bytes


def base_doc() -> Doc:
    """Returns the good avatar's glTF JSON (buffer 0: the 168-byte BIN, no uri)."""
    views = [(0, 48, 34962), (48, 24, 34963), (72, 48, 34962), (120, 48, 34962)]
    return {
        "asset": {"version": "2.0", "generator": "facexpr hostile corpus"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [
            {
                "name": "face",
                "primitives": [
                    {
                        "attributes": {"POSITION": 0},
                        "indices": 1,
                        "targets": [{"POSITION": 2}, {"POSITION": 3}],
                    }
                ],
                "extras": {"targetNames": ["jawOpen", "mouthSmileLeft"]},
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 4,
                "type": "VEC3",
                "min": [0, 0, 0],
                "max": [1, 1, 0],
            },
            {"bufferView": 1, "componentType": 5125, "count": 6, "type": "SCALAR"},
            {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 3, "componentType": 5126, "count": 4, "type": "VEC3"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": o, "byteLength": n, "target": t} for o, n, t in views
        ],
        "buffers": [{"byteLength": len(BIN)}],
    }


def glb(doc: Doc, binary: bytes | None = BIN) -> bytes:
    """Returns a GLB container of ``doc`` and ``binary`` (no BIN chunk when ``None``)."""
    j = json.dumps(doc).encode()
    j += b" " * (-len(j) % 4)
    out = struct.pack("<I4s", len(j), b"JSON") + j
    if binary is not None:
        b = binary + b"\0" * (-len(binary) % 4)
        out += struct.pack("<I4s", len(b), b"BIN\0") + b
    return struct.pack("<4sII", b"glTF", 2, 12 + len(out)) + out


def animate_avatar(dirs: CaseDirs, avatar: Path) -> list[str]:
    """Returns the ``facexpr animate`` arguments exporting a GLB of ``avatar`` into ``out/``."""
    table = write_table(dirs, table_rows())
    return ["animate", str(table), "--avatar", str(avatar), "--gltf", str(dirs.out / "anim.glb")]


_NAMES = r"avatar\.gl(b|tf)"


def doc_case(
    name: str,
    edit: Callable[[Doc, CaseDirs], Any],
    problem: str,
    *,
    binary: Callable[[bytes], bytes | None] | None = None,
    forbidden: tuple[str, ...] = (),
    **kw: Any,
) -> Case:
    """A case whose avatar is the good GLB with its JSON changed by ``edit(doc, dirs)`` (which
    changes ``doc`` in place) and its BIN chunk by ``binary``."""

    def build(dirs: CaseDirs) -> Setup:
        doc = base_doc()
        edit(doc, dirs)
        p = dirs.inp / "avatar.glb"
        p.write_bytes(glb(doc, binary(BIN) if binary else BIN))
        return Setup(animate_avatar(dirs, p), p, forbidden=forbidden, names=_NAMES)

    return Case(name=f"gltf-{name}", family="gltf", build=build, problem=problem, **kw)


def bytes_case(
    name: str, make: Callable[[], bytes], problem: str, filename: str = "avatar.glb", **kw: Any
) -> Case:
    """A case whose avatar file holds ``make()``."""

    def build(dirs: CaseDirs) -> Setup:
        p = dirs.inp / filename
        p.write_bytes(make())
        return Setup(animate_avatar(dirs, p), p, names=_NAMES)

    return Case(name=f"gltf-{name}", family="gltf", build=build, problem=problem, **kw)


def _uri(
    value: Callable[[CaseDirs], str], byte_length: int = len(BIN)
) -> Callable[[Doc, CaseDirs], None]:
    def edit(doc: Doc, dirs: CaseDirs) -> None:
        doc["buffers"] = [{"uri": value(dirs), "byteLength": byte_length}]

    return edit


def _external_build(link_to_canary: bool, fifo: bool = False) -> Callable[[CaseDirs], Setup]:
    """A .gltf with its buffer in mesh.bin beside it: a real file (good), a link to the canary, or
    a FIFO."""

    def build(dirs: CaseDirs) -> Setup:
        doc = base_doc()
        doc["buffers"] = [{"uri": "mesh.bin", "byteLength": len(BIN)}]
        b = dirs.inp / "mesh.bin"
        if link_to_canary:
            os.symlink(dirs.canary_file, b)
        elif fifo:
            os.mkfifo(b)
        else:
            b.write_bytes(BIN)
        p = dirs.inp / "avatar.gltf"
        p.write_text(json.dumps(doc))
        return Setup(animate_avatar(dirs, p), p, names=_NAMES)

    return build


def _control_post(dirs: CaseDirs, run: Run) -> list[str]:
    out = dirs.out / "anim.glb"
    return [] if out.is_file() and out.read_bytes()[:4] == b"glTF" else ["no anim.glb written"]


def _set(path: str, value: Any) -> Callable[[Doc, CaseDirs], None]:
    """Sets ``doc[a][i][b]...`` for ``path`` 'a.i.b' (integers index lists)."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def edit(doc: Doc, dirs: CaseDirs) -> None:
        d: Any = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = copy.deepcopy(value)

    return edit


def _nan_positions(b: bytes) -> bytes:
    return struct.pack("<12f", *([float("nan")] * 12)) + b[48:]


def _inf_positions(b: bytes) -> bytes:
    return struct.pack("<12f", *([float("inf"), 0, 0] * 4)) + b[48:]


def _truncated() -> bytes:
    data = glb(base_doc())
    return data[: len(data) * 6 // 10]


def _bad_magic() -> bytes:
    return b"glTX" + glb(base_doc())[4:]


def _version3() -> bytes:
    data = bytearray(glb(base_doc()))
    struct.pack_into("<I", data, 4, 3)
    return bytes(data)


def _json_chunk_too_long() -> bytes:
    data = bytearray(glb(base_doc()))
    struct.pack_into("<I", data, 12, 0x7FFFFFF0)
    return bytes(data)


def _json_chunk_garbage() -> bytes:
    junk = b"\x00\xff{{{not json" + b"\x01" * 20
    junk += b" " * (-len(junk) % 4)
    body = struct.pack("<I4s", len(junk), b"JSON") + junk
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def _bin_chunk_huge_length() -> bytes:
    data = bytearray(glb(base_doc()))
    j_len = struct.unpack_from("<I", data, 12)[0]
    struct.pack_into("<I", data, 20 + j_len, 0x7FFFFFF0)
    return bytes(data)


def _cycle(doc: Doc, dirs: CaseDirs) -> None:
    doc["nodes"] = [{"mesh": 0, "children": [1]}, {"children": [0]}]


def _self_child(doc: Doc, dirs: CaseDirs) -> None:
    doc["nodes"] = [{"mesh": 0, "children": [0]}]


def _diamond(doc: Doc, dirs: CaseDirs) -> None:
    # 30 levels, each node has two children that are the same node: 2^30 paths, 31 nodes.
    doc["nodes"] = [{"children": [k + 1, k + 1]} for k in range(30)] + [{"mesh": 0}]


def _b64(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


_CYCLE = r"cycle|loop|twice|more than once|recurs|ancestor|visited|already"
_OUTSIDE = r"outside|absolute|\.\.|not allowed|escapes|refus|symbolic link|symlink|uri"
_COUNT = r"count|exceeds|out of (range|bounds)|too (large|big|short|small)|buffer|view|accessor"
_TYPE = r"type|accessor|component"
_CORRUPT = r"glb|gltf|corrupt|truncated|parse|magic|version|chunk|not valid|json"

CASES: list[Case] = [
    doc_case(
        "control-glb",
        lambda d, _: None,
        r".",
        expect_rc=(0,),
        post=_control_post,
        note="control: the base avatar animates (exit 0)",
    ),
    Case(
        "gltf-control-external-bin",
        "gltf",
        _external_build(False),
        r".",
        expect_rc=(0,),
        post=_control_post,
        note="control: a .gltf with mesh.bin beside it still works",
    ),
    doc_case(
        "control-data-uri", _uri(lambda dirs: _b64(BIN)), r".", expect_rc=(0,), post=_control_post
    ),
    doc_case(
        "uri-absolute-canary",
        _uri(lambda dirs: str(dirs.canary_file)),
        _OUTSIDE,
        note="the buffer is /.../canary/secret.bin: it would be copied into out.glb",
    ),
    doc_case("uri-dotdot-canary", _uri(lambda dirs: "../canary/secret.bin"), _OUTSIDE),
    doc_case("uri-sub-dotdot-canary", _uri(lambda dirs: "sub/../../canary/secret.bin"), _OUTSIDE),
    doc_case(
        "uri-percent-dotdot",
        _uri(lambda dirs: "%2E%2E/canary/secret.bin"),
        _OUTSIDE + r"|not found|cannot read",
    ),
    doc_case(
        "uri-file-scheme",
        _uri(lambda dirs: "file://" + str(dirs.canary_file)),
        _OUTSIDE + r"|scheme|not supported",
    ),
    doc_case(
        "uri-etc-passwd", _uri(lambda dirs: "/etc/passwd"), _OUTSIDE, forbidden=("/etc/passwd",)
    ),
    doc_case(
        "uri-proc-self-environ",
        _uri(lambda dirs: "/proc/self/environ"),
        _OUTSIDE,
        forbidden=("/proc/self/environ",),
        note="the environment (with its secrets) would land in out.glb",
    ),
    doc_case(
        "uri-dev-zero",
        _uri(lambda dirs: "/dev/zero"),
        _OUTSIDE,
        forbidden=("/dev/zero",),
        note="reading /dev/zero never ends: 9.8 GB in the issue",
    ),
    Case(
        "gltf-uri-symlink-out",
        "gltf",
        _external_build(True),
        _OUTSIDE,
        note="mesh.bin beside the .gltf is a link to the canary",
    ),
    Case(
        "gltf-uri-fifo",
        "gltf",
        _external_build(False, fifo=True),
        r"not a (regular|plain) file|fifo|special|pipe",
        timeout_s=15,
    ),
    doc_case(
        "uri-bad-base64",
        _uri(lambda dirs: "data:application/octet-stream;base64,!!!@@@"),
        r"base64|data uri|data:|corrupt|buffer",
    ),
    doc_case(
        "buffer-bytelength-lie",
        _set("buffers.0.byteLength", 10**12),
        _COUNT,
        note="the buffer claims 1 TB",
    ),
    doc_case(
        "node-cycle",
        _cycle,
        _CYCLE,
        timeout_s=15,
        note="nodes 0 -> 1 -> 0: looped forever, 3.4 GB in 60 s",
    ),
    doc_case("node-self-child", _self_child, _CYCLE, timeout_s=15),
    doc_case(
        "node-diamond-2e30",
        _diamond,
        _CYCLE + r"|parent|too many",
        timeout_s=15,
        note="31 nodes, each child listed twice: 2^30 paths",
    ),
    doc_case("scene-out-of-range", _set("scene", 5), r"scene|out of range|index"),
    doc_case("node-mesh-out-of-range", _set("nodes.0.mesh", 7), r"mesh|out of range|index"),
    doc_case("scene-node-out-of-range", _set("scenes.0.nodes", [9]), r"node|out of range|index"),
    doc_case(
        "morph-count-mismatch",
        _set("accessors.2.count", 2),
        _COUNT + r"|target|morph",
        note="a morph target with 2 deltas for 4 vertices: 4.8 GB in the issue",
    ),
    doc_case(
        "accessor-400m-vertices",
        _set("accessors.0.count", 400_000_000),
        _COUNT,
        note="a 200-byte GLB claiming 400 million vertices",
    ),
    doc_case("accessor-negative-count", _set("accessors.0.count", -5), _COUNT + r"|negative"),
    doc_case("accessor-type-vec7", _set("accessors.0.type", "VEC7"), _TYPE),
    doc_case("accessor-component-9999", _set("accessors.0.componentType", 9999), _TYPE),
    doc_case("indices-float", _set("accessors.1.componentType", 5126), _TYPE + r"|indices"),
    doc_case("view-offset-out-of-bounds", _set("bufferViews.0.byteOffset", 10_000), _COUNT),
    doc_case("view-length-out-of-bounds", _set("bufferViews.0.byteLength", 10_000), _COUNT),
    doc_case("accessor-offset-past-view", _set("accessors.0.byteOffset", 40), _COUNT),
    doc_case("view-index-out-of-range", _set("accessors.0.bufferView", 42), _COUNT + r"|index"),
    doc_case("buffer-index-out-of-range", _set("bufferViews.0.buffer", 3), _COUNT + r"|index"),
    doc_case("view-stride-2e31", _set("bufferViews.0.byteStride", 2**31), _COUNT + r"|stride"),
    doc_case(
        "sparse-400m",
        _set(
            "accessors.0.sparse",
            {
                "count": 400_000_000,
                "indices": {"bufferView": 1, "componentType": 5125},
                "values": {"bufferView": 0},
            },
        ),
        _COUNT + r"|sparse",
    ),
    doc_case(
        "indices-out-of-range",
        lambda d, _: None,
        r"index|indices|vertex|out of range",
        binary=lambda b: b[:48] + struct.pack("<6I", 0, 1, 99, 0, 2, 3) + b[72:],
    ),
    doc_case("nan-positions", lambda d, _: None, r"nan|finite|position", binary=_nan_positions),
    doc_case("inf-positions", lambda d, _: None, r"nan|inf|finite|position", binary=_inf_positions),
    doc_case("no-bin-chunk", lambda d, _: None, r"buffer|blob|bin|chunk", binary=lambda b: None),
    bytes_case("truncated", _truncated, _CORRUPT),
    bytes_case("bad-magic", _bad_magic, _CORRUPT),
    bytes_case("version-3", _version3, _CORRUPT),
    bytes_case("json-chunk-too-long", _json_chunk_too_long, _CORRUPT),
    bytes_case("json-chunk-garbage", _json_chunk_garbage, _CORRUPT),
    bytes_case("bin-chunk-too-long", _bin_chunk_huge_length, _CORRUPT + r"|" + _COUNT),
    bytes_case("zero-byte", lambda: b"", r"empty|0 bytes|" + _CORRUPT),
    bytes_case(
        "gltf-nested-100k",
        lambda: b"[" * 100_000 + b"]" * 100_000,
        _CORRUPT + r"|deep|nest",
        filename="avatar.gltf",
    ),
    bytes_case("gltf-json-list", lambda: b"[1, 2, 3]", _CORRUPT, filename="avatar.gltf"),
]

"""Hostile glTF/GLB files built at test time (no committed binaries), for the reader's tests.

:func:`hostile_cases` writes each case into a folder and returns (name, path, expected error
regex). A ``canary.bin`` is planted *outside* that folder: no case may get its bytes into any
output. Imported by path from other test folders (pytest runs in importlib mode).
"""

from __future__ import annotations

import copy
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

CANARY = b"FACEXPR-CANARY-7f3a9c-not-to-be-read"

_TRI = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)


def glb_bytes(doc: dict, blob: bytes = b"") -> bytes:
    """Returns a GLB file: 12-byte header, JSON chunk, optional BIN chunk (both 4-byte padded)."""
    j = json.dumps(doc).encode()
    j += b" " * (-len(j) % 4)
    body = struct.pack("<II", len(j), 0x4E4F534A) + j
    if blob:
        b = blob + b"\0" * (-len(blob) % 4)
        body += struct.pack("<II", len(b), 0x004E4942) + b
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def rig_doc(n_targets: int = 2, names: list[str] | None = None) -> tuple[dict, bytes]:
    """Returns (glTF JSON, binary blob) of one triangle with ``n_targets`` morph targets.

    Layout: view 0 / accessor 0 POSITION (36 bytes), view 1 / accessor 1 indices (12 bytes),
    views and accessors 2.. the targets (36 bytes each, target k moves vertex k % 3 up by k+1).
    """
    blob = bytearray(_TRI.tobytes())
    blob += np.array([0, 1, 2], np.uint32).tobytes()
    views = [
        {"buffer": 0, "byteOffset": 0, "byteLength": 36},
        {"buffer": 0, "byteOffset": 36, "byteLength": 12},
    ]
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
         "min": [0, 0, 0], "max": [1, 1, 0]},
        {"bufferView": 1, "componentType": 5125, "count": 3, "type": "SCALAR"},
    ]  # fmt: skip
    targets = []
    for k in range(n_targets):
        d = np.zeros((3, 3), np.float32)
        d[k % 3, 2] = k + 1
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": 36})
        blob += d.tobytes()
        accessors.append(
            {"bufferView": len(views) - 1, "componentType": 5126, "count": 3, "type": "VEC3"}
        )
        targets.append({"POSITION": len(accessors) - 1})
    prim: dict = {"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}
    if targets:
        prim["targets"] = targets
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{
            "name": "face",
            "primitives": [prim],
            "extras": {"targetNames": names or [f"shape{k}" for k in range(n_targets)]},
        }],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views,
        "accessors": accessors,
    }  # fmt: skip
    return doc, bytes(blob)


def _nested(depth: int) -> bytes:
    return b'{"asset": {"version": "2.0"}, "extras": ' + b"[" * depth + b"]" * depth + b"}"


def hostile_cases(folder: Path) -> list[tuple[str, Path, str]]:
    """Writes every hostile case into ``folder`` (canary beside it); returns (name, path, regex).

    ``folder`` must be a fresh, empty folder whose parent may hold ``canary.bin``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    outside = folder.parent / "canary.bin"
    outside.write_bytes(CANARY * 64)
    (folder.parent / "outside_dir").mkdir(exist_ok=True)
    (folder.parent / "outside_dir" / "canary.bin").write_bytes(CANARY * 64)
    cases: list[tuple[str, Path, str]] = []

    def add(name: str, edit: Callable[[dict, bytearray], object], regex: str, *,
            json_file: bool = False, n_targets: int = 2) -> None:  # fmt: skip
        doc, blob = rig_doc(n_targets)
        doc, blob = copy.deepcopy(doc), bytearray(blob)
        raw = edit(doc, blob)
        path = folder / f"{name}.{'gltf' if json_file else 'glb'}"
        if isinstance(raw, bytes):
            path.write_bytes(raw)
        elif json_file:
            path.write_text(json.dumps(doc))
        else:
            path.write_bytes(glb_bytes(doc, bytes(blob)))
        cases.append((name, path, regex))

    def external(uri: str, length: int | None = None) -> Callable[[dict, bytearray], None]:
        def edit(doc: dict, blob: bytearray) -> None:
            doc["buffers"][0] = {"uri": uri, "byteLength": length or len(blob)}

        return edit

    # --- buffer URIs that reach outside the folder, or files that are not files
    add("uri_absolute", external(str(outside)), "absolute path", json_file=True)
    add("uri_dotdot", external("../canary.bin"), r"goes up a folder", json_file=True)
    add("uri_dotdot_encoded", external("%2e%2e/canary.bin"), "goes up a folder", json_file=True)
    add("uri_dotdot_inner", external("sub/../../canary.bin"), "goes up a folder", json_file=True)
    add("uri_backslash", external("..\\canary.bin"), "goes up a folder", json_file=True)
    add("uri_file_scheme", external(f"file://{outside}"), "only relative file names",
        json_file=True)  # fmt: skip
    add("uri_proc", external("/proc/self/environ"), "absolute path", json_file=True)
    add("uri_dev_zero", external("/dev/zero", 1 << 30), "absolute path", json_file=True)
    os.symlink(outside, folder / "link_out.bin")
    add("uri_symlink_out", external("link_out.bin"), "leads outside", json_file=True)
    os.symlink(folder.parent / "outside_dir", folder / "dir_out")
    add("uri_symlink_dir_out", external("dir_out/canary.bin"), "leads outside", json_file=True)
    os.symlink("/dev/zero", folder / "zero.bin")
    add("uri_symlink_dev_zero", external("zero.bin", 1 << 30), "leads outside", json_file=True)
    os.mkfifo(folder / "fifo.bin")
    add("uri_fifo", external("fifo.bin"), "not a regular file", json_file=True)
    (folder / "short.bin").write_bytes(b"\0" * 10)
    add("uri_short_file", external("short.bin", 48), "has 10 bytes, its byteLength says 48",
        json_file=True)  # fmt: skip
    add("uri_missing_file", external("nothere.bin"), "cannot open", json_file=True)
    add("data_uri_bad_base64", external("data:application/octet-stream;base64,@@@@" * 30),
        "bad base64", json_file=True)  # fmt: skip
    add("data_uri_not_base64", external("data:text/plain,hello"), "only base64",
        json_file=True)  # fmt: skip
    add("data_uri_too_short", external("data:application/octet-stream;base64,AAAA", 120),
        "fewer than the 120 bytes", json_file=True)  # fmt: skip

    # --- node graphs that never end
    def cycle(doc: dict, blob: bytearray) -> None:
        doc["nodes"] = [{"children": [1]}, {"children": [0], "mesh": 0}]

    add("node_cycle", cycle, "cycle")

    def hidden_cycle(doc: dict, blob: bytearray) -> None:
        doc["nodes"] = [{"mesh": 0}, {"children": [2]}, {"children": [1]}]

    add("node_cycle_unreachable", hidden_cycle, "cycle")
    add("node_own_child", lambda d, b: d["nodes"][0].update(children=[0]), "its own child")

    def two_parents(doc: dict, blob: bytearray) -> None:
        doc["nodes"] = [{"children": [2]}, {"children": [2]}, {"mesh": 0}]
        doc["scenes"][0]["nodes"] = [0, 1]

    add("node_two_parents", two_parents, "two parents")
    add("scene_root_twice", lambda d, b: d["scenes"][0].update(nodes=[0, 0]), "twice")
    add("node_bad_child", lambda d, b: d["nodes"][0].update(children=[7]), r"nodes\[7\]")
    add("node_nan_matrix", lambda d, b: d["nodes"][0].update(scale=[1, "x", 1]), "finite")
    add("node_huge_scale", lambda d, b: d["nodes"][0].update(scale=[1e300, 1e300, 1e300]),
        "not finite after the node transform")  # fmt: skip
    add("too_many_instances", _many_instances, "more than the 100000 primitives allowed")
    add("too_many_nodes", lambda d, b: d.update(nodes=[{}] * 100_001), "more than 100000 nodes")

    # --- accessors and views that claim more than the file holds
    add("accessor_400m_vertices", lambda d, b: d["accessors"][0].update(count=400_000_000),
        r"count must be in \[1, ")  # fmt: skip
    add("accessor_past_view", lambda d, b: d["accessors"][1].update(count=999),
        r"need 3996 bytes, bufferViews\[1\] has 12")  # fmt: skip
    add("accessor_offset_past_view", lambda d, b: d["accessors"][0].update(byteOffset=30),
        "need")  # fmt: skip
    add("view_past_buffer", lambda d, b: d["bufferViews"][0].update(byteLength=10**9),
        r"pass the end of buffers\[0\]")  # fmt: skip
    add("view_missing", lambda d, b: d["accessors"][0].update(bufferView=99),
        r"bufferViews\[99\] does not exist")  # fmt: skip
    add("view_bad_stride", lambda d, b: d["bufferViews"][0].update(byteStride=6),
        "multiple of 4")  # fmt: skip
    add("accessor_unknown_component", lambda d, b: d["accessors"][0].update(componentType=5130),
        "unknown componentType 5130")  # fmt: skip
    add("accessor_unknown_type", lambda d, b: d["accessors"][0].update(type="VEC7"),
        "unknown type 'VEC7'")  # fmt: skip
    add("position_not_vec3", lambda d, b: d["accessors"][0].update(type="VEC2", count=4),
        "type must be VEC3")  # fmt: skip
    add("accessor_count_text", lambda d, b: d["accessors"][0].update(count="3"),
        "count must be an integer")  # fmt: skip
    add("indices_float", lambda d, b: d["accessors"][1].update(componentType=5126),
        "unsigned integers")  # fmt: skip
    add("index_out_of_range", lambda d, b: b.__setitem__(slice(36, 40), b"\x07\0\0\0"),
        "index 7 is past")  # fmt: skip
    add("indices_not_triangles", lambda d, b: d["accessors"][1].update(count=2),
        "not a whole number of triangles")  # fmt: skip
    add("mode_unknown", lambda d, b: d["meshes"][0]["primitives"][0].update(mode=9),
        r"mode must be in \[0, 6\]")  # fmt: skip
    nan = np.array([np.nan], np.float32).tobytes()
    add("position_nan", lambda d, b: b.__setitem__(slice(0, 4), nan), "not finite")
    add("target_nan", lambda d, b: b.__setitem__(slice(48, 52), nan), "not finite")
    add("sparse_index_out_of_range", _sparse_out_of_range, r"index 9 >= count 3")
    add("buffer_longer_than_chunk", lambda d, b: d["buffers"][0].update(byteLength=10**6),
        "binary chunk has")  # fmt: skip
    add("no_buffer_chunk", lambda d, b: glb_bytes(d), "no GLB binary chunk")

    # --- morph targets whose sizes disagree, or whose total is too big
    add("target_count_mismatch", lambda d, b: d["accessors"][2].update(count=2),
        "morph target 0 has 2 vertices, the primitive's POSITION has 3")  # fmt: skip

    def prims_disagree(doc: dict, blob: bytearray) -> None:
        p = copy.deepcopy(doc["meshes"][0]["primitives"][0])
        p["targets"] = p["targets"][:1]
        doc["meshes"][0]["primitives"].append(p)

    add("primitive_target_counts_differ", prims_disagree, "glTF requires the same number")
    add("too_many_targets", _many_targets, "more than the 1024 morph targets allowed")
    add("deltas_too_big", _huge_zero_targets, "MiB, more than the 1024 MiB allowed")
    add("duplicate_target_names",
        lambda d, b: d["meshes"][0]["extras"].update(targetNames=["jawOpen", "JAWOPEN"]),
        "several morph targets named 'jawopen'")  # fmt: skip

    # --- broken containers and JSON
    add("glb_truncated", lambda d, b: glb_bytes(d, bytes(b))[:-20], "truncated")

    def chunk_too_long(doc: dict, blob: bytearray) -> bytes:
        raw = bytearray(glb_bytes(doc, bytes(blob)))
        raw[12:16] = struct.pack("<I", 1 << 30)
        return bytes(raw)

    add("glb_chunk_too_long", chunk_too_long, "past the file's end")
    add("glb_version_1", lambda d, b: b"glTF\x01\0\0\0" + b"\0" * 20, "GLB version 1")
    add("json_nested_deep", lambda d, b: _nested(100_000), "nested too deeply", json_file=True)
    add("json_nan", lambda d, b: b'{"asset": {"version": "2.0"}, "x": NaN}', "not a JSON number",
        json_file=True)  # fmt: skip
    add("json_list", lambda d, b: b"[1, 2]", "not an object", json_file=True)
    add("json_not_utf8", lambda d, b: b'{"asset": "\xff\xfe"}', "cannot parse", json_file=True)
    add("asset_version_1", lambda d, b: d["asset"].update(version="1.0"), "not a glTF 2.0")
    add("extension_draco",
        lambda d, b: d.update(extensionsRequired=["KHR_draco_mesh_compression"]),
        "needs the glTF extension 'KHR_draco_mesh_compression'")  # fmt: skip
    add("meshes_not_list", lambda d, b: d.update(meshes={"0": {}}), "meshes must be a list")
    add("empty_glb", lambda d, b: b"", r"empty file \(0 bytes\)")
    return cases


def _sparse_out_of_range(doc: dict, blob: bytearray) -> None:
    idx_view = len(doc["bufferViews"])
    doc["bufferViews"].append({"buffer": 0, "byteOffset": 36, "byteLength": 12})
    blob[36:40] = struct.pack("<I", 9)
    doc["accessors"][2]["sparse"] = {
        "count": 1,
        "indices": {"bufferView": idx_view, "componentType": 5125},
        "values": {"bufferView": 0},
    }


def _many_targets(doc: dict, blob: bytearray) -> None:
    prim = doc["meshes"][0]["primitives"][0]
    prim["targets"] = [{"POSITION": 2}] * 1025
    doc["meshes"][0]["extras"]["targetNames"] = [f"t{k}" for k in range(1025)]


def _huge_zero_targets(doc: dict, blob: bytearray) -> None:
    # Accessors without a bufferView are zeros of any count: 1M vertices x 100 targets would
    # allocate 1.2 GB of deltas from a file of a few hundred bytes.
    doc["accessors"].append({"componentType": 5126, "count": 999_999, "type": "VEC3"})
    big = len(doc["accessors"]) - 1
    prim = doc["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = big
    prim.pop("indices")
    prim["targets"] = [{"POSITION": big}] * 100
    doc["meshes"][0]["extras"]["targetNames"] = [f"t{k}" for k in range(100)]


def _many_instances(doc: dict, blob: bytearray) -> None:
    # 1,000 nodes instancing a mesh of 200 point primitives: 200,000 primitives from 60 kB.
    prim = {"attributes": {"POSITION": 0}, "mode": 0}
    doc["meshes"][0]["primitives"] = [prim] * 200
    doc["meshes"][0]["extras"] = {}
    doc["nodes"] = [{"children": list(range(1, 1001))}] + [{"mesh": 0}] * 1000

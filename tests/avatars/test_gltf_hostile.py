"""The glTF reader on hostile files: a named InputError, nothing read outside the folder, bounded
memory and time. The files are built at test time by ``gltf_cases.py``."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from facexpr.avatars.gltf import load_gltf, save_gltf
from facexpr.core.errors import InputError

_CASES = Path(__file__).with_name("gltf_cases.py")
_spec = importlib.util.spec_from_file_location("gltf_cases", _CASES)
cases_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases_mod)
CANARY, glb_bytes, hostile_cases, rig_doc = (
    cases_mod.CANARY, cases_mod.glb_bytes, cases_mod.hostile_cases, cases_mod.rig_doc,
)  # fmt: skip

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("hostile")
    return {name: (path, rx) for name, path, rx in hostile_cases(root / "avatars")}


def test_every_hostile_file_is_a_named_input_error(corpus) -> None:
    assert len(corpus) >= 60
    wrong = []
    for name, (path, rx) in corpus.items():
        try:
            load_gltf(path)
        except InputError as e:
            msg = str(e)
            if e.path != str(path) or not re.search(rx, msg) or "CANARY" in msg:
                wrong.append(f"{name}: {msg}")
            continue
        except Exception as e:  # any other exception is the failure reported
            wrong.append(f"{name}: {type(e).__name__}: {e}")
            continue
        wrong.append(f"{name}: loaded without error")
    assert wrong == []


@pytest.mark.parametrize(
    "name",
    ["node_cycle", "node_cycle_unreachable", "uri_dev_zero", "uri_symlink_dev_zero",
     "accessor_400m_vertices", "deltas_too_big", "target_count_mismatch", "uri_fifo",
     "json_nested_deep"],
)  # fmt: skip
def test_denial_of_service_fails_fast_under_a_memory_limit(corpus, name: str) -> None:
    """Each case runs in a process limited to 2 GiB of address space and 60 s."""
    path, rx = corpus[name]
    script = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from facexpr.avatars.gltf import load_gltf
        from facexpr.core.errors import InputError
        try:
            load_gltf({str(path)!r})
            out = {{"error": None}}
        except InputError as e:
            out = {{"error": "InputError", "message": str(e)}}
        except BaseException as e:
            out = {{"error": type(e).__name__, "message": str(e)}}
        # VmHWM: peak RSS of this process image (ru_maxrss would include the forking parent's)
        hwm = [x for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
        out["maxrss_mb"] = int(hwm.split()[1]) / 1024
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["error"] == "InputError", out
    assert re.search(rx, out["message"]), out["message"]
    assert out["maxrss_mb"] < 400, out


def _write_split(folder: Path, uri: str, blob: bytes, extra: bytes = b"") -> Path:
    """Writes a .gltf whose buffer is the file ``uri`` (``blob`` then ``extra``) beside it."""
    doc, _ = rig_doc(2)
    doc["buffers"][0] = {"uri": uri, "byteLength": len(blob)}
    path = folder / "split.gltf"
    path.write_text(json.dumps(doc))
    return path


def test_buffer_files_inside_the_folder_are_read(tmp_path: Path) -> None:
    _, blob = rig_doc(2)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "my mesh.bin").write_bytes(blob)
    path = _write_split(tmp_path, "sub/my%20mesh.bin", blob)
    rig = load_gltf(path)
    assert rig.channel_names == ("shape0", "shape1")
    np.testing.assert_allclose(rig.deltas[1, 1], [0, 0, 2])
    # a symbolic link that stays inside the folder is fine too
    os.symlink(tmp_path / "sub" / "my mesh.bin", tmp_path / "inside.bin")
    rig2 = load_gltf(_write_split(tmp_path, "inside.bin", blob))
    np.testing.assert_array_equal(rig2.neutral, rig.neutral)


def test_reads_no_more_than_byte_length(tmp_path: Path) -> None:
    _, blob = rig_doc(2)
    (tmp_path / "big.bin").write_bytes(blob + b"\0" * (32 << 20))
    path = _write_split(tmp_path, "big.bin", blob)
    tracemalloc.start()
    try:
        rig = load_gltf(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rig.n_vertices == 3
    assert peak < 4 << 20  # the 32 MiB tail of the file is never read


def test_image_uris_outside_are_never_read_nor_exported(tmp_path: Path) -> None:
    folder = tmp_path / "avatar"
    folder.mkdir()
    (tmp_path / "canary.bin").write_bytes(CANARY)
    doc, blob = rig_doc(2)
    doc["images"] = [{"uri": "../canary.bin"}, {"uri": str(tmp_path / "canary.bin")}]
    doc["textures"] = [{"source": 0}]
    path = folder / "textured.glb"
    path.write_bytes(glb_bytes(doc, blob))
    rig = load_gltf(path)
    out = save_gltf(rig, tmp_path / "out.glb")
    assert CANARY not in out.read_bytes()
    assert rig.n_channels == 2


def test_gltf_file_itself_must_be_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.glb")
    with pytest.raises(InputError, match="not a regular file") as e:
        load_gltf(tmp_path / "pipe.glb")
    assert e.value.path == str(tmp_path / "pipe.glb")
    (tmp_path / "folder.glb").mkdir()
    with pytest.raises(InputError, match=r"not a regular file|cannot open"):
        load_gltf(tmp_path / "folder.glb")


def test_save_leaves_no_partial_and_never_follows_a_planted_link(tmp_path: Path) -> None:
    doc, blob = rig_doc(2)
    (tmp_path / "in.glb").write_bytes(glb_bytes(doc, blob))
    rig = load_gltf(tmp_path / "in.glb")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "out.glb.partial")
    save_gltf(rig, tmp_path / "out.glb")
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.glb", "out.glb", "out.glb.partial", "victim.txt",
    ]  # fmt: skip
    assert load_gltf(tmp_path / "out.glb").n_channels == 2


def test_a_link_swapped_in_after_resolving_is_caught(tmp_path: Path, monkeypatch) -> None:
    """The opened file's real path is checked again (a race between resolve and open)."""
    from facexpr.avatars import _gltf_doc

    folder = tmp_path / "avatar"
    folder.mkdir()
    (tmp_path / "canary.bin").write_bytes(CANARY * 8)
    _, blob = rig_doc(2)
    (folder / "mesh.bin").write_bytes(blob)
    path = _write_split(folder, "mesh.bin", blob)
    # As if mesh.bin became a link to the canary between the check and the open:
    monkeypatch.setattr(
        _gltf_doc.GltfDoc, "_confined", lambda self, uri, where: tmp_path / "canary.bin"
    )
    with pytest.raises(InputError, match="leads outside the glTF file's folder") as e:
        load_gltf(path)
    assert e.value.path == str(path)

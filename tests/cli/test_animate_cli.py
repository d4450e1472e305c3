"""`facexpr animate` on generated tables and avatars: custom rigs, hostile avatars, bad tables.

Needs no media: the tables and the glTF files are built at test time.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pygltflib
import pytest

from facexpr.avatars.gltf import load_gltf, save_gltf
from facexpr.avatars.rig import Rig
from facexpr.cli.main import main
from facexpr.core import columns as C
from facexpr.core.arkit import ARKIT_NAMES

_CASES = Path(__file__).resolve().parents[1] / "avatars" / "gltf_cases.py"
_spec = importlib.util.spec_from_file_location("gltf_cases", _CASES)
cases_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases_mod)
SRC = Path(__file__).resolve().parents[2] / "src"


def run(*argv: str) -> int:
    return main(["-q", *argv])


def write_table(path: Path, n: int = 8, fps: float = 25.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        C.INPUT: "clip.mp4", C.FRAME: np.arange(1, n + 1), C.FACE_ID: 0,
        C.TIMESTAMP: np.arange(n) / fps, C.CONFIDENCE: 0.9, C.SUCCESS: 1,
        "pitch": 0.0, "yaw": 5.0, "roll": 0.0,
    })  # fmt: skip
    w = pd.DataFrame(rng.uniform(0, 1, (n, 52)), columns=list(C.BLENDSHAPES))
    df = pd.concat([df, w], axis=1)
    df.to_csv(path, index=False)
    return df


def custom_rig(names: list[str]) -> Rig:
    rng = np.random.default_rng(len(names))
    v = rng.normal(size=(12, 3))
    faces = np.array([[i, i + 1, i + 2] for i in range(10)])
    return Rig(neutral=v, faces=faces, channel_names=tuple(names),
               deltas=rng.normal(size=(len(names), 12, 3)) * 0.1, name="custom")  # fmt: skip


def animation_of(path: Path) -> tuple[list[str], np.ndarray]:
    """Returns (target names, (T, C) weights) of the first animation of a GLB."""
    g = pygltflib.GLTF2().load(str(path))
    names = g.meshes[0].extras["targetNames"]
    acc = g.accessors[g.animations[0].samplers[0].output]
    view = g.bufferViews[acc.bufferView]
    blob = g.binary_blob()
    w = np.frombuffer(blob, np.float32, acc.count, (view.byteOffset or 0) + (acc.byteOffset or 0))
    return names, w.reshape(-1, len(names))


SEVEN = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R", "browInnerUp",
         "wiggleEars"]  # fmt: skip
SIXTY = [*reversed(ARKIT_NAMES), *[f"extra{k}" for k in range(8)]]


@pytest.mark.parametrize("names", [SEVEN, SIXTY], ids=["7", "60"])
def test_custom_rig_of_any_size_is_animated_by_name(tmp_path: Path, names: list[str]) -> None:
    df = write_table(tmp_path / "clip.csv")
    rig_file = save_gltf(custom_rig(names), tmp_path / "custom.glb")
    out = tmp_path / "anim.glb"
    rc = run("animate", str(tmp_path / "clip.csv"), "--avatar", str(rig_file), "--gltf", str(out))
    assert rc == 0
    got_names, w = animation_of(out)
    assert got_names == names
    assert w.shape == (8, len(names))
    np.testing.assert_allclose(w[:, names.index("jawOpen")], df["jawOpen"], atol=1e-6)
    smile = "mouthSmile_L" if "mouthSmile_L" in names else "mouthSmileLeft"
    np.testing.assert_allclose(w[:, names.index(smile)], df["mouthSmileLeft"], atol=1e-6)
    extra = [i for i, n in enumerate(names) if n in ("wiggleEars", "extra0", "extra7")]
    assert np.abs(w[:, extra]).max() == 0.0  # channels without an ARKit name stay still
    assert load_gltf(out).n_channels == len(names)


def test_same_avatar_file_twice_in_one_process(tmp_path: Path) -> None:
    write_table(tmp_path / "clip.csv")
    rig_file = save_gltf(custom_rig(SEVEN), tmp_path / "custom.glb")
    for k in range(2):  # registering the file twice used to fail ("already registered")
        out = tmp_path / f"a{k}.glb"
        assert run("animate", str(tmp_path / "clip.csv"), "--avatar", str(rig_file),
                   "--gltf", str(out)) == 0  # fmt: skip
        assert out.is_file()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[tuple[str, Path, str]]]:
    root = tmp_path_factory.mktemp("hostile_cli")
    return root, cases_mod.hostile_cases(root / "avatars")


def test_hostile_avatars_exit_2_and_leak_nothing(corpus, tmp_path: Path, capsys) -> None:
    _, cases = corpus
    table = tmp_path / "clip.csv"
    write_table(table)
    outdir = tmp_path / "out"
    wrong = []
    for name, path, rx in cases:
        out = outdir / f"{name}.glb"
        ll = outdir / f"{name}.csv"
        rc = run("animate", str(table), "--avatar", str(path), "--gltf", str(out),
                 "--livelink", str(ll))  # fmt: skip
        err = capsys.readouterr().err
        if rc != 2 or f"{path}: " not in err or not re.search(rx, err) or "Traceback" in err:
            wrong.append(f"{name}: rc={rc} {err[-300:]}")
        if out.exists() or ll.exists():  # the avatar is checked before anything is written
            wrong.append(f"{name}: wrote an output")
    assert wrong == []
    # Nothing written anywhere under this test's folder holds the canary planted outside.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert [p for p in written if cases_mod.CANARY in p.read_bytes()] == []
    assert sorted(p.name for p in written) == ["clip.csv"]


def test_animate_subprocess_exit_codes_and_messages(corpus, tmp_path: Path) -> None:
    """The real command line: no traceback, exit 2, the file named, for an avatar and a table."""
    _, cases = corpus
    by_name = {n: p for n, p, _ in cases}
    table = tmp_path / "clip.csv"
    df = write_table(table)
    bad_table = tmp_path / "same_time.csv"
    df.assign(timestamp=0.0).to_csv(bad_table, index=False)
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    for argv, needle in [
        ([str(table), "--avatar", str(by_name["uri_dotdot"]), "--gltf", str(tmp_path / "o.glb")],
         "goes up a folder"),
        ([str(table), "--avatar", str(by_name["node_cycle"]), "--gltf", str(tmp_path / "o.glb")],
         "cycle"),
        ([str(bad_table), "--json", str(tmp_path / "o.json")], "timestamps must increase"),
    ]:  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "facexpr.cli.main", "animate", *argv],
                           capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert needle in r.stderr
        assert Path(argv[0] if "--json" in argv else argv[2]).name in r.stderr
    assert not (tmp_path / "o.glb").exists()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.assign(timestamp=1.0), "frames 1 and 2 are at 1 and 1 s"),
        (lambda d: d.assign(timestamp=np.where(d.frame == 3, np.nan, d.timestamp)),
         "'timestamp', row 3"),
        (lambda d: d.astype({"jawOpen": object}).assign(
            jawOpen=["x" if i == 4 else 0.5 for i in range(len(d))]), "'jawOpen', row 5: 'x'"),
    ],
)  # fmt: skip
def test_bad_tables_exit_2_naming_column_and_row(tmp_path: Path, capsys, edit, needle) -> None:
    path = tmp_path / "bad.csv"
    edit(write_table(path)).to_csv(path, index=False)
    out = tmp_path / "a.json"
    assert run("animate", str(path), "--json", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err
    assert needle in err
    assert not out.exists()


def test_unwritable_output_is_a_named_error(tmp_path: Path, capsys) -> None:
    write_table(tmp_path / "clip.csv")
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "a.json"  # its folder is a file
    assert run("animate", str(tmp_path / "clip.csv"), "--json", str(target)) == 2
    assert f"{target}: cannot write" in capsys.readouterr().err

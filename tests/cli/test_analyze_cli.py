"""End-to-end `facexpr analyze` on the real media of ../shared/fixtures/media."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facexpr.cli.main import main
from facexpr.io.tables import read_table


def run(*argv: str) -> int:
    return main(["-q", *argv])


def test_single_face_photo(media_dir, tmp_path):
    assert run("analyze", str(media_dir / "single_face.jpg"), "-o", str(tmp_path)) == 0
    df = read_table(tmp_path / "single_face.csv")
    assert len(df) == 1
    row = df.iloc[0]
    assert row["success"] == 1
    assert row["face_id"] == 0
    xs = df[[f"x_{i}" for i in range(68)]].to_numpy()
    ys = df[[f"y_{i}" for i in range(68)]].to_numpy()
    pad = 0.1 * row["face_width"]
    assert (xs >= row["face_x"] - pad).all()
    assert (xs <= row["face_x"] + row["face_width"] + pad).all()
    assert (ys >= row["face_y"] - pad).all()
    assert (ys <= row["face_y"] + row["face_height"] + pad).all()
    assert abs(row["yaw"]) < 20
    assert abs(row["roll"]) < 15


def test_group_photo_finds_every_face(media_dir, tmp_path):
    out = tmp_path / "multi.parquet"
    assert run("analyze", str(media_dir / "multi_face.jpg"), "-o", str(out)) == 0
    df = read_table(out)
    assert len(df) == 5
    assert sorted(df["face_id"]) == [0, 1, 2, 3, 4]
    widths = df.sort_values("face_id")["face_width"].to_numpy()
    assert (np.diff(widths) <= 1e-6).all()  # photo ids rank faces by size


def test_no_face_gives_one_unsuccessful_row(media_dir, tmp_path):
    out = tmp_path / "none.jsonl"
    assert run("analyze", str(media_dir / "free-mountain-vector-01.jpg"), "-o", str(out)) == 0
    df = read_table(out)
    assert len(df) == 1
    assert df["success"].iloc[0] == 0
    assert df["face_id"].iloc[0] == -1
    assert np.isnan(df["x_0"].iloc[0])


@pytest.mark.parametrize("name", ["BWPictureHuman.jpg", "Image_with_alpha.png"])
def test_greyscale_and_rgba_inputs(media_dir, tmp_path, name):
    assert run("analyze", str(media_dir / name), "-o", str(tmp_path)) == 0
    df = read_table(next(tmp_path.glob("*.csv")))
    assert len(df) >= 1
    assert df["frame_width"].iloc[0] > 1000


def test_video_ids_timestamps_and_annotation(media_dir, tmp_path):
    ann = tmp_path / "ann.mp4"
    rc = run(
        "analyze", str(media_dir / "single_face.mp4"), "-o", str(tmp_path), "--annotate", str(ann)
    )
    assert rc == 0
    df = read_table(tmp_path / "single_face.csv")
    assert df["frame"].tolist() == list(range(1, 73))
    assert (np.diff(df["timestamp"]) > 0).all()
    np.testing.assert_allclose(df["timestamp"], np.arange(72) / 30.0, atol=0.02)
    faces = df[df["success"] == 1]
    assert len(faces) >= 70
    assert faces["face_id"].nunique() == 1
    import av

    with av.open(str(ann)) as c:
        n = sum(1 for _ in c.decode(video=0))
        assert c.streams.video[0].width == 640
    assert n == 72


def test_every_and_time_window(media_dir, tmp_path):
    video = str(media_dir / "single_face.mp4")
    assert run("analyze", video, "-o", str(tmp_path / "a.csv"), "--every", "4") == 0
    assert len(read_table(tmp_path / "a.csv")) == 18
    assert (
        run("analyze", video, "-o", str(tmp_path / "b.csv"), "--start", "1.0", "--end", "2.0") == 0
    )
    ts = read_table(tmp_path / "b.csv")["timestamp"]
    assert ts.min() >= 1.0 - 1e-6
    assert ts.max() <= 2.0 + 1e-6
    assert 25 <= len(ts) <= 31


def test_bad_files_in_a_folder_are_reported_and_the_rest_is_written(media_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media_dir / "single_face.jpg", src / "good.jpg")
    data = (media_dir / "single_face.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (src / "empty.mp4").write_bytes(b"")
    (src / "notes.png").write_text("this is not an image")
    out = tmp_path / "out"
    assert run("analyze", str(src), "-o", str(out)) == 1
    err = capsys.readouterr().err
    for bad in ("truncated.jpg", "empty.mp4", "notes.png"):
        assert bad in err
    assert "3 input(s) failed" in err
    assert (out / "good.csv").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["good.csv"]  # no partial files left


def test_missing_input_fails_alone(media_dir, tmp_path, capsys):
    rc = run(
        "analyze",
        str(tmp_path / "nope.jpg"),
        str(media_dir / "single_face.jpg"),
        "-o",
        str(tmp_path),
    )
    assert rc == 1
    assert "nope.jpg" in capsys.readouterr().err
    assert (tmp_path / "single_face.csv").is_file()


def test_resume_skips_finished_outputs(media_dir, tmp_path, capsys):
    args = ("analyze", str(media_dir / "single_face.jpg"), "-o", str(tmp_path))
    assert run(*args) == 0
    table = tmp_path / "single_face.csv"
    before = table.stat().st_mtime_ns
    capsys.readouterr()
    assert run(*args, "--resume") == 0
    assert table.stat().st_mtime_ns == before
    assert "1 skipped" in capsys.readouterr().err


def test_usage_errors_exit_2(media_dir, tmp_path, capsys):
    rc = run(
        "analyze",
        str(media_dir / "single_face.jpg"),
        "-o",
        str(tmp_path),
        "--min-face-score",
        "1.5",
    )
    assert rc == 2
    assert "min_face_score must be in (0, 1)" in capsys.readouterr().err
    rc = run(
        "analyze",
        str(media_dir / "single_face.jpg"),
        str(media_dir / "multi_face.jpg"),
        "-o",
        str(tmp_path / "one.csv"),
    )
    assert rc == 2


def test_console_script_and_info(tmp_path):
    exe = shutil.which("facexpr", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "info"], capture_output=True, text=True, check=True).stdout
    assert "face_landmark.tflite" in out
    assert "torch" in out


def test_python_api_matches_cli(media_dir, tmp_path):
    from facexpr.analyze import Analyzer

    with Analyzer() as a:
        table = a.analyze(media_dir / "multi_face.jpg")
    assert run("analyze", str(media_dir / "multi_face.jpg"), "-o", str(tmp_path)) == 0
    cli = read_table(tmp_path / "multi_face.csv")
    pd.testing.assert_series_equal(
        table.data["x_30"].reset_index(drop=True), cli["x_30"], check_exact=False, rtol=1e-6
    )

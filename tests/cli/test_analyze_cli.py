"""End-to-end `facexpr analyze` on the real media of ../shared/fixtures/media."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from facexpr.cli.main import main
from facexpr.io._files import FolderLock
from facexpr.io.tables import TableWriter, read_table


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
    assert run("analyze", str(src), "-o", str(out)) == 2
    err = capsys.readouterr().err
    for bad in ("truncated.jpg: truncated or corrupt", "empty.mp4: empty file", "notes.png: not a"):
        assert f"  {src / bad}" in err  # one line per bad input, naming the file
    assert "3 input(s) failed" in err
    assert (out / "good.csv").is_file()
    # no temporary files left; the lock file stays (see facexpr.io._files.FolderLock)
    assert sorted(p.name for p in out.iterdir()) == [".facexpr.lock", "good.csv"]


def test_missing_input_fails_alone(media_dir, tmp_path, capsys):
    rc = run(
        "analyze",
        str(tmp_path / "nope.jpg"),
        str(media_dir / "single_face.jpg"),
        "-o",
        str(tmp_path),
    )
    assert rc == 2
    assert f"{tmp_path / 'nope.jpg'}: file not found" in capsys.readouterr().err
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


def test_a_second_run_into_a_folder_is_refused(media_dir, tmp_path, capsys):
    out = tmp_path / "out"
    with FolderLock(out, "another facexpr analyze"):  # as a run in another process holds it
        rc = run("analyze", str(media_dir / "single_face.jpg"), "-o", str(out))
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{out}: another run (pid {os.getpid()}) is writing into this folder" in err
    assert sorted(p.name for p in out.iterdir()) == [".facexpr.lock"]  # nothing written
    assert run("analyze", str(media_dir / "single_face.jpg"), "-o", str(out)) == 0  # once free


def test_hostile_names_fail_alone(media_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = media_dir / "single_face.jpg"
    raw = os.fsencode(src) + b"/caf\xe9.jpg"  # not UTF-8
    shutil.copy(photo, os.fsdecode(raw))
    shutil.copy(photo, src / ("a" * 245 + ".jpg"))  # its ".csv.partial" passed 255 bytes
    shutil.copy(photo, src / ("b" * 251 + ".jpg"))  # "b...b.csv" is 255 bytes: fine
    out = tmp_path / "out"
    assert run("analyze", str(src), "-o", str(out)) == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".csv")
    assert written == ["a" * 245 + ".csv", "b" * 251 + ".csv", "caf.csv"]
    df = read_table(out / "caf.csv")
    assert df["input"].tolist() == [os.fsencode(src).decode() + "/caf\\xe9.jpg"]
    assert df["success"].tolist() == [1]
    capsys.readouterr()
    out2 = tmp_path / "out2"
    assert run("analyze", str(src), "-o", str(out2), "--format", "parquet") == 2
    err = capsys.readouterr().err
    assert "1 input(s) failed" in err
    assert f"  {src / ('b' * 251 + '.jpg')}: cannot write its output: " in err
    assert "output file name is 259 bytes; file systems allow 255" in err
    assert sorted(p.name for p in out2.glob("*.parquet")) == ["a" * 245 + ".parquet", "caf.parquet"]


def _faststart_copy(src: Path, dst: Path) -> Path:
    """Remuxes an MP4 with its index first, so that a cut copy still opens."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        vin = i.streams.video[0]
        vout = o.add_stream_from_template(vin)
        for packet in i.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            o.mux(packet)
    return dst


def test_truncated_video_keeps_its_frames_and_fails(media_dir, tmp_path, capsys):
    whole = _faststart_copy(media_dir / "single_face.mp4", tmp_path / "whole.mp4")
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.4)])
    out = tmp_path / "out"
    rc = run("analyze", str(tmp_path / "cut.mp4"), "-o", str(out), "--every", "4")
    assert rc == 2
    err = capsys.readouterr().err
    df = read_table(out / "cut.csv")  # every decoded frame is in the table
    n = len(df)
    assert 2 <= n < 18  # 18 rows for the whole clip at --every 4
    assert df["frame"].tolist() == list(range(1, 4 * n, 4))
    assert (df["success"] == 1).all()
    assert f"{tmp_path / 'cut.mp4'}: damaged video, every decodable frame was kept: decoded " in err
    assert "of the 72 frames the header promises; the file looks truncated" in err
    assert "1 written" in err


def test_zero_frame_video_fails_without_a_table(tmp_path, capsys):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        c.start_encoding()
    out = tmp_path / "out"
    assert run("analyze", str(path), "-o", str(out)) == 2
    assert f"{path}: has no decodable video frame" in capsys.readouterr().err
    assert not (out / "zero.csv").exists()


def test_frame_size_change_with_annotate_keeps_the_table(media_dir, tmp_path, capsys):
    parts = []
    for k, (w, h) in enumerate([(320, 180), (480, 270)]):
        part = tmp_path / f"p{k}.ts"
        with av.open(str(media_dir / "single_face.mp4")) as i, av.open(str(part), "w") as o:
            s = o.add_stream("libx264", rate=30)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for n, frame in enumerate(i.decode(video=0)):
                if n >= 6:
                    break
                f = frame.reformat(width=w, height=h, format="yuv420p")
                f.pts = n
                o.mux(s.encode(f))
            o.mux(s.encode(None))
        parts.append(part.read_bytes())
    video = tmp_path / "resized.ts"  # MPEG-TS streams concatenate; the kind comes from content
    video.write_bytes(b"".join(parts))
    ann = tmp_path / "ann.mp4"
    assert run("analyze", str(video), "-o", str(tmp_path / "t.csv"), "--annotate", str(ann)) == 0
    df = read_table(tmp_path / "t.csv")
    assert df["frame_width"].tolist() == [320] * 6 + [480] * 6
    assert (df["success"] == 1).sum() >= 10
    with av.open(str(ann)) as c:
        sizes = [(f.width, f.height) for f in c.decode(video=0)]
    assert sizes == [(320, 180)] * 12  # later frames scaled to the first size


def test_video_named_jpg_is_analysed_as_video(media_dir, tmp_path):
    shutil.copy(media_dir / "single_face.mp4", tmp_path / "clip.jpg")
    assert run("analyze", str(tmp_path / "clip.jpg"), "-o", str(tmp_path), "--every", "24") == 0
    assert read_table(tmp_path / "clip.csv")["frame"].tolist() == [1, 25, 49]


def test_fifo_and_empty_folder_are_named(media_dir, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "empty").mkdir()
    rc = run(
        "analyze",
        str(tmp_path / "pipe.mp4"),
        str(tmp_path / "empty"),
        str(media_dir / "single_face.jpg"),
        "-o",
        str(tmp_path / "out"),
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert f"  {tmp_path / 'pipe.mp4'}: not a regular file (a FIFO)" in err
    assert f"  {tmp_path / 'empty'}: the folder has no image or video file" in err
    assert (tmp_path / "out" / "single_face.csv").is_file()


def test_resume_after_a_killed_run_clears_its_temp_file(media_dir, tmp_path):
    out = tmp_path / "out"
    TableWriter(out / "single_face.csv").write(pd.DataFrame({"a": [1]}))  # killed: never closed
    (stale,) = out.iterdir()
    assert run("analyze", str(media_dir / "single_face.jpg"), "-o", str(out), "--resume") == 0
    assert not stale.exists()
    assert len(read_table(out / "single_face.csv")) == 1


def test_output_folder_that_cannot_be_made_is_named(media_dir, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    out = tmp_path / "file.txt" / "out"
    assert run("analyze", str(media_dir / "single_face.jpg"), "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert f"facexpr: error: {out}: cannot create the output folder (Not a directory)" in err

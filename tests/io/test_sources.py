"""Tests of facexpr.io.sources: expanding inputs and iterating any source's frames."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io import sources
from facexpr.io.images import read_image, write_image
from facexpr.io.sources import (
    MediaSource,
    expand_inputs,
    iter_frames,
    kind_by_content,
    natural_key,
    scan_inputs,
)


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((24, 24, 3), 128, np.uint8))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ["img10.png", "img2.png", "IMG1.JPG", "notes.txt", ".hidden.png", "b/c.jpg"]:
        if name.endswith(".txt"):
            (tmp_path / name).write_text("x")
        else:
            _img(tmp_path / name)
    _img(tmp_path / ".cache" / "d.png")
    (tmp_path / "b" / "clip.mp4").write_bytes(b"\x00" * 10)  # no magic: kind by name
    return tmp_path


def test_natural_key_order() -> None:
    names = ["img10.png", "img2.png", "Img1.png", "a/img3.png"]
    assert sorted(names, key=natural_key) == ["a/img3.png", "Img1.png", "img2.png", "img10.png"]


def test_folder_recursive_natural_order_hidden_skipped(tree: Path) -> None:
    got = expand_inputs([tree])
    rel = [Path(s.path).relative_to(tree).as_posix() for s in got]
    assert rel == ["b/c.jpg", "b/clip.mp4", "IMG1.JPG", "img2.png", "img10.png"]
    assert [s.kind for s in got] == ["image", "video", "image", "image", "image"]


def test_folder_not_recursive(tree: Path) -> None:
    rel = [Path(s.path).name for s in expand_inputs([tree], recursive=False)]
    assert rel == ["IMG1.JPG", "img2.png", "img10.png"]


def test_glob_patterns(tree: Path) -> None:
    got = expand_inputs([str(tree / "img*.png")])
    assert [Path(s.path).name for s in got] == ["img2.png", "img10.png"]
    deep = expand_inputs([str(tree / "**" / "*.jpg")])
    assert [Path(s.path).name for s in deep] == ["c.jpg"]
    q = expand_inputs([str(tree / "img?.png")])
    assert [Path(s.path).name for s in q] == ["img2.png"]


def test_glob_matching_nothing(tree: Path) -> None:
    with pytest.raises(InputError, match=r"the pattern matches no image or video file"):
        expand_inputs([str(tree / "*.webm")])


def test_duplicates_keep_first(tree: Path) -> None:
    a = str(tree / "img2.png")
    got = expand_inputs([a, tree, str(tree / "." / "img2.png"), "webcam:0", "0"])
    paths = [s.path for s in got]
    assert paths[0] == a
    assert paths.count(a) == 1
    assert len(got) == 6  # 5 media files + one webcam
    assert got[-1] == MediaSource("webcam:0", "webcam")


def test_webcam_specs() -> None:
    got = expand_inputs(["webcam:1", "3"])
    assert got == [MediaSource("webcam:1", "webcam"), MediaSource("webcam:3", "webcam")]
    assert got[1].webcam_index == 3


def test_webcam_index_of_file_source() -> None:
    with pytest.raises(InputError, match="is not a webcam source"):
        _ = MediaSource("a.jpg", "image").webcam_index


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jpg: file not found"):
        expand_inputs([tmp_path / "nope.jpg"])


def test_unknown_extension_is_sniffed(media_dir: Path, tmp_path: Path) -> None:
    shutil.copy(media_dir / "single_face.jpg", tmp_path / "photo.dat")
    shutil.copy(media_dir / "single_face.mp4", tmp_path / "clip.bin")
    got = expand_inputs([tmp_path / "photo.dat", tmp_path / "clip.bin"])
    assert [s.kind for s in got] == ["image", "video"]
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="neither an image Pillow reads nor a video FFmpeg"):
        expand_inputs([tmp_path / "notes.txt"])
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        expand_inputs([tmp_path / "empty.dat"])


def test_real_media_folder(media_dir: Path) -> None:
    got = expand_inputs([media_dir])
    kinds = {Path(s.path).name: s.kind for s in got}
    assert kinds["single_face.mp4"] == "video"
    assert kinds["face_noface.mov"] == "video"
    assert kinds["Image_with_alpha.png"] == "image"
    assert "OpenFace_Test.csv" not in kinds
    assert len(got) == 14


def test_iter_frames_image(media_dir: Path) -> None:
    src = MediaSource(str(media_dir / "single_face.jpg"), "image")
    frames = list(iter_frames(src))
    assert len(frames) == 1
    assert (frames[0].index, frames[0].timestamp) == (0, 0.0)
    assert frames[0].image.shape == (562, 572, 3)
    assert frames[0].source == src.path


def test_iter_frames_video(media_dir: Path) -> None:
    src = MediaSource(str(media_dir / "single_face.mp4"), "video")
    frames = list(iter_frames(src, every=10, start=1.0))
    assert [f.index for f in frames] == [30, 40, 50, 60, 70]


def test_iter_frames_webcam(fake_cv2: type) -> None:
    frames = list(iter_frames(MediaSource("webcam:0", "webcam"), every=2))
    assert [f.index for f in frames] == [0, 2, 4]
    assert frames[1].source == "webcam:0"
    with pytest.raises(ConfigError, match="fps must be > 0"):
        list(iter_frames(MediaSource("webcam:0", "webcam"), fps=0))


def test_audio_only_file_with_unknown_suffix_says_so(audio_only: Path, tmp_path: Path) -> None:
    odd = tmp_path / "recording.dat"
    odd.write_bytes(audio_only.read_bytes())
    with pytest.raises(InputError, match=r"recording\.dat: has no video stream"):
        expand_inputs([odd])


def test_folder_with_link_loops_is_walked_once(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "sub" / "b.png")
    (tmp_path / "self").symlink_to(tmp_path)  # a loop back to the top
    (tmp_path / "sub" / "up").symlink_to(tmp_path / "sub")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    got = expand_inputs([tmp_path])
    assert sorted(Path(s.path).name for s in got) == ["a.png", "b.png"]


def test_glob_through_self_links_ends_and_keeps_each_file_once(tmp_path: Path) -> None:
    _img(tmp_path / "face.png")
    for k in range(3):  # with glob.glob this pattern took exponential time
        (tmp_path / f"self{k}").symlink_to(tmp_path)
    got = expand_inputs([str(tmp_path / "**" / "*.png")])
    assert [Path(s.path).name for s in got] == ["face.png"]
    with pytest.raises(InputError, match="the pattern matches no image or video file"):
        expand_inputs([str(tmp_path / "*" / "*.png")])  # the only sub-folders are loops
    _img(tmp_path / "real" / "b.png")
    (tmp_path / "alias").symlink_to(tmp_path / "real")  # a linked folder, not a loop
    got = expand_inputs([str(tmp_path / "*" / "*.png"), str(tmp_path / "alias" / "b.png")])
    assert [Path(s.path).name for s in got] == ["b.png"]  # one real file, reached twice


def test_a_file_named_twice_through_links_is_one_source(tmp_path: Path) -> None:
    real = _img(tmp_path / "real.png")
    (tmp_path / "alias.png").symlink_to(real)
    got = expand_inputs([real, tmp_path / "alias.png", tmp_path])
    assert [s.path for s in got] == [str(real)]


def test_empty_folder_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no media here")
    with pytest.raises(InputError, match=r"empty: the folder has no image or video file"):
        expand_inputs([tmp_path / "empty"])


def test_unreadable_subfolder_is_reported_and_the_rest_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _img(tmp_path / "ok.png")
    _img(tmp_path / "locked" / "hidden_from_us.png")
    locked = tmp_path / "locked"
    real_scandir = os.scandir

    def scandir(path):  # as chmod 000 would do to a normal user (tests may run as root)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    scan = scan_inputs([tmp_path])
    assert [Path(s.path).name for s in scan.sources] == ["ok.png"]
    assert [str(e) for e in scan.problems] == [
        f"{locked}: cannot read this folder (Permission denied); its files were not analysed"
    ]
    with pytest.raises(InputError, match=r"locked: cannot read this folder"):
        expand_inputs([tmp_path])


def test_fifo_is_not_a_regular_file_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(InputError, match=r"pipe\.mp4: not a regular file \(a FIFO\)"):
        expand_inputs([tmp_path / "pipe.mp4"])
    _img(tmp_path / "ok.png")
    scan = scan_inputs([tmp_path])  # found in a folder: reported, not skipped silently
    assert [Path(s.path).name for s in scan.sources] == ["ok.png"]
    assert [e.problem for e in scan.problems] == ["not a regular file (a FIFO)"]


def test_kind_comes_from_the_content_not_the_suffix(media_dir: Path, tmp_path: Path) -> None:
    shutil.copy(media_dir / "single_face.mp4", tmp_path / "clip.jpg")
    shutil.copy(media_dir / "single_face.jpg", tmp_path / "photo.mp4")
    got = expand_inputs([tmp_path / "clip.jpg", tmp_path / "photo.mp4"])
    assert [s.kind for s in got] == ["video", "image"]
    assert {Path(s.path).name: s.kind for s in expand_inputs([tmp_path])} == {
        "clip.jpg": "video",
        "photo.mp4": "image",
    }
    frames = list(iter_frames(got[0], every=24))
    assert [f.index for f in frames] == [0, 24, 48]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("single_face.jpg", "image"),
        ("Image_with_alpha.png", "image"),
        ("single_face.mp4", "video"),
        ("face_noface.mov", "video"),
        ("OpenFace_Test.csv", None),
    ],
)
def test_kind_by_content_of_real_files(media_dir: Path, name: str, kind: str | None) -> None:
    assert kind_by_content(media_dir / name) == kind


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    write_image(os.fsdecode(raw), np.full((24, 24, 3), 9, np.uint8))
    got = expand_inputs([tmp_path])
    assert [os.fsencode(s.path) for s in got] == [raw]
    assert read_image(got[0].path).shape == (24, 24, 3)


def test_broken_link(tmp_path: Path) -> None:
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(InputError, match=r"gone\.jpg: a broken symbolic link"):
        expand_inputs([tmp_path / "gone.jpg"])

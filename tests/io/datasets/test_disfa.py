"""DISFA reader on a tiny fixture in the upstream layout (label files + an AVI per subject)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import write_shards
from facexpr.io.datasets.disfa import DISFA, DISFA_AUS
from facexpr.io.shards import ShardReader

N_FRAMES = 4


def _video(path: Path, n: int, base: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (48, 40))
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((40, 48, 3), base + 40 * i, np.uint8))
    w.release()


def intensity(subject: int, au: int, frame: int) -> int:
    return (subject + au + frame) % 6


def make_disfa(root: Path, subjects: tuple[int, ...] = (1, 2)) -> None:
    for sn in subjects:
        name = f"SN{sn:03d}"
        d = root / "ActionUnit_Labels" / name
        d.mkdir(parents=True)
        for au in DISFA_AUS:
            lines = [f"{f},{intensity(sn, au, f)}" for f in range(1, N_FRAMES + 1)]
            (d / f"{name}_au{au}.txt").write_text("\n".join(lines) + "\n")
        _video(root / "Videos_LeftCamera" / f"LeftVideo{name}_comp.avi", N_FRAMES, 10 * sn)
        _video(root / "Video_RightCamera" / f"RightVideo{name}_comp.avi", N_FRAMES, 5)


def test_reader_pairs_label_lines_with_video_frames(tmp_path: Path) -> None:
    make_disfa(tmp_path)
    r = DISFA(tmp_path)
    recs = list(r)
    assert len(recs) == len(r) == 2 * N_FRAMES
    for rec in recs:
        sn = int(rec.subject_id[2:])
        f = rec.labels["frame"]
        want = [intensity(sn, a, f) for a in DISFA_AUS]
        assert rec.labels["au_intensity"].tolist() == want
        assert rec.labels["au_occurrence"].tolist() == [int(v >= 2) for v in want]
        # Label frame f is video frame f - 1, whose grey level the fixture chose (MJPG is lossy).
        assert abs(float(rec.image.mean()) - (10 * sn + 40 * (f - 1))) < 6


def test_shards_read_back_with_published_folds(tmp_path: Path) -> None:
    make_disfa(tmp_path / "src")
    out = write_shards(DISFA(tmp_path / "src", stride=2), tmp_path / "out")
    reader = ShardReader(out, shuffle_buffer=0)
    samples = list(reader)
    assert [int(s.labels["frame"]) for s in samples] == [1, 3, 1, 3]
    s = samples[1]
    assert s.subject_id == "SN001"
    assert s.labels["au_intensity"].tolist() == [intensity(1, a, 3) for a in DISFA_AUS]
    # SN001 and SN002 are both in part 1, the test part of fold 3.
    assert reader.manifest.splits["fold3"] == ("SN001", "SN002")
    assert reader.manifest.attributes["occurrence_threshold"] == 2


def test_right_camera_and_a_frame_past_the_video(tmp_path: Path) -> None:
    make_disfa(tmp_path, subjects=(1,))
    assert abs(float(next(iter(DISFA(tmp_path, camera="right"))).image.mean()) - 5) < 6
    d = tmp_path / "ActionUnit_Labels" / "SN001"
    for au in DISFA_AUS:
        p = d / f"SN001_au{au}.txt"
        p.write_text(p.read_text() + f"{N_FRAMES + 1},0\n")
    with pytest.raises(
        InputError, match=rf"LeftVideoSN001_comp\.avi: labelled frame {N_FRAMES + 1}"
    ):
        list(DISFA(tmp_path))
    r = DISFA(tmp_path, on_error="skip")
    assert len(list(r)) == N_FRAMES
    assert r.n_skipped == 1


def test_garbled_or_missing_files_are_named(tmp_path: Path) -> None:
    make_disfa(tmp_path, subjects=(1,))
    p = tmp_path / "ActionUnit_Labels" / "SN001" / "SN001_au4.txt"
    p.write_text("1,0\n2,7\n")
    with pytest.raises(InputError, match=r"SN001_au4\.txt: line 2: intensity 7 is outside 0-5"):
        DISFA(tmp_path)
    p.write_text("1;0\n")
    with pytest.raises(InputError, match=r"SN001_au4\.txt: line 1: expected 'frame,intensity'"):
        DISFA(tmp_path)
    p.write_text("1,0\n2,1\n")
    with pytest.raises(InputError, match=r"SN001_au4\.txt: lists other frames than SN001_au1"):
        DISFA(tmp_path)
    p.unlink()
    with pytest.raises(InputError, match=r"SN001_au4\.txt: DISFA AU intensity file not found"):
        DISFA(tmp_path)
    make_disfa(tmp_path / "b", subjects=(3,))
    (tmp_path / "b" / "Videos_LeftCamera" / "LeftVideoSN003_comp.avi").unlink()
    with pytest.raises(InputError, match=r"no left video LeftVideoSN003_comp\.avi"):
        DISFA(tmp_path / "b")
    with pytest.raises(InputError, match="ActionUnit_Labels/ not found"):
        DISFA(tmp_path / "none")
    with pytest.raises(ConfigError, match="camera must be"):
        DISFA(tmp_path, camera="middle")  # type: ignore[arg-type]

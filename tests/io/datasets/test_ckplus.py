"""CK+ reader on a tiny fixture in the upstream layout, written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import InputError
from facexpr.io.datasets._common import EMOTIONS, write_shards
from facexpr.io.datasets.ckplus import CKPlus
from facexpr.io.shards import ShardReader


def _seq(root: Path, s: str, q: str, n: int, facs: str | None, emotion: str | None) -> None:
    d = root / "cohn-kanade-images" / s / q
    d.mkdir(parents=True)
    for i in range(1, n + 1):
        Image.fromarray(np.full((30, 24), 20 * i, np.uint8)).save(d / f"{s}_{q}_{i:08d}.png")
    stem = f"{s}_{q}_{n:08d}"
    if facs is not None:
        (root / "FACS" / s / q).mkdir(parents=True)
        (root / "FACS" / s / q / f"{stem}_facs.txt").write_text(facs)
    if emotion is not None:
        (root / "Emotion" / s / q).mkdir(parents=True)
        (root / "Emotion" / s / q / f"{stem}_emotion.txt").write_text(emotion)


def make_ckplus(root: Path) -> None:
    # Upstream writes numbers as "   1.0000000e+00   0.0000000e+00" per line.
    facs = "   9.0000000e+00   0.0000000e+00\n   1.7000000e+01   2.0000000e+00\n"
    _seq(root, "S005", "001", 3, facs, "   3.0000000e+00\n")
    _seq(root, "S010", "002", 4, "   1.2000000e+01   4.0000000e+00\n", "   5.0000000e+00\n")
    _seq(root, "S011", "001", 2, "   1.0000000e+00   0.0000000e+00\n", None)  # AUs only


def test_peak_frames_carry_aus_and_emotions(tmp_path: Path) -> None:
    make_ckplus(tmp_path)
    r = CKPlus(tmp_path)
    assert r.au_names == ("AU01", "AU09", "AU12", "AU17")
    recs = {x.subject_id: x for x in r}
    assert len(recs) == 3
    disgust = recs["S005"]
    assert disgust.labels["frame"] == 3
    assert disgust.labels["emotion"] == EMOTIONS.index("disgust")
    assert disgust.labels["emotion_source"] == 3
    assert disgust.labels["au_occurrence"].tolist() == [0, 1, 0, 1]
    # AU9 coded without intensity: -1 (not 0); AU17 at B; AU1 and AU12 not listed: absent, 0.
    assert disgust.labels["au_intensity"].tolist() == [0, -1, 0, 2]
    assert recs["S010"].labels["emotion"] == EMOTIONS.index("happiness")
    assert "emotion" not in recs["S011"].labels
    # The peak frame's grey level is 20 x its frame number.
    assert int(recs["S010"].image[0, 0, 0]) == 80


def test_shards_read_back_with_neutral_first_frames(tmp_path: Path) -> None:
    make_ckplus(tmp_path / "src")
    out = write_shards(CKPlus(tmp_path / "src", neutral_first=True), tmp_path / "out")
    reader = ShardReader(out, shuffle_buffer=0)
    samples = list(reader)
    assert len(samples) == 6
    first = [s for s in samples if s.provenance["role"] == "first"]
    assert all(int(s.labels["emotion"]) == 0 for s in first)
    assert all("au_occurrence" not in s.labels for s in first)
    m = reader.manifest
    assert m.attributes["source_emotions"][3] == "disgust"
    assert sorted(s for v in m.splits.values() for s in v) == ["S005", "S010", "S011"]


def test_garbled_and_inconsistent_files_are_named(tmp_path: Path) -> None:
    make_ckplus(tmp_path)
    emo = tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000003_emotion.txt"
    emo.write_text("   9.0000000e+00\n")
    with pytest.raises(InputError, match=r"_emotion\.txt: expected one emotion code 0-7"):
        CKPlus(tmp_path)
    emo.write_text("happy\n")
    with pytest.raises(InputError, match=r"_emotion\.txt: line 1: expected numbers"):
        CKPlus(tmp_path)
    emo.unlink()
    facs = tmp_path / "FACS" / "S010" / "002" / "S010_002_00000004_facs.txt"
    facs.write_text("12 9\n")
    with pytest.raises(InputError, match=r"_facs\.txt: expected 'AU intensity' lines"):
        CKPlus(tmp_path)
    facs.write_text("12 4\n")
    facs.rename(facs.with_name("S010_002_00000009_facs.txt"))
    with pytest.raises(
        InputError, match=r"S010_002_00000004_emotion\.txt: names frame 4, the FACS"
    ):
        CKPlus(tmp_path)
    (tmp_path / "Emotion" / "S010" / "002" / "S010_002_00000004_emotion.txt").unlink()
    with pytest.raises(InputError, match=r"S010/002: labels are for frame 9 but the sequence has"):
        CKPlus(tmp_path)
    with pytest.raises(InputError, match="cohn-kanade-images/ not found"):
        CKPlus(tmp_path / "nothing")

"""Aff-Wild2 (ABAW) reader on a tiny fixture in the upstream layout, written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import EMOTIONS, write_shards
from facexpr.io.datasets.affwild2 import ABAW_AUS, AffWild2
from facexpr.io.shards import ShardReader

EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = ",".join(f"AU{a}" for a in ABAW_AUS)


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def make_affwild2(root: Path, split: str = "Validation_Set") -> None:
    ann = root / "Annotations"
    # video 1: 4 frames; frame 3 has no image (upstream: no face found).
    _write(ann / "EXPR_Classification_Challenge" / split / "1-30-1280x720.txt", EXPR_HEADER,
           ["4", "-1", "0", "7"])  # fmt: skip
    au = ["0,0,0,0,0,0,1,0,0,0,1,0", "-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1",
          "1,1,0,0,0,0,0,0,0,0,0,0", "0,0,0,0,0,0,0,0,0,0,0,1"]  # fmt: skip
    _write(ann / "AU_Detection_Challenge" / split / "1-30-1280x720.txt", AU_HEADER, au)
    _write(ann / "VA_Estimation_Challenge" / split / "1-30-1280x720.txt", "valence,arousal",
           ["0.5,0.25", "-5,-5", "-0.3,-5", "0.0,0.1"])  # fmt: skip
    # video 2 (a two-person video's right face): expression only.
    _write(ann / "EXPR_Classification_Challenge" / split / "video10_right.txt", EXPR_HEADER,
           ["6", "1"])  # fmt: skip
    for video, frames in (("1-30-1280x720", (1, 2, 4)), ("video10_right", (1, 2))):
        d = root / "cropped_aligned" / video
        d.mkdir(parents=True, exist_ok=True)
        for f in frames:
            Image.fromarray(np.full((112, 112, 3), 50 * f, np.uint8)).save(d / f"{f:05d}.jpg")


def test_frames_merge_the_three_tasks_with_invalid_values_absent(tmp_path: Path) -> None:
    make_affwild2(tmp_path)
    r = AffWild2(tmp_path)
    assert r.tasks == ("expr", "au", "va")
    recs = {(x.subject_id, x.labels["frame"]): x.labels for x in r}
    # Frame 3 of video 1 has no image; frame 2 has no valid label in any task.
    assert sorted(recs) == [("1-30-1280x720", 1), ("1-30-1280x720", 4),
                            ("video10_right", 1), ("video10_right", 2)]  # fmt: skip
    assert r.n_missing_images == 1
    assert r.n_unlabelled == 1
    f1 = recs[("1-30-1280x720", 1)]
    assert f1["emotion"] == EMOTIONS.index("happiness")
    assert f1["au_occurrence"].tolist()[ABAW_AUS.index(12)] == 1
    assert (f1["valence"], f1["arousal"]) == pytest.approx((0.5, 0.25))
    f4 = recs[("1-30-1280x720", 4)]
    assert "emotion" not in f4
    assert f4["emotion_source"] == 7
    assert recs[("video10_right", 1)]["emotion"] == EMOTIONS.index("surprise")
    assert "au_occurrence" not in recs[("video10_right", 1)]


def test_shards_read_back(tmp_path: Path) -> None:
    make_affwild2(tmp_path / "src", "Train_Set")
    out = write_shards(AffWild2(tmp_path / "src", split="train"), tmp_path / "out")
    reader = ShardReader(out, shuffle_buffer=0)
    samples = list(reader)
    assert len(samples) == 4
    assert reader.manifest.attributes["au_names"][6] == "AU12"
    assert samples[0].labels["valence"] == pytest.approx(0.5)
    assert int(samples[1].labels["au_occurrence"][-1]) == 1
    assert "valence" in samples[1].labels
    assert "au_occurrence" not in samples[2].labels


def test_bad_files_are_named(tmp_path: Path) -> None:
    make_affwild2(tmp_path)
    va = tmp_path / "Annotations" / "VA_Estimation_Challenge" / "Validation_Set"
    p = va / "1-30-1280x720.txt"
    p.write_text("valence,arousal\n0.5,1.7\n")
    with pytest.raises(InputError, match=r"1-30-1280x720\.txt: line 2: bad VA value '0.5,1.7'"):
        AffWild2(tmp_path)
    p.write_text("arousal,valence\n0.5,0.5\n")
    with pytest.raises(InputError, match="header 'arousal,valence' is not 'valence,arousal'"):
        AffWild2(tmp_path)
    with pytest.raises(InputError, match="Train_Set: EXPR_Classification_Challenge folder"):
        AffWild2(tmp_path, split="train")
    with pytest.raises(InputError, match="no ABAW annotation folder"):
        AffWild2(tmp_path / "cropped_aligned")
    with pytest.raises(ConfigError, match="tasks: unknown task 'gaze'"):
        AffWild2(tmp_path, tasks=("gaze",))  # type: ignore[arg-type]

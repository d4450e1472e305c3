"""AffectNet reader on a tiny fixture in the upstream layout, written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import EMOTIONS, write_shards
from facexpr.io.datasets.affectnet import COLUMNS, AffectNet
from facexpr.io.shards import ShardReader


def _landmarks(x: float, y: float) -> str:
    return ";".join(f"{x + i:.2f};{y + i / 2:.2f}" for i in range(68))


ROWS = [
    # path, box, expression, valence, arousal
    ("689/a1.jpg", (10, 20, 40, 30), 1, 0.75, 0.25),
    ("689/b2.png", (0, 0, 64, 48), 7, -0.5, 0.5),
    ("12/c3.jpg", (5, 5, 30, 30), 10, -2, -2),  # No-Face: no emotion, invalid VA
    ("12/d4.jpg", (8, 4, 32, 32), 8, 0.1, -2),  # None: valence only
]


def make_affectnet(root: Path, split_csv: str = "validation.csv") -> None:
    lines = [",".join(COLUMNS)]
    for i, (path, box, e, v, a) in enumerate(ROWS):
        p = root / "Manually_Annotated_Images" / path
        p.parent.mkdir(parents=True, exist_ok=True)
        img = np.zeros((60, 80, 3), np.uint8)
        img[:, :, 0] = 30 * (i + 1)
        Image.fromarray(img).save(p)
        lm = _landmarks(box[0] + 1, box[1] + 2)
        lines.append(f'{path},{box[0]},{box[1]},{box[2]},{box[3]},"{lm}",{e},{v},{a}')
    (root / split_csv).write_text("\n".join(lines) + "\n")


def test_rows_map_to_the_facexpr_vocabulary_with_invalid_values_absent(tmp_path: Path) -> None:
    make_affectnet(tmp_path)
    recs = list(AffectNet(tmp_path))
    assert len(recs) == 4
    happy, contempt, noface, none = recs
    assert happy.labels["emotion"] == EMOTIONS.index("happiness")
    assert contempt.labels["emotion"] == EMOTIONS.index("contempt")
    assert happy.image.shape == (30, 40, 3)  # the face box crop
    assert happy.labels["valence"] == pytest.approx(0.75)
    assert happy.labels["landmarks"][0].tolist() == pytest.approx([1.0, 2.0])
    assert "emotion" not in noface.labels
    assert noface.labels["emotion_source"] == 10
    assert "valence" not in noface.labels
    assert "arousal" not in noface.labels
    assert none.labels["valence"] == pytest.approx(0.1)
    assert "arousal" not in none.labels
    assert [r.subject_id for r in recs] == [""] * 4


def test_class_protocols_and_shards(tmp_path: Path) -> None:
    make_affectnet(tmp_path / "src", "training.csv")
    assert len(AffectNet(tmp_path / "src", split="train", classes=8)) == 2
    assert len(AffectNet(tmp_path / "src", split="train", classes=7)) == 1
    out = write_shards(AffectNet(tmp_path / "src", split="train"), tmp_path / "out")
    samples = list(ShardReader(out, shuffle_buffer=0))
    assert [int(s.labels["emotion_source"]) for s in samples] == [1, 7, 10, 8]
    assert "valence" not in samples[2].labels
    assert samples[0].labels["face_box"].tolist() == [10, 20, 40, 30]
    assert samples[0].labels["official_split"] == "train"


def test_garbled_rows_name_the_file_and_line(tmp_path: Path) -> None:
    make_affectnet(tmp_path)
    csv = tmp_path / "validation.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], lines[1].replace(",0.75,", ",1.5,")]))
    with pytest.raises(InputError, match=r"validation\.csv: line 2: valence 1.5 is outside"):
        AffectNet(tmp_path)
    csv.write_text("\n".join([lines[0], lines[1].replace(",1,0.75", ",11,0.75")]))
    with pytest.raises(InputError, match="line 2: expression 11 is outside 0-10"):
        AffectNet(tmp_path)
    csv.write_text("\n".join([lines[0], lines[1].replace(";", ";x;", 1)]))
    with pytest.raises(InputError, match="line 2: facial_landmarks is not"):
        AffectNet(tmp_path)
    csv.write_text("\n".join([lines[0], "../../etc/x.jpg" + lines[1][len("689/a1.jpg") :]]))
    with pytest.raises(InputError, match="is not a relative path inside the image folder"):
        AffectNet(tmp_path)
    csv.write_text("subDirectory_filePath,expression\n689/a1.jpg,1\n")
    with pytest.raises(InputError, match=r"validation\.csv: CSV lacks columns \['face_x'"):
        AffectNet(tmp_path)
    with pytest.raises(InputError, match=r"training\.csv: AffectNet annotation CSV not found"):
        AffectNet(tmp_path, split="train")
    with pytest.raises(ConfigError, match="classes must be 7, 8 or 'all'"):
        AffectNet(tmp_path, classes=6)  # type: ignore[arg-type]


def test_missing_image(tmp_path: Path) -> None:
    make_affectnet(tmp_path)
    (tmp_path / "Manually_Annotated_Images" / "12" / "c3.jpg").unlink()
    with pytest.raises(InputError, match=r"c3\.jpg: image listed in the labels is missing"):
        list(AffectNet(tmp_path))
    r = AffectNet(tmp_path, on_error="skip")
    assert len(list(r)) == 3
    assert r.n_skipped == 1

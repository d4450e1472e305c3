"""RAF-DB basic reader on a tiny fixture in the upstream layout, written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import EMOTIONS, write_shards
from facexpr.io.datasets.rafdb import RafDB
from facexpr.io.shards import ShardReader

LIST = {"train_00001.jpg": 5, "train_00002.jpg": 4, "test_0001.jpg": 1, "test_0002.jpg": 7}


def make_rafdb(root: Path, items: dict[str, int] = LIST) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for i, (name, label) in enumerate(items.items()):
        lines.append(f"{name} {label}")
        img = np.full((100, 100, 3), 40 * i, np.uint8)
        Image.fromarray(img).save(root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")


def test_splits_and_labels(tmp_path: Path) -> None:
    make_rafdb(tmp_path)
    test = list(RafDB(tmp_path))
    assert [r.labels["emotion"] for r in test] == [
        EMOTIONS.index("surprise"),
        EMOTIONS.index("neutral"),
    ]
    train = list(RafDB(tmp_path, split="train"))
    assert [r.labels["emotion_name"] for r in train] == ["Sadness", "Happiness"]
    assert len(RafDB(tmp_path, split=None)) == 4


def test_shards_read_back(tmp_path: Path) -> None:
    make_rafdb(tmp_path / "src")
    out = write_shards(RafDB(tmp_path / "src", split=None), tmp_path / "out")
    samples = list(ShardReader(out, shuffle_buffer=0))
    assert [int(s.labels["emotion_source"]) for s in samples] == [5, 4, 1, 7]
    assert [s.labels["official_split"] for s in samples] == ["train", "train", "test", "test"]
    assert samples[0].image.shape == (100, 100, 3)


def test_garbled_list_and_missing_images(tmp_path: Path) -> None:
    make_rafdb(tmp_path)
    lst = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lst.write_text("test_0001.jpg 8\n")
    with pytest.raises(InputError, match=r"list_patition_label\.txt: line 1: expected 'NAME"):
        RafDB(tmp_path)
    lst.write_text("val_0001.jpg 3\n")
    with pytest.raises(InputError, match=r"line 1: image name 'val_0001\.jpg' is not train_"):
        RafDB(tmp_path)
    lst.write_text("test_0009.jpg 3\n")
    with pytest.raises(InputError, match=r"test_0009_aligned\.jpg: image listed in the labels"):
        list(RafDB(tmp_path))
    lst.unlink()
    with pytest.raises(InputError, match="RAF-DB label list not found"):
        RafDB(tmp_path)
    with pytest.raises(ConfigError, match="split must be"):
        RafDB(tmp_path, split="val")  # type: ignore[arg-type]

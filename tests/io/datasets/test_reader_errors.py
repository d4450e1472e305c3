"""The readers' remaining errors, each with the file or option it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets import (
    BP4D,
    DISFA,
    AffectNet,
    AffWild2,
    CKPlus,
    RafDB,
    _common,
    write_shards,
)
from facexpr.io.datasets._common import read_lines
from facexpr.io.datasets.affectnet import COLUMNS


def test_read_lines_names_what_it_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="label list is a folder, expected a file"):
        read_lines(tmp_path / "d", "label list")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\xfa\x00bad")
    with pytest.raises(InputError, match=r"b\.txt: label list is not text"):
        read_lines(tmp_path / "b.txt", "label list")
    (tmp_path / "big.txt").write_text("1,0\n" * 40)
    monkeypatch.setattr(_common, "MAX_LABEL_FILE_BYTES", 100)
    with pytest.raises(InputError, match=r"big\.txt: label list of 160 bytes is larger than the"):
        read_lines(tmp_path / "big.txt", "label list")


def test_bp4d_header_rows_and_options(tmp_path: Path) -> None:
    csv = tmp_path / "AUCoding" / "F001_T1.csv"  # AUCoding/ without AU_OCC/ is read too
    csv.parent.mkdir(parents=True)
    csv.write_text("frame,AU1\n1,0\n")
    with pytest.raises(InputError, match="header must list AU numbers"):
        BP4D(tmp_path, aus=(1,))
    csv.write_text("0,1\nx,0\n")
    with pytest.raises(InputError, match=r"F001_T1\.csv: row 2: not a frame number"):
        BP4D(tmp_path, aus=(1,))
    csv.write_text("0,1\n1,0\n")
    assert len(BP4D(tmp_path, aus=(1,))) == 1
    with pytest.raises(ConfigError, match="aus: give at least one AU number"):
        BP4D(tmp_path, aus=())


def test_disfa_label_files(tmp_path: Path) -> None:
    d = tmp_path / "ActionUnit_Labels" / "SN001"
    d.mkdir(parents=True)
    p = d / "SN001_au1.txt"
    p.write_text("\n")
    with pytest.raises(InputError, match="empty AU intensity file"):
        DISFA(tmp_path, aus=(1,))
    p.write_text("2,0\n1,0\n")
    with pytest.raises(InputError, match="frame numbers must start at 1 or later and increase"):
        DISFA(tmp_path, aus=(1,))
    (tmp_path / "ActionUnit_Labels" / "SN001").rename(tmp_path / "ActionUnit_Labels" / "x")
    with pytest.raises(InputError, match=r"no subject folder \(SN001 \.\.\.\)"):
        DISFA(tmp_path)
    with pytest.raises(ConfigError, match=r"occurrence_threshold must be in 1\.\.5"):
        DISFA(tmp_path, occurrence_threshold=0)


def _ck_images(root: Path, s: str = "S005", q: str = "001") -> None:
    d = root / "cohn-kanade-images" / s / q
    d.mkdir(parents=True)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(d / f"{s}_{q}_00000001.png")


def test_ckplus_names_and_orphans(tmp_path: Path) -> None:
    _ck_images(tmp_path)
    with pytest.raises(InputError, match="no labelled sequence found"):
        CKPlus(tmp_path)
    assert len(CKPlus(tmp_path, labelled_only=False)) == 1
    facs = tmp_path / "FACS" / "S005" / "001"
    facs.mkdir(parents=True)
    (facs / "S005_001_00000001.txt").write_text("1 0\n")
    with pytest.raises(InputError, match=r"name is not S005_001_00000011_facs\.txt"):
        CKPlus(tmp_path)
    (facs / "S005_001_00000001.txt").unlink()
    orphan = tmp_path / "FACS" / "S009" / "002"
    orphan.mkdir(parents=True)
    (orphan / "S009_002_00000004_facs.txt").write_text("1 0\n")
    with pytest.raises(
        InputError, match=r"S009/002: labels exist for this sequence but its images"
    ):
        CKPlus(tmp_path)


def _affectnet(root: Path, row: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "validation.csv").write_text(",".join(COLUMNS) + "\n" + row + "\n")


def test_affectnet_rows_and_options(tmp_path: Path) -> None:
    _affectnet(tmp_path, "1/a.jpg,0,0,0,10,,1,0.1,0.1")
    with pytest.raises(InputError, match=r"line 2: face box \(0, 0, 0, 10\) is empty"):
        AffectNet(tmp_path)
    _affectnet(tmp_path, '1/a.jpg,0,0,10,10,"1;2;3;4",1,0.1,0.1')
    with pytest.raises(InputError, match="facial_landmarks has 4 numbers, expected 136"):
        AffectNet(tmp_path)
    _affectnet(tmp_path, "1/a.jpg,0,0,x,10,,1,0.1,0.1")
    with pytest.raises(InputError, match="a box, expression, valence or arousal cell is not"):
        AffectNet(tmp_path)
    with pytest.raises(ConfigError, match="split must be 'train' or 'validation'"):
        AffectNet(tmp_path, split="test")  # type: ignore[arg-type]


def test_rafdb_split_without_images(tmp_path: Path) -> None:
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    with pytest.raises(InputError, match="lists no image of the split test"):
        RafDB(tmp_path)


def test_affwild2_files_and_options(tmp_path: Path) -> None:
    d = tmp_path / "EXPR_Classification_Challenge" / "Validation_Set"  # annotations at the root
    d.mkdir(parents=True)
    with pytest.raises(InputError, match=r"no annotation file \(VIDEO\.txt\) for Validation_Set"):
        AffWild2(tmp_path)
    (d / "v.txt").write_text("")
    with pytest.raises(InputError, match="empty annotation file"):
        AffWild2(tmp_path)
    (d / "v.txt").write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n9\n")
    with pytest.raises(InputError, match=r"v\.txt: line 2: bad EXPR value '9'"):
        AffWild2(tmp_path)
    with pytest.raises(ConfigError, match="split must be 'train' or 'validation'"):
        AffWild2(tmp_path, split="test")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="stride must be >= 1"):
        AffWild2(tmp_path, stride=0)


def test_write_shards_checks_its_options(tmp_path: Path) -> None:
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("test_0001.jpg 1\n")
    with pytest.raises(ConfigError, match="samples_per_shard must be >= 1"):
        write_shards(RafDB(tmp_path), tmp_path / "out", samples_per_shard=0)

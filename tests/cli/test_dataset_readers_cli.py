"""`facexpr dataset bp4d|disfa|ckplus|affectnet|rafdb|affwild2 SRC -o OUT` on tiny upstream-layout
fixtures: exit codes, counts, and no traceback for a bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.cli.main import main
from facexpr.io.shards import read_manifest


def run(*argv: str) -> int:
    return main(["-q", *argv])


def _img(path: Path, value: int = 100, size: tuple[int, int] = (32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _bp4d(root: Path) -> None:
    coding = root / "AUCoding" / "AU_OCC"
    coding.mkdir(parents=True)
    header = ",".join(["0", *map(str, range(1, 25))])
    rows = [header] + [",".join([str(f), *["0"] * 23, "1"]) for f in (5, 6, 7)]
    (coding / "F001_T1.csv").write_text("\n".join(rows) + "\n")
    for f in (5, 6, 7):
        _img(root / "F001" / "T1" / f"{f}.jpg", 20 * f)


def _rafdb(root: Path) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("test_0001.jpg 4\ntest_0002.jpg 7\n")
    for n in ("test_0001", "test_0002"):
        _img(root / "Image" / "aligned" / f"{n}_aligned.jpg", 50, (100, 100))


def test_bp4d_command_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _bp4d(tmp_path / "src")
    assert run("dataset", "bp4d", str(tmp_path / "src"), "-o", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "3 bp4d faces" in out
    assert "subjects per fold" in out
    m = read_manifest(tmp_path / "out")
    assert m.n_samples == 3
    assert m.splits["fold3"] == ("F001",)
    assert run("dataset", "bp4d-plus", str(tmp_path / "src"), "-o", str(tmp_path / "plus")) == 0
    assert read_manifest(tmp_path / "plus").attributes["dataset"] == "BP4D+ (MMSE)"


def test_skip_bad_writes_the_good_images_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _bp4d(tmp_path / "src")
    (tmp_path / "src" / "F001" / "T1" / "6.jpg").write_bytes(b"not a jpeg")
    rc = run("dataset", "bp4d", str(tmp_path / "src"), "-o", str(tmp_path / "a"))
    err = capsys.readouterr().err
    assert rc == 2
    assert "6.jpg" in err
    assert "Traceback" not in err
    rc = run("dataset", "bp4d", str(tmp_path / "src"), "-o", str(tmp_path / "b"), "--skip-bad")
    assert rc == 2
    assert "1 image(s) skipped" in capsys.readouterr().err
    assert read_manifest(tmp_path / "b").n_samples == 2


def test_a_garbled_label_file_is_named_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _rafdb(tmp_path / "src")
    assert run("dataset", "rafdb", str(tmp_path / "src"), "-o", str(tmp_path / "ok")) == 0
    assert read_manifest(tmp_path / "ok").n_samples == 2
    lst = tmp_path / "src" / "EmoLabel" / "list_patition_label.txt"
    lst.write_text("test_0001.jpg nine\n")
    assert run("dataset", "rafdb", str(tmp_path / "src"), "-o", str(tmp_path / "bad")) == 2
    err = capsys.readouterr().err
    assert "list_patition_label.txt: line 1: expected 'NAME.jpg LABEL(1-7)'" in err
    assert "Traceback" not in err
    assert run("dataset", "disfa", str(tmp_path / "none"), "-o", str(tmp_path / "d")) == 2
    assert "ActionUnit_Labels/ not found" in capsys.readouterr().err


def test_other_commands_parse_their_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for cmd, extra, problem in (
        ("ckplus", ["--neutral-first"], "cohn-kanade-images/ not found"),
        ("affectnet", ["--split", "train", "--classes", "7"], "training.csv: AffectNet annotation"),
        ("affwild2", ["--split", "train", "--stride", "2"], "no ABAW annotation folder"),
        ("disfa", ["--camera", "right"], "ActionUnit_Labels/ not found"),
    ):
        rc = run("dataset", cmd, str(tmp_path / "missing"), "-o", str(tmp_path / cmd), *extra)
        assert rc == 2, cmd
        assert problem in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run("dataset", "affectnet", str(tmp_path), "-o", str(tmp_path / "x"), "--classes", "6")
    assert e.value.code == 2

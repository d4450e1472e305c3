"""``facexpr plot``: time-series PNGs of AU, emotion and valence-arousal columns."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facexpr.analyze.plot import EMOTION_COLUMNS, plot_table
from facexpr.cli.main import main
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError

pytest.importorskip("matplotlib")


def _table(n: int = 30, faces: int = 1) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        for f in range(faces):
            row = {"input": "clip.mp4", "frame": i + 1, "face_id": f, "timestamp": i / 30,
                   "confidence": 0.9, "success": 1, "AU12_r": rng.uniform(0, 5),
                   "AU06_r": rng.uniform(0, 5), "valence": rng.uniform(-1, 1),
                   "arousal": rng.uniform(-1, 1)}  # fmt: skip
            row.update({e: rng.uniform() for e in EMOTION_COLUMNS})
            rows.append(row)
    return pd.DataFrame(rows)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_all_three_panels(tmp_path: Path) -> None:
    report = plot_table(_table(), tmp_path / "p.png", dpi=50)
    assert report.panels == ("AUs", "emotions", "valence-arousal")
    assert report.notes == ()
    assert report.rows == 30
    w, h = _png_size(tmp_path / "p.png")
    assert w == 500
    assert h > 300  # three panels


def test_missing_groups_are_skipped_with_a_note(tmp_path: Path) -> None:
    df = _table().drop(columns=[*EMOTION_COLUMNS, "valence", "arousal"])
    report = plot_table(df, tmp_path / "p.png", dpi=50)
    assert report.panels == ("AUs",)
    assert any("no emotions columns" in n for n in report.notes)
    assert any("no valence-arousal columns" in n for n in report.notes)


def test_the_main_face_is_chosen_and_others_can_be_asked(tmp_path: Path) -> None:
    df = _table(faces=2).drop(index=[1, 3])  # face 1 misses two frames: face 0 is the main one
    report = plot_table(df, tmp_path / "p.png", dpi=50)
    assert any("plotted face 0" in n for n in report.notes)
    assert report.rows == 30
    assert plot_table(df, tmp_path / "q.png", face_id=1, dpi=50).rows == 28
    with pytest.raises(InputError, match=r"no face_id 7 in the table \(has \[0, 1\]\)"):
        plot_table(df, tmp_path / "r.png", face_id=7)


def test_many_aus_are_cut_to_those_that_vary_most(tmp_path: Path) -> None:
    df = _table()
    for k in range(20):  # 20 flat AUs and the two moving ones of _table
        df[f"AU{30 + k:02d}_r"] = 0.5
    report = plot_table(df, tmp_path / "p.png", dpi=50)
    assert any("drew the 10 of 22 AUs that vary most" in n for n in report.notes)
    named = plot_table(df, tmp_path / "q.png", aus=("AU12", "AU06_r"), dpi=50)
    assert named.notes == ()
    with pytest.raises(InputError, match="no column for AU99"):
        plot_table(df, tmp_path / "r.png", aus=("AU12", "AU99"))


def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = _table()[["input", "frame", "face_id", "timestamp", "success"]]
    with pytest.raises(InputError, match="nothing to plot: no AU"):
        plot_table(bare, tmp_path / "p.png")
    with pytest.raises(ConfigError, match="dpi must be >= 10"):
        plot_table(_table(), tmp_path / "p.png", dpi=1)
    with pytest.raises(InputError, match="cannot write the plot"):
        plot_table(_table(), tmp_path / "no" / "such" / "dir" / "p.png", dpi=50)
    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(MissingDependencyError, match=r"pip install 'facexpr\[plot\]'"):
        plot_table(_table(), tmp_path / "p.png")


def test_cli_on_a_table_analysed_from_a_fixture_video(media_dir: Path, tmp_path: Path, capsys):
    table = tmp_path / "t.csv"
    video = str(media_dir / "single_face.mp4")
    argv = ["analyze", video, "-o", str(table), "--blendshapes", "mediapipe", "--end", "1.0"]
    assert main(["-q", *argv, "--no-progress", "--no-embedding"]) == 0
    capsys.readouterr()
    png = tmp_path / "t.png"
    assert main(["plot", str(table), "-o", str(png), "--dpi", "50"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(png)
    # The shipped emotion model fills the emotion and valence-arousal columns: all three panels.
    assert "no emotions columns" not in err
    assert {"happiness", "valence", "arousal"} <= set(pd.read_csv(table).columns)
    w, h = _png_size(png)
    assert w == 500
    assert h > 150
    bare = tmp_path / "bare.csv"
    pd.read_csv(table)[["input", "frame", "face_id", "timestamp", "success"]].to_csv(bare)
    assert main(["plot", str(bare), "-o", str(tmp_path / "b.png")]) == 2
    assert "nothing to plot" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.csv"), "-o", str(png)]) == 2

"""Tracks from analysis tables: hold-last filling, and a named error for every bad value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facexpr.analyze.table import ExpressionTable
from facexpr.animate.retarget import track_from_file, track_from_table
from facexpr.core import columns as C
from facexpr.core.errors import InputError


def table(n: int = 6, fps: float = 25.0, seed: int = 0) -> pd.DataFrame:
    """Returns an analysis table of one face over ``n`` frames, weights uniform in [0, 1]."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        C.INPUT: "clip.mp4", C.FRAME: np.arange(1, n + 1), C.FACE_ID: 0,
        C.TIMESTAMP: np.arange(n) / fps, C.CONFIDENCE: 0.9, C.SUCCESS: 1,
        "pitch": 1.0, "yaw": np.linspace(-10, 10, n), "roll": 0.0,
    })  # fmt: skip
    w = rng.uniform(0, 1, (n, len(C.BLENDSHAPES)))
    return pd.concat([df, pd.DataFrame(w, columns=list(C.BLENDSHAPES))], axis=1)


def test_track_values_fps_and_hold_last() -> None:
    df = table(6)
    df.loc[3, C.SUCCESS] = 0  # face lost in frame 4: holds frame 3's values
    df.loc[3, list(C.BLENDSHAPES)] = np.nan
    tr = track_from_table(ExpressionTable(df))
    assert tr.fps == pytest.approx(25.0)
    assert tr.present.tolist() == [True, True, True, False, True, True]
    jaw = C.BLENDSHAPES.index("jawOpen")
    np.testing.assert_allclose(tr.weights[:, jaw], df["jawOpen"].to_numpy()[[0, 1, 2, 2, 4, 5]],
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(tr.pose[3], tr.pose[2])
    assert tr.pose[5, 1] == pytest.approx(10.0)


def test_neutral_before_first_face_and_nan_pose_faces_camera() -> None:
    df = table(4)
    df.loc[0, C.SUCCESS] = 0
    df.loc[2, "yaw"] = np.nan
    tr = track_from_table(ExpressionTable(df))
    assert tr.weights[0].max() == 0.0
    assert tr.weights[1].max() > 0.5
    assert tr.pose[2, 1] == 0.0


def bad(edit) -> pd.DataFrame:
    df = table(6).astype({"jawOpen": object, C.TIMESTAMP: object, "yaw": object, C.FRAME: object})
    out = edit(df)
    return df if out is None else out


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.__setitem__(C.TIMESTAMP, 0.5), r"frames 1 and 2 are at 0.5 and 0.5 s"),
        (lambda d: d.loc.__setitem__((4, C.TIMESTAMP), 0.0), "must increase with the frame"),
        (lambda d: d.loc.__setitem__((2, C.TIMESTAMP), np.nan), r"'timestamp', row 3: nan"),
        (lambda d: d.loc.__setitem__((2, C.TIMESTAMP), "soon"), r"'timestamp', row 3: 'soon'"),
        (lambda d: d.loc.__setitem__((1, "jawOpen"), "wide"), r"'jawOpen', row 2: 'wide' is not"),
        (lambda d: d.loc.__setitem__((1, "jawOpen"), np.inf), r"'jawOpen', row 2: weight inf"),
        (lambda d: d.loc.__setitem__((5, "jawOpen"), 7.5), r"'jawOpen', row 6: weight 7.5"),
        (lambda d: d.loc.__setitem__((0, "yaw"), "left"), r"'yaw', row 1: 'left'"),
        (lambda d: d.loc.__setitem__((0, "yaw"), np.inf), r"'yaw', row 1: inf is not a finite"),
        (lambda d: d.__setitem__(C.TIMESTAMP, np.arange(6) * 1e-9), "frames per second"),
        (lambda d: d.loc.__setitem__((5, C.FRAME), 5), "frame 5 has several rows"),
        (lambda d: d.loc.__setitem__((5, C.FRAME), 2.5), r"'frame', row 6: 2.5 is not a whole"),
        (lambda d: d.loc.__setitem__((5, C.INPUT), "other.mp4"), "holds 2 inputs"),
        (lambda d: d.__setitem__(C.SUCCESS, 0), "no face in the table"),
        (lambda d: d.drop(columns=["jawOpen"]), "--blendshapes fit"),
        (lambda d: d.drop(columns=[C.TIMESTAMP]), "lacks the column.* timestamp"),
    ],
)  # fmt: skip
def test_bad_values_name_file_column_and_row(tmp_path: Path, edit, match: str) -> None:
    df = bad(edit)
    with pytest.raises(InputError, match=match) as e:
        track_from_table(ExpressionTable(df), source="t.csv")
    assert e.value.path == "t.csv"


def test_bad_csv_file_is_named(tmp_path: Path) -> None:
    df = table(5)
    df[C.TIMESTAMP] = 0.0  # identical timestamps used to raise ZeroDivisionError
    path = tmp_path / "same_time.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"same_time\.csv: column 'timestamp': frames 1 and 2"):
        track_from_file(path)
    df = table(5).astype({"mouthSmileLeft": object})
    df.loc[3, "mouthSmileLeft"] = "lots"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"column 'mouthSmileLeft', row 4: 'lots'"):
        track_from_file(path)


def test_unknown_face_id_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no face_id 3 in the table \(has \[0\]\)"):
        track_from_table(ExpressionTable(table(3)), face_id=3)
    with pytest.raises(InputError, match="file not found"):
        track_from_file(tmp_path / "missing.csv")

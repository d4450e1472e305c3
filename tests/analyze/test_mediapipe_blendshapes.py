"""``--blendshapes mediapipe``: Blendshape V2 columns, gaze columns, and their options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facexpr.analyze import Analyzer, AnalyzerOptions
from facexpr.analyze.analyzer import DEFAULT_LANDMARKS
from facexpr.analyze.mediapipe_blendshapes import MediaPipeBlendshapes
from facexpr.cli.main import main
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError
from facexpr.core.types import FaceResult, FrameResult
from facexpr.io.tables import read_table

GOLDEN = Path(__file__).resolve().parents[1] / "faces" / "data" / "mediapipe_golden.json"
AUS = [c for c in C.GROUPS.get("aus", ())]


def _options(**kw) -> AnalyzerOptions:
    return AnalyzerOptions(blendshapes="mediapipe", embedding=None, **kw)


def test_options_pick_and_check_the_landmark_model() -> None:
    assert _options().landmarks == "mesh478"
    assert AnalyzerOptions(embedding=None).landmarks == DEFAULT_LANDMARKS == "mesh478"
    assert "gaze" in AnalyzerOptions(embedding=None).groups
    assert "gaze" not in AnalyzerOptions(landmarks="mesh468", embedding=None).groups
    with pytest.raises(ConfigError, match="needs Face Mesh V2's 478 points: landmarks must be"):
        _options(landmarks="mesh468")
    with pytest.raises(ConfigError, match="landmarks must be 'mesh468' or 'mesh478', not 'x'"):
        AnalyzerOptions(landmarks="x", embedding=None)
    with pytest.raises(
        ConfigError, match="blendshapes must be 'auto', 'none', 'fit', 'learned' or 'mediapipe'"
    ):
        AnalyzerOptions(blendshapes="arkit", embedding=None)


def test_the_stage_refuses_faces_without_iris() -> None:
    face = FaceResult(
        box=np.zeros(4, np.float32),
        score=1.0,
        landmarks=np.zeros((68, 2), np.float32),
        mesh=np.zeros((468, 3), np.float32),
    )
    result = FrameResult(source="x", index=0, timestamp=0.0, width=10, height=10, faces=(face,))
    with pytest.raises(ConfigError, match=r"needs Face Mesh V2's 478 points.*--landmarks mesh478"):
        MediaPipeBlendshapes().process([result], tracked=False)


def test_columns_match_mediapipe_on_a_photo(media_dir: Path) -> None:
    golden = json.loads(GOLDEN.read_text("utf-8"))
    (ref,) = [r for r in golden["records"] if r["file"] == "single_face.jpg"]
    with Analyzer(_options(detector="short")) as analyzer:
        table = analyzer.analyze(media_dir / "single_face.jpg")
    df = table.data
    assert len(df) == 1
    bs = table.blendshapes.to_numpy()[0]
    assert bs.shape == (52,)
    assert ((bs >= 0) & (bs <= 1)).all()
    assert bs[-1] == 0.0  # tongueOut: not predicted by Blendshape V2
    expected = np.asarray(ref["faces"][0]["blendshapes"][1:])  # MediaPipe's, _neutral dropped
    assert np.abs(bs[:51] - expected).max() < 0.01
    aus = df[AUS].to_numpy()[0]
    assert len(AUS) >= 10
    assert ((aus >= 0) & (aus <= 5)).all()
    assert np.isnan(df[C.FIT_RESIDUAL].iloc[0])
    gaze = table.gaze.to_numpy()[0]
    assert list(table.gaze.columns) == list(C.GAZE)
    for v in (gaze[0:3], gaze[3:6]):
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)
    assert (np.abs(gaze[6:]) < np.pi / 2).all()
    # OpenFace's order: the gaze columns come right after the meta columns.
    cols = list(df.columns)
    assert cols.index("gaze_0_x") == cols.index("success") + 1


def test_smile_and_surprise(media_dir: Path) -> None:
    with Analyzer(_options()) as analyzer:
        happy = analyzer.analyze(media_dir / "0-f15-hao-ph.jpg").data.iloc[0]
        surprise = analyzer.analyze(media_dir / "0-f1-su-ph.jpg").data.iloc[0]
    smile = ("mouthSmileLeft", "mouthSmileRight")
    assert min(happy[c] for c in smile) > 0.5
    assert max(surprise[c] for c in smile) < 0.1
    assert surprise["jawOpen"] > 3 * happy["jawOpen"]
    assert happy["AU12_r"] > surprise["AU12_r"]


def test_cli_writes_blendshape_and_gaze_columns_for_a_video(media_dir: Path, tmp_path) -> None:
    out = tmp_path / "t.csv"
    argv = ["-q", "analyze", str(media_dir / "single_face.mp4"), "-o", str(out)]
    assert main([*argv, "--blendshapes", "mediapipe", "--end", "0.5", "--no-progress"]) == 0
    df = read_table(out)
    faces = df[df["success"] == 1]
    assert len(faces) >= 10
    bs = faces[list(C.BLENDSHAPES)].to_numpy()
    assert ((bs >= 0) & (bs <= 1)).all()
    g = faces[list(C.GAZE)].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(g[:, 0:3], axis=1), 1.0, atol=1e-4)
    assert (g[:, 2] < 0).all()
    assert (g[:, 5] < 0).all()
    # tongueOut is written as 0, so the table animates.
    assert main(["-q", "animate", str(out), "--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["names"][-1] == "tongueOut"


def test_cli_refuses_mediapipe_blendshapes_on_the_468_point_mesh(media_dir, tmp_path, capsys):
    argv = ["analyze", str(media_dir / "single_face.jpg"), "-o", str(tmp_path)]
    assert main([*argv, "--blendshapes", "mediapipe", "--landmarks", "mesh468"]) == 2
    assert "landmarks must be 'mesh478', not 'mesh468'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

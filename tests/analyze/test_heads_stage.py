"""The learned heads stage on real fixture faces, with weights the tests make.

The weights are a randomly initialised 2-block ``analysis`` model saved through the nn API with
its card beside it and given by path, so these tests pass the same before and after trained
weights are shipped. What trained weights must do (smile vs surprise) is in
``tests/analyze/test_shipped_heads.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from facexpr.analyze import Analyzer, AnalyzerOptions
from facexpr.analyze.heads import FaceHeads, HeadsOptions
from facexpr.analyze.stages import Stage
from facexpr.cli.main import main
from facexpr.core import columns as C
from facexpr.core.affect import AU_CLASS_COLUMNS, AU_INTENSITY_COLUMNS, EMOTIONS, HEAD_AUS
from facexpr.core.errors import ConfigError, InputError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.io.tables import read_table
from facexpr.nn import create_model, weights_to_bytes
from facexpr.nn.analysis import ANALYSIS_CARD


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A 2-block random analysis model with its card (``analysis.json``) beside it."""
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("heads")
    config = {"encoder": "fxvit_tiny_d6_p16_112", "depth": 2, "hidden_dim": 64, "au_dim": 8}
    model = create_model("analysis", **config)
    model.aus.thresholds.copy_(torch.linspace(0.2, 0.8, len(HEAD_AUS)))
    write_bytes_atomic(folder / "analysis.safetensors", weights_to_bytes(model))
    card = dataclasses.replace(ANALYSIS_CARD, config=config, sha256="")
    write_text_atomic(folder / "analysis.json", card.to_json())
    return folder / "analysis.safetensors"


@pytest.fixture(scope="module")
def group(media_dir):
    """The five faces of multi_face.jpg through the front-end only (aligned crops)."""
    with Analyzer(AnalyzerOptions(embedding=None, heads=None)) as a:
        result = a.analyze_image(media_dir / "multi_face.jpg")
    assert len(result.faces) == 5
    return result


def test_the_stage_fills_every_head_in_range(small_weights, group):
    stage = FaceHeads(HeadsOptions(weights=small_weights, runtime="torch"))
    assert isinstance(stage, Stage)
    (out,) = stage.process([group], tracked=False)
    assert len(out.faces) == 5
    for f in out.faces:
        assert f.emotions.shape == (len(EMOTIONS),)
        assert np.isclose(f.emotions.sum(), 1.0, atol=1e-5)
        assert (f.emotions >= 0).all()
        assert f.valence_arousal.shape == (2,)
        assert (np.abs(f.valence_arousal) <= 1).all()
        assert f.au_intensity.shape == (len(HEAD_AUS),)
        assert ((f.au_intensity >= 0) & (f.au_intensity <= 5)).all()
        assert set(np.unique(f.au_occurrence)) <= {0.0, 1.0}
        assert f.blendshapes.shape == (52,)
        assert ((f.blendshapes >= 0) & (f.blendshapes <= 1)).all()
        assert np.isclose(np.linalg.norm(f.embedding), 1.0, atol=1e-5)
    # Different faces, different outputs (the stage does not repeat one face).
    assert not np.allclose(out.faces[0].emotions, out.faces[1].emotions)


def test_occurrence_uses_the_saved_thresholds(small_weights, group):
    stage = FaceHeads(HeadsOptions(weights=small_weights, runtime="torch"))
    np.testing.assert_allclose(stage.thresholds, np.linspace(0.2, 0.8, len(HEAD_AUS)), atol=1e-6)
    out = stage.run([f.aligned for f in group.faces])
    np.testing.assert_array_equal(
        out["au_occurrence"], (out["au_probability"] >= stage.thresholds).astype(np.float32)
    )


def test_batching_does_not_change_the_outputs(small_weights, group):
    crops = [f.aligned for f in group.faces]
    one = FaceHeads(HeadsOptions(weights=small_weights, runtime="torch", batch_size=1)).run(crops)
    many = FaceHeads(HeadsOptions(weights=small_weights, runtime="torch", batch_size=4)).run(crops)
    for k in one:
        np.testing.assert_allclose(one[k], many[k], atol=1e-4)


def test_the_table_gets_openface_au_columns_emotions_and_va(small_weights, media_dir):
    opts = AnalyzerOptions(heads=HeadsOptions(weights=small_weights))
    assert opts.blendshapes == "learned"  # auto: learned when the heads run
    with Analyzer(opts) as a:
        table = a.analyze(media_dir / "single_face.jpg")
    df = table.data
    for col in (*AU_INTENSITY_COLUMNS, *AU_CLASS_COLUMNS, *EMOTIONS, "valence", "arousal"):
        assert col in df.columns, col
    assert df[list(AU_INTENSITY_COLUMNS)].to_numpy().max() <= 5
    assert set(np.unique(df[list(AU_CLASS_COLUMNS)].to_numpy())) <= {0.0, 1.0}
    assert np.isclose(df[list(EMOTIONS)].to_numpy().sum(), 1.0, atol=1e-4)
    assert df[list(C.BLENDSHAPES)].notna().all().all()
    # The fitted AU group is not there: its AUxx_r names would collide with the heads'.
    assert "AU16_r" not in df.columns
    assert df[list(C.EXPR)].notna().all().all()  # the embedding comes from the heads


@pytest.fixture(scope="module")
def emotion_weights(tmp_path_factory):
    """A 2-block random analysis model with the emotion and valence-arousal heads only."""
    torch.manual_seed(4)
    folder = tmp_path_factory.mktemp("heads_emotion")
    config = {"encoder": "fxvit_tiny_d6_p16_112", "depth": 2, "hidden_dim": 64,
              "heads": ["emotion", "va"]}  # fmt: skip
    model = create_model("analysis", **config)
    write_bytes_atomic(folder / "analysis.safetensors", weights_to_bytes(model))
    card = dataclasses.replace(ANALYSIS_CARD, config=config, sha256="")
    write_text_atomic(folder / "analysis.json", card.to_json())
    return folder / "analysis.safetensors"


def test_a_model_with_some_heads_fills_only_their_columns(emotion_weights, media_dir):
    heads = HeadsOptions(weights=emotion_weights)
    assert heads.head_names() == ("emotion", "va")
    opts = AnalyzerOptions(heads=heads, embedding=None)
    assert opts.blendshapes == "none"  # auto: no learned blendshapes without that head
    with Analyzer(opts) as a:
        df = a.analyze(media_dir / "single_face.jpg").data
    assert np.isclose(df[list(EMOTIONS)].to_numpy().sum(), 1.0, atol=1e-4)
    assert df[["valence", "arousal"]].notna().all().all()
    for col in (*AU_INTENSITY_COLUMNS, *AU_CLASS_COLUMNS, *C.BLENDSHAPES, *C.EXPR):
        assert col not in df.columns, col
    # With fitted blendshapes the fitted AU columns come back (the model has no AU head).
    fit = AnalyzerOptions(heads=heads, embedding=None, blendshapes="fit")
    assert "aus" in fit.groups
    assert "au_heads" not in fit.groups
    with pytest.raises(ConfigError, match="no blendshape head"):
        AnalyzerOptions(heads=heads, blendshapes="learned")


def test_an_unreadable_card_is_named(tmp_path, emotion_weights):
    from facexpr.core.errors import ModelError

    w = tmp_path / "analysis.safetensors"
    w.write_bytes(emotion_weights.read_bytes())
    (tmp_path / "analysis.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"analysis\.json: not a readable analysis card"):
        HeadsOptions(weights=w).head_names()


def test_learned_blendshapes_need_the_heads():
    with pytest.raises(ConfigError, match="blendshapes 'learned' needs the analysis heads"):
        AnalyzerOptions(blendshapes="learned", heads=None)
    with pytest.raises(
        ConfigError, match="blendshapes must be 'auto', 'none', 'fit', 'learned' or 'mediapipe'"
    ):
        AnalyzerOptions(blendshapes="guess")
    with pytest.raises(InputError, match="analysis weights file not found"):
        HeadsOptions(weights="/nonexistent/analysis.safetensors")


def test_fit_with_heads_keeps_fitted_blendshapes_and_learned_aus(small_weights, media_dir):
    opts = AnalyzerOptions(
        blendshapes="fit", heads=HeadsOptions(weights=small_weights), embedding=None
    )
    assert "aus" not in opts.groups
    assert "au_heads" in opts.groups
    with Analyzer(opts) as a:
        df = a.analyze(media_dir / "single_face.jpg").data
    assert np.isfinite(df[C.FIT_RESIDUAL]).all()  # the fitter's blendshapes, not the heads'


def test_cli_heads_weights_and_no_heads(small_weights, media_dir, tmp_path):
    out = tmp_path / "a"
    rc = main(["-q", "analyze", str(media_dir / "single_face.jpg"), "-o", str(out),
               "--heads-weights", str(small_weights), "--no-embedding"])  # fmt: skip
    assert rc == 0
    df = read_table(out / "single_face.csv")
    assert "AU12_r" in df.columns
    assert "happiness" in df.columns
    assert df["mouthSmileLeft"].notna().all()
    rc = main(["-q", "analyze", str(media_dir / "single_face.jpg"), "-o", str(tmp_path / "b"),
               "--no-heads", "--no-embedding"])  # fmt: skip
    assert rc == 0
    df = read_table(tmp_path / "b" / "single_face.csv")
    assert "AU12_r" not in df.columns
    assert "happiness" not in df.columns
    rc = main(["-q", "analyze", str(media_dir / "single_face.jpg"), "-o", str(tmp_path / "c"),
               "--no-heads", "--heads-weights", str(small_weights)])  # fmt: skip
    assert rc == 2


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="facexpr[onnx] not installed",
)
def test_onnx_runtime_gives_the_torch_outputs(small_weights, group):
    crops = [f.aligned for f in group.faces]
    t = FaceHeads(HeadsOptions(weights=small_weights, runtime="torch")).run(crops)
    o = FaceHeads(HeadsOptions(weights=small_weights, runtime="onnx"))
    assert o.runtime == "onnx"
    got = o.run(crops)
    for k in t:
        np.testing.assert_allclose(got[k][:, :], t[k], atol=2e-4, err_msg=k)
    assert FaceHeads(HeadsOptions(weights=small_weights)).runtime == "torch"  # auto: measured


def test_a_grey_card_turns_colour_faces_to_luminance(emotion_weights, group, tmp_path):
    import cv2

    from facexpr.nn import read_card

    w = tmp_path / "analysis.safetensors"
    w.write_bytes(emotion_weights.read_bytes())
    card = read_card(emotion_weights.with_suffix(".json"))
    write_text_atomic(tmp_path / "analysis.json", dataclasses.replace(card, grey=True).to_json())
    assert read_card(tmp_path / "analysis.json").grey
    colour = [f.aligned for f in group.faces[:3]]
    grey = [np.repeat(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[:, :, None], 3, 2) for c in colour]
    on_grey_card = FaceHeads(HeadsOptions(weights=w, runtime="torch")).run(colour)
    plain = FaceHeads(HeadsOptions(weights=emotion_weights, runtime="torch"))
    np.testing.assert_allclose(on_grey_card["emotion"], plain.run(grey)["emotion"], atol=1e-5)
    assert not np.allclose(plain.run(colour)["emotion"], plain.run(grey)["emotion"], atol=1e-4)


def test_the_torch_free_head_list_is_the_models():
    from facexpr.analyze.heads import ALL_HEADS
    from facexpr.nn.analysis import HEADS

    assert ALL_HEADS == HEADS


def test_the_torch_free_packed_layout_is_the_models():
    from facexpr.analyze.heads import _PACKED_LAYOUT
    from facexpr.nn.analysis import PACKED_LAYOUT

    assert _PACKED_LAYOUT == PACKED_LAYOUT


def _shipped_onnx() -> bool:
    from facexpr.nn.analysis import shipped_cards

    return importlib.util.find_spec("onnxruntime") is not None and any(
        c.onnx_file for c in shipped_cards()
    )


needs_shipped_onnx = pytest.mark.skipif(
    not _shipped_onnx(),
    reason="needs onnxruntime and shipped analysis weights with an ONNX export",
)


@needs_shipped_onnx
def test_the_shipped_onnx_export_gives_the_shipped_weights_outputs(group):
    crops = [f.aligned for f in group.faces]
    fast = FaceHeads(HeadsOptions(), device="cpu")
    assert fast.runtime == "onnx"
    assert fast.packed is None  # no torch model was built
    ref = FaceHeads(HeadsOptions(runtime="torch"), device="cpu").run(crops)
    got = fast.run(crops)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], atol=2e-3, err_msg=k)


@needs_shipped_onnx
def test_the_shipped_analysis_runs_without_importing_torch(media_dir):
    import subprocess
    import sys
    import textwrap

    code = f"""
        import sys
        from facexpr.analyze import Analyzer, AnalyzerOptions
        with Analyzer(AnalyzerOptions(device="cpu")) as a:
            table = a.analyze({str(media_dir / "single_face.jpg")!r})
        d = table.data
        print(int(d["success"].sum()), round(float(d["happiness"].iloc[0]), 2) > 0.5,
              int(d.filter(like="expr_").notna().all(axis=None)), "torch" in sys.modules)
        """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "True", "1", "False"]


@needs_shipped_onnx
def test_a_damaged_shipped_onnx_export_is_named(tmp_path, monkeypatch):
    from facexpr.analyze import heads as heads_module
    from facexpr.core.errors import ModelError
    from facexpr.nn.analysis import shipped_cards

    card = next(c for c in shipped_cards() if c.onnx_file)
    for p in (card.path(), card.path().with_suffix(".json")):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    onnx = card.path().parent / card.onnx_file
    (tmp_path / onnx.name).write_bytes(onnx.read_bytes()[:-100])  # truncated
    monkeypatch.setattr(
        heads_module, "shipped_analysis_weights", lambda: tmp_path / card.path().name
    )
    with pytest.raises(ModelError, match=rf"{onnx.name}: sha256 .* differs from its card"):
        FaceHeads(HeadsOptions(), device="cpu")
    (tmp_path / onnx.name).unlink()
    with pytest.raises(ModelError, match=rf"{onnx.name}: the shipped ONNX export cannot be read"):
        FaceHeads(HeadsOptions(), device="cpu")

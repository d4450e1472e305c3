"""The expression embedding stage on real fixture faces, with weights the tests make.

The weights are a randomly initialised ``expression`` model saved through the nn API and given
by path, so these tests pass the same before and after trained weights are shipped.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from facexpr.analyze import Analyzer, AnalyzerOptions, EmbeddingOptions, ExpressionEmbedder
from facexpr.analyze import embedding as embedding_module
from facexpr.analyze import heads as heads_module
from facexpr.analyze.stages import Stage
from facexpr.analyze.table import ExpressionTable
from facexpr.cli.main import main
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.io.tables import read_table
from facexpr.nn import create_model, weights_card, weights_to_bytes

HAS_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random ``expression`` model of the default card's architecture (what a file without a
    card beside it is read as) as a safetensors file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    model = create_model("expression", **dict(weights_card("expression").config))
    write_bytes_atomic(path, weights_to_bytes(model))
    return path


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A 2-block random model with its card beside it (``model.json``), as a run might ship."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("small")
    config = {"encoder": "fxvit_tiny_d6_p16_112", "depth": 2, "dim": 16, "hidden_dim": 64}
    write_bytes_atomic(
        folder / "model.safetensors", weights_to_bytes(create_model("expression", **config))
    )
    card = dataclasses.replace(weights_card("expression"), config=config, sha256="")
    write_text_atomic(folder / "model.json", card.to_json())
    return folder / "model.safetensors"


@pytest.fixture(scope="module")
def group_faces(media_dir, weights):
    """The five faces of multi_face.jpg through the front-end only (aligned crops)."""
    with Analyzer(AnalyzerOptions(embedding=None)) as a:
        result = a.analyze_image(media_dir / "multi_face.jpg")
    assert len(result.faces) == 5
    return result


def test_the_stage_adds_a_unit_vector_per_face(media_dir, weights):
    with Analyzer(AnalyzerOptions(embedding=EmbeddingOptions(weights=weights))) as a:
        assert isinstance(a.stages[-1], Stage)
        result = a.analyze_image(media_dir / "multi_face.jpg")
    emb = np.stack([f.embedding for f in result.faces])
    assert emb.shape == (5, 16)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Different faces, different vectors (a constant output would pass the norm check).
    gaps = np.linalg.norm(emb[:, None] - emb[None], axis=-1)[np.triu_indices(5, 1)]
    assert gaps.min() > 1e-3


@pytest.mark.parametrize("runtime", ["torch", *(["onnx"] if HAS_ORT else [])])
def test_batched_equals_one_by_one(group_faces, weights, runtime):
    crops = [f.aligned for f in group_faces.faces]
    batched = ExpressionEmbedder(EmbeddingOptions(weights, runtime=runtime, batch_size=32))
    single = ExpressionEmbedder(EmbeddingOptions(weights, runtime=runtime, batch_size=1))
    assert batched.runtime == single.runtime == runtime
    one_by_one = np.concatenate([single.embed([c]) for c in crops])
    np.testing.assert_allclose(batched.embed(crops), one_by_one, atol=1e-5)
    # The stage over two frames gives each face what embedding it alone gives.
    frames = [group_faces, dataclasses.replace(group_faces, index=1)]
    out = batched.process(frames, tracked=True)
    got = np.stack([f.embedding for r in out for f in r.faces])
    np.testing.assert_allclose(got, np.concatenate([one_by_one, one_by_one]), atol=1e-5)


@pytest.mark.skipif(not HAS_ORT, reason="needs onnx and onnxruntime (pip install 'facexpr[onnx]')")
def test_onnx_runtime_matches_torch(group_faces, weights):
    crops = [f.aligned for f in group_faces.faces]
    ort = ExpressionEmbedder(EmbeddingOptions(weights, runtime="onnx"))
    pt = ExpressionEmbedder(EmbeddingOptions(weights, runtime="torch"))
    assert (ort.runtime, ort.batch_size, pt.runtime, pt.batch_size) == ("onnx", 1, "torch", 32)
    np.testing.assert_allclose(ort.embed(crops), pt.embed(crops), atol=1e-4)


def test_auto_runtime_follows_what_is_installed(weights):
    e = ExpressionEmbedder(EmbeddingOptions(weights))
    assert e.runtime == ("onnx" if HAS_ORT else "torch")


def test_a_card_beside_the_weights_gives_the_architecture(group_faces, small_weights):
    e = ExpressionEmbedder(EmbeddingOptions(small_weights))
    assert len(e.model.encoder.blocks) == 2
    emb = e.embed([f.aligned for f in group_faces.faces])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_analyze_adds_expr_columns_only_with_weights(media_dir, weights, tmp_path, monkeypatch):
    photo = str(media_dir / "single_face.jpg")
    with_w, without = tmp_path / "with.csv", tmp_path / "off.csv"
    argv = ["-q", "analyze", photo, "-o", str(with_w), "--expression-weights", str(weights)]
    assert main(argv) == 0
    df = read_table(with_w)
    cols = [c for c in df.columns if c.startswith("expr_")]
    assert cols == [f"expr_{i:02d}" for i in range(16)]
    assert cols == list(C.GROUPS["expr"])
    assert abs(np.linalg.norm(df[cols].to_numpy()[0]) - 1.0) < 1e-5
    table = ExpressionTable(df)
    assert table.embedding_array().shape == (1, 16)
    assert main(["-q", "analyze", photo, "-o", str(without), "--no-embedding"]) == 0
    df_off = read_table(without)
    assert not [c for c in df_off.columns if c.startswith("expr_")]
    with pytest.raises(ConfigError, match="the table has no expr_\\* columns"):
        ExpressionTable(df_off).embedding_array()
    # The other columns are the same with and without the embedding.
    same = [c for c in df_off.columns if c != "input"]
    np.testing.assert_allclose(df[same].to_numpy(float), df_off[same].to_numpy(float))


def test_without_shipped_weights_analyze_runs_and_says_so_once(
    media_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(embedding_module, "shipped_expression_weights", lambda: None)
    # The learned heads also carry an embedding: without their weights too.
    monkeypatch.setattr(heads_module, "shipped_analysis_weights", lambda: None)
    out = tmp_path / "t"
    photos = [str(media_dir / "single_face.jpg"), str(media_dir / "multi_face.jpg")]
    assert main(["analyze", *photos, "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("no expression weights are shipped yet") == 1
    assert "--expression-weights PATH" in err
    for name in ("single_face.csv", "multi_face.csv"):
        assert not [c for c in read_table(out / name).columns if c.startswith("expr_")]
    with pytest.raises(ModelError, match="no expression weights are shipped yet"):
        ExpressionEmbedder()


def test_video_frames_get_embeddings(media_dir, weights, tmp_path):
    out = tmp_path / "clip.csv"
    argv = ["-q", "analyze", str(media_dir / "single_face.mp4"), "-o", str(out), "--every", "6"]
    assert main([*argv, "--expression-weights", str(weights)]) == 0
    df = read_table(out)
    assert len(df) == 12
    assert (df["success"] == 1).all()
    emb = df[list(C.EXPR)].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_options_are_checked(weights, tmp_path, group_faces):
    with pytest.raises(ConfigError, match="runtime must be 'auto', 'onnx' or 'torch', not 'tf'"):
        EmbeddingOptions(runtime="tf")
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1 or None, not 0"):
        EmbeddingOptions(batch_size=0)
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(InputError, match=r"nope\.safetensors: expression weights file not found"):
        EmbeddingOptions(weights=missing)
    with pytest.raises(ConfigError, match="embedding must be EmbeddingOptions or None, not str"):
        AnalyzerOptions(embedding="on")
    with pytest.raises(ConfigError, match="needs the aligned crop: align_size must be > 0"):
        AnalyzerOptions(align_size=0, embedding=EmbeddingOptions(weights=weights))
    e = ExpressionEmbedder(EmbeddingOptions(weights, runtime="torch"))
    with pytest.raises(ConfigError, match=r"crops must be square \(S, S, 3\) uint8"):
        e.embed([np.zeros((20, 30, 3), np.uint8)])
    no_crop = dataclasses.replace(
        group_faces, faces=tuple(dataclasses.replace(f, aligned=None) for f in group_faces.faces)
    )
    with pytest.raises(ConfigError, match="needs the aligned face crop"):
        e.process([no_crop], tracked=False)


def test_bad_weights_files_are_named(tmp_path, weights, small_weights):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"broken\.safetensors: not a readable safetensors"):
        ExpressionEmbedder(EmbeddingOptions(broken))
    # The 2-block file without its card is read as the default 6-block architecture.
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes(small_weights.read_bytes())
    with pytest.raises(ModelError, match=r"alone\.safetensors: .* tensors .* missing"):
        ExpressionEmbedder(EmbeddingOptions(alone))


def test_another_width_than_the_table_is_refused(tmp_path):
    torch.manual_seed(2)
    config = {"encoder": "fxvit_tiny_d6_p16_112", "depth": 1, "dim": 8, "hidden_dim": None}
    write_bytes_atomic(
        tmp_path / "w8.safetensors", weights_to_bytes(create_model("expression", **config))
    )
    card = dataclasses.replace(weights_card("expression"), config=config, sha256="")
    write_text_atomic(tmp_path / "w8.json", card.to_json())
    options = AnalyzerOptions(embedding=EmbeddingOptions(tmp_path / "w8.safetensors"))
    with pytest.raises(ConfigError, match="gives 8-d embeddings; the table has 16 expr_"):
        Analyzer(options)


@pytest.mark.parametrize(("mode", "pulled"), [("video", 32), ("stream", 1)])
def test_video_is_chunked_and_a_live_stream_is_not_held_back(
    media_dir, weights, monkeypatch, mode, pulled
):
    from facexpr.analyze import analyzer as analyzer_module
    from facexpr.core.types import RunningMode
    from facexpr.io import MediaSource, VideoReader

    count = [0]

    def frames(source, **_):
        for frame in VideoReader(media_dir / "single_face.mp4"):
            count[0] += 1
            yield frame

    monkeypatch.setattr(analyzer_module, "iter_frames", frames)
    options = AnalyzerOptions(mode=RunningMode(mode), embedding=EmbeddingOptions(weights))
    with Analyzer(options) as a:
        it = a.iter_results(MediaSource(str(media_dir / "single_face.mp4"), "video"))
        _, first = next(it)
        assert count[0] == pulled
        assert first.faces[0].embedding.shape == (16,)

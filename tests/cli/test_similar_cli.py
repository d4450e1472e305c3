"""`facexpr similar` on the real fixtures, with random expression weights the tests make.

With any weights, the query photo found again in the folder is rank 1 at similarity 1.0 (same
crop, same embedding): that, the outputs and the error paths do not depend on trained weights.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from facexpr.analyze import AnalyzerOptions, EmbeddingOptions, SimilarResult, find_similar
from facexpr.analyze import embedding as embedding_module
from facexpr.analyze.similarity import (
    SHEET_CAPTION,
    SHEET_COLUMNS,
    SHEET_PAD,
    SHEET_TILE,
    parse_query,
)
from facexpr.cli.main import main
from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.io._files import write_bytes_atomic
from facexpr.nn import create_model, weights_card, weights_to_bytes

PHOTOS = ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg")
COLUMNS = [
    "rank",
    "input",
    "frame",
    "timestamp",
    "face_id",
    "similarity",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    # The default card's architecture: a weights file without a card beside it is read as that.
    model = create_model("expression", **dict(weights_card("expression").config))
    write_bytes_atomic(path, weights_to_bytes(model))
    return path


@pytest.fixture
def folder(media_dir, tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for name in PHOTOS:
        shutil.copy(media_dir / name, d / name)
    return d


def run(*argv: str) -> int:
    return main(["-q", *argv])


def _sheet_size(cells: int) -> tuple[int, int]:
    cols = min(cells, SHEET_COLUMNS)
    rows = -(-cells // cols)
    return rows * (SHEET_TILE + SHEET_CAPTION + 2 * SHEET_PAD), cols * (SHEET_TILE + 2 * SHEET_PAD)


def test_the_query_photo_is_found_first(folder, weights, tmp_path):
    out = tmp_path / "out"
    query = folder / "45-m7-di-ph.jpg"
    rc = run("similar", str(query), "--in", str(folder), "--top", "4", "-o", str(out),
             "--expression-weights", str(weights))  # fmt: skip
    assert rc == 0
    df = pd.read_csv(out / "similar.csv")
    assert list(df.columns) == COLUMNS
    assert df["rank"].tolist() == [1, 2, 3, 4]
    assert df["input"].iloc[0] == str(query)
    assert df["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert (df["similarity"].iloc[1:] < 0.9999).all()
    assert (np.diff(df["similarity"]) <= 0).all()
    assert (df["face_width"] > 20).all()
    sheet = cv2.imread(str(out / "similar.png"))
    assert sheet.shape[:2] == (SHEET_TILE + SHEET_CAPTION + 2 * SHEET_PAD, 5 * 168)
    assert sheet.shape[:2] == _sheet_size(5)


def test_more_matches_wrap_and_top_bounds_the_rows(folder, weights, tmp_path):
    out = tmp_path / "out"
    rc = run("similar", str(folder / "single_face.jpg"), "--in", str(folder), "--top", "20",
             "-o", str(out), "--expression-weights", str(weights))  # fmt: skip
    assert rc == 0
    df = pd.read_csv(out / "similar.csv")
    assert len(df) == 8  # 1 + 5 + 1 + 1 faces in the four photos, fewer than --top
    assert df["input"].iloc[0] == str(folder / "single_face.jpg")
    assert sorted(df[df["input"].str.endswith("multi_face.jpg")]["face_id"]) == [0, 1, 2, 3, 4]
    assert cv2.imread(str(out / "similar.png")).shape[:2] == (2 * 204, 6 * 168)


def test_a_bad_input_fails_alone(folder, weights, tmp_path, capsys):
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    rc = main(["similar", str(folder / "single_face.jpg"), "--in", str(folder), "--top", "2",
               "-o", str(out), "--expression-weights", str(weights), "--no-progress"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "1 input(s) failed" in err
    assert str(folder / "broken.jpg") in err
    df = pd.read_csv(out / "similar.csv")
    assert df["input"].iloc[0] == str(folder / "single_face.jpg")
    assert len(df) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jpg", None, "missing.jpg: query file not found"),
        ("garbage.jpg", b"\x00\x01 not a jpeg", "garbage.jpg: "),
        ("free-mountain-vector-01.jpg", "copy", "no face found in the query"),
    ],
)
def test_a_bad_query_exits_2_naming_it(
    media_dir, folder, weights, tmp_path, capsys, name, content, message
):
    query = tmp_path / name
    if content == "copy":
        shutil.copy(media_dir / name, query)
    elif content is not None:
        query.write_bytes(content)
    out = tmp_path / "out"
    rc = main(["similar", str(query), "--in", str(folder), "-o", str(out),
               "--expression-weights", str(weights)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(query) in err
    assert not (out / "similar.csv").exists()
    if content is None:
        assert not out.exists()  # checked before the output folder is made


def test_a_video_frame_as_query(media_dir, weights, tmp_path, capsys):
    video = media_dir / "single_face.mp4"
    out = tmp_path / "out"
    rc = main(["similar", f"{video}@1.5s", "--in", str(video), "--every", "9", "--top", "3",
               "-o", str(out), "--expression-weights", str(weights)])  # fmt: skip
    assert rc == 0
    assert "at 1.50 s" in capsys.readouterr().err
    df = pd.read_csv(out / "similar.csv")
    assert len(df) == 3
    assert (df["input"] == str(video)).all()
    assert set(df["frame"]) <= set(range(1, 73, 9))
    assert df["similarity"].iloc[0] > 0.99  # the same face a few frames away, same expression


def test_the_python_api(media_dir, folder, weights, monkeypatch):
    options = AnalyzerOptions(embedding=EmbeddingOptions(weights=weights))
    res = find_similar(folder / "0-f1-su-ph.jpg", [folder], top=2, options=options)
    assert isinstance(res, SimilarResult)
    assert res.compared == 8
    assert res.matches[0].input == str(folder / "0-f1-su-ph.jpg")
    np.testing.assert_allclose(res.matches[0].embedding, res.query.embedding, atol=1e-6)
    assert res.matches[0].crop.shape == (224, 224, 3)
    assert res.failures == ()
    with pytest.raises(ConfigError, match="top must be an integer >= 1, not 0"):
        find_similar(folder / "0-f1-su-ph.jpg", [folder], top=0, options=options)
    with pytest.raises(ConfigError, match="ranking by expression needs the embedding"):
        find_similar(folder / "0-f1-su-ph.jpg", [folder], options=AnalyzerOptions(embedding=None))
    # No expression model at all: neither the heads (off here) nor a shipped expression file.
    monkeypatch.setattr(embedding_module, "shipped_expression_weights", lambda: None)
    with pytest.raises(ModelError, match="needs expression weights, and none are shipped yet"):
        find_similar(folder / "0-f1-su-ph.jpg", [folder], options=AnalyzerOptions(heads=None))


def test_parse_query(media_dir, tmp_path):
    video = media_dir / "single_face.mp4"
    assert parse_query(f"{video}@12.5s") == (video, 12.5)
    assert parse_query(f"{video}@3") == (video, 3.0)
    assert parse_query(video) == (video, None)
    odd = tmp_path / "me@2s.jpg"
    odd.write_bytes(b"x")
    assert parse_query(odd) == (odd, None)  # an existing name is taken as it is
    with pytest.raises(InputError, match=r"nope\.mp4: query file not found"):
        parse_query(tmp_path / "nope.mp4@1s")


def test_a_photo_with_a_time_is_refused(media_dir, weights, tmp_path, capsys):
    q = f"{media_dir / 'single_face.jpg'}@2s"
    rc = main(["similar", q, "--in", str(media_dir / "single_face.jpg"), "-o", str(tmp_path),
               "--expression-weights", str(weights)])  # fmt: skip
    assert rc == 2
    assert "single_face.jpg: is a photo; '@2s' names a video frame" in capsys.readouterr().err

"""`facexpr normalize` on the real fixtures, with a RANDOM-INIT normaliser the tests make.

The weights here are untrained (random, the decoder's last layer re-drawn so the output depends
on the input): these tests check the pipeline (front-end, crop, network, files, errors, exit
codes), not what a trained normaliser draws; that is docs/normalize.md's and the benchmark's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facexpr.analyze.normalize import NormalizeOptions, Normalizer, load_normalizer
from facexpr.cli.main import main
from facexpr.core.errors import ConfigError, ModelError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.io.images import read_image
from facexpr.nn import create_model, weights_to_bytes
from facexpr.nn.registry import WeightsCard, sha256_file

S = 32
CONFIG = {"encoder": "conv", "img_size": S, "dim": 32, "heads": 2, "merge_depth": 1,
          "decoder_channels": [16, 16, 8, 8], "encoder_channels": [8, 8, 16]}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as 'facexpr train normalizer' leaves it, with random weights."""
    d = tmp_path_factory.mktemp("normrun")
    torch.manual_seed(0)
    m = create_model("normalizer", **CONFIG)
    torch.nn.init.normal_(m.decoder.out.weight, std=0.2)
    write_bytes_atomic(d / "model.safetensors", weights_to_bytes(m))
    card = WeightsCard(tag="random", input_size=(S, S), file=str(d / "model.safetensors"),
                       sha256=sha256_file(d / "model.safetensors"), config=CONFIG,
                       notes="random init, for tests only")  # fmt: skip
    write_text_atomic(d / "normalizer.json", card.to_json())
    return d


def test_a_photo_gives_one_normalised_png(run_dir, media_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["normalize", str(media_dir / "single_face.jpg"), str(media_dir / "0-f1-su-ph.jpg"),
               "-o", str(out), "--weights", str(run_dir)])  # fmt: skip
    assert rc == 0
    a, b = read_image(out / "single_face.png"), read_image(out / "0-f1-su-ph.png")
    assert a.shape == b.shape == (S, S, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5  # drawn from each input face
    assert "2 face(s) normalised into 2 file(s)" in capsys.readouterr().err


def test_library_matches_the_cli(run_dir, media_dir, tmp_path) -> None:
    norm = Normalizer(NormalizeOptions(weights=str(run_dir / "model.safetensors")))
    face = norm.normalize_image(read_image(media_dir / "single_face.jpg"), "single_face.jpg")
    assert face.aligned.shape == face.normalized.shape == (S, S, 3)
    assert main(["normalize", str(media_dir / "single_face.jpg"), "-o", str(tmp_path),
                 "--weights", str(run_dir)]) == 0  # fmt: skip
    np.testing.assert_array_equal(read_image(tmp_path / "single_face.png"), face.normalized)
    # Batched equals one by one.
    two = norm.normalize_crops(np.stack([face.aligned, face.aligned[:, ::-1]]))
    np.testing.assert_array_equal(two[0], face.normalized)
    with pytest.raises(ConfigError, match=r"expected \(N, 32, 32, 3\)"):
        norm.normalize_crops(np.zeros((1, 64, 64, 3), np.uint8))


def test_several_faces_use_the_largest_or_are_refused(run_dir, media_dir, tmp_path, capsys):
    photo = str(media_dir / "multi_face.jpg")
    assert main(["normalize", photo, "-o", str(tmp_path / "a"), "--weights", str(run_dir)]) == 0
    assert "faces found; the largest was normalised" in capsys.readouterr().err
    assert (tmp_path / "a" / "multi_face.png").is_file()
    rc = main(["normalize", photo, "-o", str(tmp_path / "b"), "--weights", str(run_dir),
               "--single-face"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{photo}: 5 faces found; --single-face takes one person" in err
    assert not (tmp_path / "b" / "multi_face.png").exists()


def test_a_batch_writes_the_good_inputs_and_names_the_bad(run_dir, media_dir, tmp_path, capsys):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(media_dir / "single_face.jpg", folder / "a.jpg")
    shutil.copy(media_dir / "free-mountain-vector-01.jpg", folder / "b.jpg")
    out = tmp_path / "out"
    rc = main(["normalize", str(folder), str(junk), str(tmp_path / "missing.png"), "-o",
               str(out), "--weights", str(run_dir)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{folder / 'b.jpg'}: no face found" in err
    assert f"{junk}" in err
    assert f"{tmp_path / 'missing.png'}: file not found" in err
    assert "Traceback" not in err
    assert read_image(out / "a.png").shape == (S, S, 3)  # the good input is kept
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png"]


def test_profile_and_tiny_faces_are_refused_naming_the_file(run_dir, media_dir, tmp_path,
                                                            capsys) -> None:  # fmt: skip
    photo = str(media_dir / "single_face.jpg")
    # The limits are tightened so that this frontal fixture trips them: the checks, not a
    # real profile photo (the fixtures have none).
    rc = main(["normalize", photo, "-o", str(tmp_path / "a"), "--weights", str(run_dir),
               "--max-yaw", "0.01"])  # fmt: skip
    assert rc == 2
    assert "degrees from the camera (a profile view)" in capsys.readouterr().err
    rc = main(["normalize", photo, "-o", str(tmp_path / "b"), "--weights", str(run_dir),
               "--min-eye-distance", "5000"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{photo}: the face is too small: " in err
    assert "needs at least 5000" in err


def test_a_really_small_photo_is_too_small(run_dir, media_dir, tmp_path, capsys) -> None:
    import cv2

    from facexpr.io.images import write_image

    img = read_image(media_dir / "single_face.jpg")
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // 6, h // 6), interpolation=cv2.INTER_AREA)
    write_image(tmp_path / "small.png", small)
    rc = main(["normalize", str(tmp_path / "small.png"), "-o", str(tmp_path / "o"),
               "--weights", str(run_dir)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    # Either the detector misses it or the eye distance check refuses it; never a crop.
    assert ("the face is too small" in err) or ("no face found" in err), err
    assert not (tmp_path / "o" / "small.png").exists()


def test_a_video_gives_a_side_by_side_video(run_dir, media_dir, tmp_path) -> None:
    from facexpr.io.video import VideoReader, probe_video

    out = tmp_path / "v"
    assert main(["normalize", str(media_dir / "single_face.mp4"), "-o", str(out),
                 "--weights", str(run_dir)]) == 0  # fmt: skip
    info = probe_video(out / "single_face.mp4")
    src = probe_video(media_dir / "single_face.mp4")
    assert (info.width, info.height) == (2 * S, S)
    assert info.n_frames == src.n_frames
    with VideoReader(out / "single_face.mp4") as r:
        first = next(iter(r)).image
    assert np.abs(first[:, :S].astype(int) - first[:, S:].astype(int)).mean() > 1  # two halves


def test_a_video_without_faces_is_an_error_and_leaves_no_file(run_dir, media_dir, tmp_path,
                                                              capsys) -> None:  # fmt: skip
    rc = main(["normalize", str(media_dir / "no_face.mp4"), "-o", str(tmp_path),
               "--weights", str(run_dir)])  # fmt: skip
    assert rc == 2
    assert f"{media_dir / 'no_face.mp4'}: no frame has a usable face" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mp4"))


def test_weights_errors_say_what_to_do(run_dir, tmp_path, media_dir, capsys) -> None:
    photo = str(media_dir / "single_face.jpg")
    assert main(["normalize", photo, "-o", str(tmp_path / "a")]) == 2
    assert "no normaliser weights are shipped yet; train them with  facexpr train normalizer" in (
        capsys.readouterr().err)  # fmt: skip
    assert main(["normalize", photo, "-o", str(tmp_path / "b"), "--weights",
                 str(tmp_path / "nothing")]) == 2  # fmt: skip
    assert "normaliser weights not found" in capsys.readouterr().err
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run_dir / "model.safetensors", lone / "model.safetensors")
    with pytest.raises(ModelError, match=r"normalizer\.json: not found"):
        load_normalizer(lone)
    (lone / "normalizer.json").write_text('{"tag": "x", "input_size": [32, 32], '
                                          '"config": {"img_size": 40}}')  # fmt: skip
    with pytest.raises(ModelError, match="does not build a normaliser"):
        load_normalizer(lone)
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").glob("*.png"))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"several": "all"}, "several"),
        ({"max_yaw": 95.0}, "max_yaw"),
        ({"min_eye_distance": 1.0}, "min_eye_distance"),
        ({"min_face_score": 1.5}, "min_face_score"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_options_are_checked(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NormalizeOptions(**kw)

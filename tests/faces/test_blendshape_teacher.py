"""Blendshape V2 teacher on the fixture photos: the vendored models, and a bundle read by path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.faces.blendshape_teacher import (
    BUNDLE_ENV,
    TEACHER_NAMES,
    BlendshapeTeacher,
    resolve_bundle,
)
from facexpr.io.images import read_image

N = {n: i for i, n in enumerate(TEACHER_NAMES)}


@pytest.fixture(scope="module")
def bundle(shared_dir: Path) -> Path:
    p = shared_dir / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
    if not p.is_file():
        pytest.skip(f"MediaPipe Face Landmarker bundle not found at {p}")
    return p


@pytest.fixture(scope="module")
def teacher() -> BlendshapeTeacher:
    return BlendshapeTeacher()  # the vendored models


def test_a_bundle_by_path_gives_the_vendored_models_results(
    teacher: BlendshapeTeacher, bundle: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BUNDLE_ENV, raising=False)
    assert teacher.bundle is None
    img = read_image(media_dir / "single_face.jpg")
    (mine,) = teacher.run_image(img)
    monkeypatch.setenv(BUNDLE_ENV, str(bundle))
    other = BlendshapeTeacher()
    assert other.bundle == bundle
    (theirs,) = other.run_image(img)
    np.testing.assert_array_equal(mine.scores, theirs.scores)
    np.testing.assert_array_equal(mine.landmarks, theirs.landmarks)


def _scores(teacher: BlendshapeTeacher, media_dir: Path, name: str) -> np.ndarray:
    (r,) = teacher.run_image(read_image(media_dir / name))
    assert r.presence > 0.9
    return r.scores


def _mean(s: np.ndarray, *names: str) -> float:
    return float(np.mean([s[N[n]] for n in names]))


def test_expressions_on_the_fixture_photos(teacher: BlendshapeTeacher, media_dir: Path) -> None:
    happy = _scores(teacher, media_dir, "0-f15-hao-ph.jpg")
    surprise = _scores(teacher, media_dir, "0-f1-su-ph.jpg")
    anger = _scores(teacher, media_dir, "15-f13-anc-ph.jpg")
    smile = ("mouthSmileLeft", "mouthSmileRight")
    assert _mean(happy, *smile) > 0.6
    assert _mean(surprise, *smile) < 0.1
    assert _mean(anger, *smile) < 0.1
    assert surprise[N["jawOpen"]] > 0.35
    assert surprise[N["jawOpen"]] > 3 * happy[N["jawOpen"]]
    assert surprise[N["browInnerUp"]] > 0.2
    brow_down = ("browDownLeft", "browDownRight")
    assert _mean(anger, *brow_down) > 0.15
    assert _mean(anger, *brow_down) > 5 * _mean(surprise, *brow_down)


def test_crop_mode_agrees_with_the_detector_path(teacher: BlendshapeTeacher, media_dir: Path):
    from facexpr.core.types import Frame
    from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions

    img = read_image(media_dir / "single_face.jpg")
    (full,) = teacher.run_image(img)
    with FaceFrontEnd(FaceFrontEndOptions(align_size=224)) as fe:
        crop = fe.process(Frame(image=img, index=0, timestamp=0.0, source="x")).faces[0].aligned
    r = teacher.run_crop(crop)
    assert r.presence > 0.9
    assert float(np.abs(r.scores - full.scores).max()) < 0.1
    grey = teacher.run_crop(crop[:, :, 1])  # greyscale input is replicated
    assert _mean(grey.scores, "mouthSmileLeft", "mouthSmileRight") > 0.6


def test_landmarks_and_input_normalisation(teacher: BlendshapeTeacher, media_dir: Path) -> None:
    img = read_image(media_dir / "single_face.jpg")
    (r,) = teacher.run_image(img)
    assert r.landmarks.shape == (478, 3)
    # The iris centres (468, 473) lie between their eye corners.
    for centre, a, b in ((468, 33, 133), (473, 362, 263)):
        lo, hi = sorted((r.landmarks[a, 0], r.landmarks[b, 0]))
        assert lo < r.landmarks[centre, 0] < hi
    raw = teacher.blendshapes(r.landmarks)
    np.testing.assert_allclose(raw[1:], r.scores, atol=1e-6)
    moved = r.landmarks.copy()
    moved[:, :2] = moved[:, :2] * 0.5 + 40.0  # the model normalises its input points itself
    np.testing.assert_allclose(teacher.blendshapes(moved), raw, atol=1e-3)
    full = r.arkit52()
    assert full.shape == (52,)
    assert np.isnan(full[-1])


def test_bundle_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUNDLE_ENV, raising=False)
    assert resolve_bundle(None) is None  # the vendored models
    monkeypatch.setenv(BUNDLE_ENV, str(tmp_path / "missing.task"))
    with pytest.raises(InputError, match=r"missing\.task: Face Landmarker bundle not found"):
        BlendshapeTeacher()
    (tmp_path / "junk.task").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a Face Landmarker bundle \\(not a zip"):
        BlendshapeTeacher(tmp_path / "junk.task")
    with zipfile.ZipFile(tmp_path / "partial.task", "w") as z:
        z.writestr("face_detector.tflite", b"x")
    with pytest.raises(InputError, match=r"lacks face_landmarks_detector\.tflite"):
        BlendshapeTeacher(tmp_path / "partial.task")
    with zipfile.ZipFile(tmp_path / "bad.task", "w") as z:
        z.writestr("face_landmarks_detector.tflite", b"x")
        z.writestr("face_blendshapes.tflite", b"x")
    with pytest.raises(ModelError, match="cannot load TFLite model"):
        BlendshapeTeacher(tmp_path / "bad.task")
    with pytest.raises(ConfigError, match="num_threads: 0 < 1"):
        BlendshapeTeacher(tmp_path / "bad.task", num_threads=0)
    with pytest.raises(ConfigError, match="refine: -1 < 0"):
        BlendshapeTeacher(tmp_path / "bad.task", refine=-1)


def test_bad_inputs(teacher: BlendshapeTeacher) -> None:
    with pytest.raises(ConfigError, match=r"expected \(478, 2 or 3\) landmarks"):
        teacher.blendshapes(np.zeros((468, 3)))
    with pytest.raises(InputError, match="must be uint8"):
        teacher.run_crop(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match=r"\(H, W, 3\) RGB or \(H, W\) grey"):
        teacher.run_crop(np.zeros((64, 64, 4), np.uint8))


def test_video_mode_tracks_every_frame(teacher: BlendshapeTeacher, media_dir: Path) -> None:
    from facexpr.io.video import VideoReader

    with VideoReader(media_dir / "single_face.mp4") as reader:
        frames = [f.image for _, f in zip(range(12), reader, strict=False)]
    results = list(teacher.run_video(frames))
    assert len(results) == 12
    assert all(r is not None and r.presence > 0.9 for r in results)
    (still,) = teacher.run_image(frames[-1])  # tracking ROI vs a fresh detection: same scores
    assert float(np.abs(results[-1].scores - still.scores).max()) < 0.1
    blank = np.zeros((240, 320, 3), np.uint8)
    assert list(teacher.run_video([blank])) == [None]


def test_vendored_models_are_the_bundles_members(bundle: Path) -> None:
    """The package carries the bundle's two models unchanged, so it needs no ../shared."""
    import hashlib

    from facexpr.faces._tflite import MODEL_DIR

    with zipfile.ZipFile(bundle) as z:
        for name in ("face_landmarks_detector.tflite", "face_blendshapes.tflite"):
            vendored = (MODEL_DIR / name).read_bytes()
            assert hashlib.sha256(vendored).hexdigest() == hashlib.sha256(z.read(name)).hexdigest()
        detector = z.read("face_detector.tflite")
    # The bundle's detector is not copied: it computes what the vendored short-range one does.
    from facexpr.faces._tflite import TFLiteModel

    theirs = TFLiteModel("face_detector.tflite", content=detector)
    ours = TFLiteModel("face_detection_short_range.tflite")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    names = ("regressors", "classificators")
    for a, b in zip(theirs(x, names), ours(x, names), strict=True):
        np.testing.assert_array_equal(a, b)

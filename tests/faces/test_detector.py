from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.detector import (
    FaceDetector,
    FaceDetectorOptions,
    as_rgb,
    ssd_anchors,
    weighted_nms,
)


@pytest.fixture(scope="module")
def full() -> FaceDetector:
    return FaceDetector(FaceDetectorOptions(model="full"))


@pytest.fixture(scope="module")
def short() -> FaceDetector:
    return FaceDetector(FaceDetectorOptions(model="short"))


def test_anchor_counts_match_models() -> None:
    assert ssd_anchors(192, (4,), 1).shape == (2304, 2)
    assert ssd_anchors(128, (8, 16, 16, 16), 2).shape == (896, 2)
    a = ssd_anchors(128, (8, 16, 16, 16), 2)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])


def test_weighted_nms_merges_overlaps_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = weighted_nms(boxes, scores, kps, 0.3)
    assert len(out) == 2
    np.testing.assert_allclose(out[0][0], [0.25, 0, 10.25, 10], atol=1e-5)
    assert out[0][1] == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("name", "count"),
    [("single_face.jpg", 1), ("multi_face.jpg", 5), ("free-mountain-vector-01.jpg", 0)],
)
def test_full_range_counts(full: FaceDetector, load_rgb, name: str, count: int) -> None:
    dets = full.detect(load_rgb(name))
    assert len(dets) == count
    for d in dets:
        assert d.box.shape == (4,)
        assert d.keypoints.shape == (6, 2)
        assert d.score >= 0.5
        # Keypoints lie within the (enlarged) box; right eye left of the left eye.
        w = d.box[2] - d.box[0]
        assert np.all(d.keypoints[:4, 0] > d.box[0] - 0.1 * w)
        assert np.all(d.keypoints[:4, 0] < d.box[2] + 0.1 * w)
        assert d.keypoints[0, 0] < d.keypoints[1, 0]


def test_single_face_box_position(full: FaceDetector, short: FaceDetector, load_rgb) -> None:
    image = load_rgb("single_face.jpg")
    a, b = full.detect(image), short.detect(image)
    assert len(a) == 1
    assert len(b) == 1
    # Both models put the face in the same place (centres within 10% of the box size).
    ca = (a[0].box[:2] + a[0].box[2:]) / 2
    cb = (b[0].box[:2] + b[0].box[2:]) / 2
    assert np.linalg.norm(ca - cb) < 0.1 * (a[0].box[2] - a[0].box[0])


def test_options_errors() -> None:
    with pytest.raises(ConfigError, match="model"):
        FaceDetectorOptions(model="huge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_score"):
        FaceDetectorOptions(min_score=1.5)
    with pytest.raises(ConfigError, match="nms_threshold"):
        FaceDetectorOptions(nms_threshold=0.0)
    with pytest.raises(ConfigError, match="num_threads"):
        FaceDetectorOptions(num_threads=0)
    with pytest.raises(ConfigError, match="max_faces"):
        FaceDetectorOptions(max_faces=0)


def test_as_rgb_converts_and_rejects() -> None:
    assert as_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(InputError, match="uint8"):
        as_rgb(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(InputError, match="must be"):
        as_rgb(np.zeros((4, 5, 2), np.uint8))


def test_tiles_find_small_faces_in_big_images(load_rgb) -> None:
    import cv2

    group = load_rgb("multi_face.jpg")
    small = cv2.resize(group, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((2400, 3200, 3), 120, np.uint8)  # faces of ~45 px in a 3200 px frame
    canvas[1800 : 1800 + small.shape[0], 2000 : 2000 + small.shape[1]] = small
    tiled = FaceDetector(FaceDetectorOptions()).detect(canvas)
    whole = FaceDetector(FaceDetectorOptions(tile_above=0)).detect(canvas)
    assert len(tiled) == 5
    assert len(whole) <= 2
    for d in tiled:  # every box lies on the pasted photo
        assert d.box[0] >= 2000 - 5
        assert d.box[2] <= 2000 + small.shape[1] + 5
        assert d.box[1] >= 1800 - 5
        assert d.box[3] <= 1800 + small.shape[0] + 5
    with pytest.raises(ConfigError, match="tile_size"):
        FaceDetectorOptions(tile_size=100)

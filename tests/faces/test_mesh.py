from __future__ import annotations

import math

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.faces.detector import FaceDetector
from facexpr.faces.mesh import (
    FaceMesh,
    RotatedRect,
    roi_affine,
    roi_from_detection,
    roi_from_points,
)


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return FaceMesh()


def test_roi_affine_maps_centre_and_axis() -> None:
    roi = RotatedRect(np.array([100.0, 50.0], np.float32), 40.0, math.radians(30))
    m = roi_affine(roi, 192)
    np.testing.assert_allclose(m @ [100, 50, 1], [96, 96], atol=1e-6)
    # One ROI half-width along the ROI's x axis lands on the crop's right edge centre.
    p = np.array([100 + 20 * math.cos(roi.angle), 50 + 20 * math.sin(roi.angle), 1])
    np.testing.assert_allclose(m @ p, [192, 96], atol=1e-6)


def test_roi_from_points_is_rotation_invariant() -> None:
    pts = np.array([[0, 0], [10, 0], [10, 20], [0, 20]], np.float32)
    a = roi_from_points(pts, pts[0], pts[1])
    c, s = math.cos(0.4), math.sin(0.4)
    rot = np.array([[c, -s], [s, c]], np.float32)
    b = roi_from_points(pts @ rot.T, pts[0] @ rot.T, pts[1] @ rot.T)
    assert a.size == pytest.approx(30.0)
    assert b.size == pytest.approx(30.0, rel=1e-5)
    assert b.angle == pytest.approx(0.4, abs=1e-6)


def test_mesh_on_photos(mesh: FaceMesh, load_rgb) -> None:
    det = FaceDetector()
    for name in ("single_face.jpg", "multi_face.jpg"):
        image = load_rgb(name)
        for d in det.detect(image):
            res = mesh.run(image, roi_from_detection(d.box, d.keypoints))
            assert res.landmarks.shape == (468, 3)
            assert res.presence > 0.9
            # Every landmark inside the detector box enlarged by 25% on each side.
            w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
            xy = res.landmarks[:, :2]
            assert np.all(xy[:, 0] > d.box[0] - 0.25 * w)
            assert np.all(xy[:, 0] < d.box[2] + 0.25 * w)
            assert np.all(xy[:, 1] > d.box[1] - 0.25 * h)
            assert np.all(xy[:, 1] < d.box[3] + 0.25 * h)
            # Re-running on the ROI from its own landmarks (tracking) moves points < 2% of size.
            lm = res.landmarks
            res2 = mesh.run(image, roi_from_points(lm[:, :2], lm[33, :2], lm[263, :2]))
            assert np.abs(res2.landmarks[:, :2] - xy).mean() < 0.02 * w


def test_mesh_rejects_no_face(mesh: FaceMesh, load_rgb) -> None:
    image = load_rgb("free-mountain-vector-01.jpg")
    roi = RotatedRect(np.array([300.0, 300.0], np.float32), 200.0, 0.0)
    assert mesh.run(image, roi).presence < 0.5


def test_mesh_threads_error() -> None:
    with pytest.raises(ConfigError, match="num_threads"):
        FaceMesh(num_threads=0)


def test_non_square_roi_maps_its_corners_onto_the_crop_corners() -> None:
    roi = RotatedRect(np.array([100.0, 80.0], np.float32), 60.0, math.radians(20), 40.0)
    assert roi.width == 60.0
    assert roi.side_y == 40.0
    m = roi_affine(roi, 256)
    crop = [m @ [*p, 1.0] for p in roi.corners()]
    np.testing.assert_allclose(crop, [[0, 0], [256, 0], [256, 256], [0, 256]], atol=1e-4)
    box = roi.box()
    assert box[2] - box[0] == pytest.approx(60 * math.cos(0.349) + 40 * math.sin(0.349), rel=1e-3)


def test_projection_follows_mediapipe_for_rectangles_and_inverts_squares() -> None:
    from facexpr.faces.mesh import project_landmarks

    raw = np.array([[128.0, 128.0, 10.0], [256.0, 128.0, 0.0], [128.0, 0.0, 0.0]])
    square = RotatedRect(np.array([50.0, 60.0], np.float32), 100.0, math.radians(90))
    out = project_landmarks(raw, square, 256)
    np.testing.assert_allclose(out[0], [50, 60, 10 * 100 / 256], atol=1e-4)
    np.testing.assert_allclose(out[1, :2], [50, 110], atol=1e-4)  # ROI x axis points down
    m = roi_affine(square, 256)
    np.testing.assert_allclose([m @ [*p, 1.0] for p in out[:, :2]], raw[:, :2], atol=1e-3)
    # A rectangle: rotate in ROI-normalised units, then scale by width and height (MediaPipe's
    # LandmarkProjectionCalculator), so the top-centre point moves by half the *width*.
    rect = RotatedRect(np.array([0.0, 0.0], np.float32), 100.0, math.radians(90), 50.0)
    np.testing.assert_allclose(project_landmarks(raw, rect, 256)[2, :2], [50, 0], atol=1e-4)


def test_axis_extent_roi_is_mediapipes() -> None:
    pts = np.array([[0, 0], [40, 0], [40, 20], [0, 20]], np.float32)
    eye_r, eye_l = np.array([0.0, 0.0]), np.array([10.0, 10.0])  # 45 degrees
    axis = roi_from_points(pts, eye_r, eye_l, extent="axis")
    np.testing.assert_allclose(axis.center, [20, 10])
    assert axis.size == pytest.approx(60.0)  # long side 40 x 1.5, not re-measured when rotated
    assert axis.angle == pytest.approx(math.pi / 4)
    rotated = roi_from_points(pts, eye_r, eye_l)
    assert rotated.size != pytest.approx(axis.size)


def test_detection_roi_unsquared_for_the_landmarker_task() -> None:
    box = np.array([10.0, 20.0, 50.0, 80.0])
    kps = np.zeros((6, 2))
    kps[1] = [1.0, 0.0]
    sq = roi_from_detection(box, kps)
    rect = roi_from_detection(box, kps, square=False)
    assert (sq.size, sq.side_y) == (pytest.approx(90.0), pytest.approx(90.0))
    assert (rect.width, rect.side_y) == (pytest.approx(60.0), pytest.approx(90.0))


def test_model_choice_errors() -> None:
    from facexpr.core.errors import ModelError

    with pytest.raises(ConfigError, match=r"FaceMesh\.model: 'mesh500' is not 'mesh468' or"):
        FaceMesh(model="mesh500")  # type: ignore[arg-type]
    v1 = (FaceMesh()._model.path).read_bytes()
    with pytest.raises(ModelError, match=r"x\.tflite: not a 478-point Face Mesh model"):
        FaceMesh(model="mesh478", content=v1, source="x.tflite")
    with pytest.raises(ConfigError, match=r"FaceMesh\.border: 'wrap' is not 'replicate' or 'zero'"):
        FaceMesh(border="wrap")  # type: ignore[arg-type]
    v2 = FaceMesh(model="mesh478")
    assert (v2.points, v2.input_size) == (478, 256)


def test_border_matters_where_the_roi_leaves_the_image(load_rgb) -> None:
    image = load_rgb("single_face.jpg")
    h, w = image.shape[:2]
    roi = RotatedRect(np.array([w / 2, h / 2], np.float32), 1.3 * max(w, h), 0.0)
    rep = FaceMesh(model="mesh478").crop(image, roi)[0]
    zero = FaceMesh(model="mesh478", border="zero").crop(image, roi)[0]
    assert (zero[0, 0] == 0).all()
    np.testing.assert_array_equal(rep[0, 0], image[0, 0])  # the corner pixel, replicated

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

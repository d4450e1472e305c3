from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr.core.errors import InputError
from facexpr.faces.detector import FaceDetector
from facexpr.faces.landmarks68 import landmarks68
from facexpr.faces.mesh import FaceMesh, roi_from_detection
from facexpr.faces.pose import camera_matrix, euler_xyz, head_pose, model_points

RESOURCE = Path(__file__).resolve().parents[2] / "src/facexpr/faces/resources/ict68_mm.json"


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_euler_roundtrip() -> None:
    angles = np.array([0.2, -0.4, 0.1])
    np.testing.assert_allclose(euler_xyz(_rx(0.2) @ _ry(-0.4) @ _rz(0.1)), angles, atol=1e-12)


def test_recovers_synthetic_pose() -> None:
    r = _rx(0.15) @ _ry(-0.3) @ _rz(0.05)
    t = np.array([20.0, -10.0, 600.0])
    k = camera_matrix(640, 480)
    rvec, _ = cv2.Rodrigues(r)
    img, _ = cv2.projectPoints(model_points(), rvec, t, k, None)
    pose = head_pose(img.reshape(68, 2).astype(np.float32), 640, 480)
    np.testing.assert_allclose(pose.rotation, [0.15, -0.3, 0.05], atol=1e-3)
    np.testing.assert_allclose(pose.translation, t, atol=0.5)
    assert pose.reprojection_error < 0.01
    assert pose.yaw == pytest.approx(np.degrees(-0.3), abs=0.1)


def test_model_axes() -> None:
    pts = model_points()
    assert pts[45, 0] > pts[36, 0]  # subject's left eye corner at +x (image right)
    assert pts[8, 1] > pts[27, 1]  # chin below the nose bridge: +y down
    assert pts[30, 2] < pts[0, 2]  # nose tip nearer the camera than the jaw: +z away
    ipd = np.linalg.norm(pts[45] - pts[36])
    assert 80 < ipd < 110  # outer eye corners ~9 cm apart: mm


def test_resource_matches_ict(ict_dir: Path) -> None:
    data = np.load(ict_dir / "ict_facekit.npz")
    pts = data["neutral"][data["landmarks68"]] * 10.0 * np.array([1, -1, -1])
    pts -= pts.mean(0)
    stored = np.asarray(json.loads(RESOURCE.read_text())["points"])
    np.testing.assert_allclose(stored, pts, atol=1e-3)


def _poses(image: np.ndarray):
    mesh = FaceMesh()
    out = []
    for d in FaceDetector().detect(image):
        lm = landmarks68(mesh.run(image, roi_from_detection(d.box, d.keypoints)).landmarks)
        out.append(head_pose(lm, image.shape[1], image.shape[0]))
    return out


def test_frontal_face_near_zero(load_rgb) -> None:
    (pose,) = _poses(load_rgb("single_face.jpg"))
    # Measured: pitch 11.6, yaw 6.3, roll -3.1 deg (the mean ICT face vs this person's mesh).
    assert abs(pose.yaw) < 10
    assert abs(pose.pitch) < 15
    assert abs(pose.roll) < 6
    assert 300 < pose.translation[2] < 700  # ~0.5 m for a 220 px wide face at f = 572 px
    assert pose.reprojection_error < 15


@pytest.mark.parametrize("name", ["single_face.jpg", "multi_face.jpg"])
def test_flip_negates_yaw_and_roll(load_rgb, name: str) -> None:
    image = load_rgb(name)
    a = sorted(_poses(image), key=lambda p: p.translation[0])
    b = sorted(_poses(image[:, ::-1].copy()), key=lambda p: -p.translation[0])
    assert len(a) == len(b)
    assert len(a) >= 1
    for p, q in zip(a, b, strict=True):
        assert p.yaw == pytest.approx(-q.yaw, abs=4.0)
        assert p.roll == pytest.approx(-q.roll, abs=4.0)
        assert p.translation[0] == pytest.approx(
            -q.translation[0], abs=0.1 * float(p.translation[2])
        )


def test_pose_rejects_bad_shape() -> None:
    with pytest.raises(InputError, match="68"):
        head_pose(np.zeros((5, 2), np.float32), 10, 10)


def test_signs_agree_with_openface(media_dir: Path) -> None:
    pd = pytest.importorskip("pandas")
    table = pd.read_csv(media_dir / "OpenFace_Test.csv", skipinitialspace=True)
    xs = table[[f"x_{i}" for i in range(68)]].to_numpy()
    ys = table[[f"y_{i}" for i in range(68)]].to_numpy()
    # OpenFace's default camera for a 640x480 video: f = 500 px, principal point at the centre.
    k = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    ours = np.array(
        [
            head_pose(np.stack([x, y], 1).astype(np.float32), 640, 480, k).rotation
            for x, y in zip(xs, ys, strict=True)
        ]
    )
    theirs = table[["pose_Rx", "pose_Ry", "pose_Rz"]].to_numpy()
    # Measured: corr 0.99 (yaw), 0.97 (roll); pitch varies too little here (std 0.01 rad) to
    # correlate, but its mean agrees within 0.05 rad (0.31 vs 0.35).
    assert np.corrcoef(ours[:, 1], theirs[:, 1])[0, 1] > 0.9
    assert np.corrcoef(ours[:, 2], theirs[:, 2])[0, 1] > 0.9
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.06)

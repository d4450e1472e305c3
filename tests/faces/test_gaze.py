"""Gaze from the iris and the head pose: OpenFace's geometry, ranges and directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.types import Frame, HeadPose
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.faces.gaze import (
    EYEBALL_RADIUS_MM,
    estimate_gaze,
    eyeball_centres,
    rotation_matrix,
)
from facexpr.faces.pose import camera_matrix, euler_xyz
from facexpr.io.images import read_image

FRONTAL = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg")


@pytest.fixture(scope="module")
def frontend():
    with FaceFrontEnd(FaceFrontEndOptions(landmark_model="mesh478", align_size=0)) as fe:
        yield fe


def _face(frontend: FaceFrontEnd, image: np.ndarray):
    (face,) = frontend.process(Frame(image=image)).faces
    return face


def test_rotation_matrix_inverts_euler_xyz() -> None:
    angles = np.array([0.2, -0.4, 0.1])
    r = rotation_matrix(angles)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(euler_xyz(r), angles, atol=1e-12)


def test_known_gaze_is_recovered_from_the_projected_pupils() -> None:
    """A pupil placed on the eyeball sphere along a known direction gives that direction back."""
    w, h = 640, 480
    k = camera_matrix(w, h)
    pose = HeadPose(0, 0, 0, np.array([0.1, 0.25, -0.05]), np.array([20.0, -10.0, 600.0]))
    centres = eyeball_centres(pose)
    wanted = [np.array([0.3, -0.2, -1.0]), np.array([-0.1, 0.15, -1.0])]
    wanted = [g / np.linalg.norm(g) for g in wanted]
    pupils = []
    for c, g in zip(centres, wanted, strict=True):
        p = k @ (c + EYEBALL_RADIUS_MM * g)
        pupils.append(p[:2] / p[2])
    gaze = estimate_gaze(np.array(pupils), pose, w, h)
    np.testing.assert_allclose(gaze.eye0, wanted[0], atol=1e-5)
    np.testing.assert_allclose(gaze.eye1, wanted[1], atol=1e-5)
    m = (wanted[0] + wanted[1]) / 2
    np.testing.assert_allclose(
        gaze.angle, [np.arctan2(m[0], -m[2]), np.arctan2(m[1], -m[2])], atol=1e-5
    )


def test_a_ray_missing_the_eyeball_still_gives_a_unit_vector() -> None:
    pose = HeadPose(0, 0, 0, np.zeros(3), np.array([0.0, 0.0, 600.0]))
    gaze = estimate_gaze(np.array([[0.0, 0.0], [639.0, 479.0]]), pose, 640, 480)
    for v in (gaze.eye0, gaze.eye1):
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert gaze.eye0[0] < 0 < gaze.eye1[0]  # toward the image corner the ray went to


def test_photos_look_at_the_camera_and_columns_are_in_range(frontend, media_dir: Path) -> None:
    for name in FRONTAL:
        face = _face(frontend, read_image(media_dir / name))
        g = face.gaze
        for v in (g.eye0, g.eye1):
            assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
            assert v[2] < -0.9  # toward the camera: these people look into it
        assert np.all(np.abs(g.angle) < 0.3)
        # The eyes converge on the camera, as in OpenFace's own output (gaze_0_x > 0 > gaze_1_x).
        assert g.eye0[0] > 0 > g.eye1[0]
        assert face.iris.shape == (10, 3)


def test_moving_the_irises_turns_the_gaze_the_right_way(frontend, media_dir: Path) -> None:
    image = read_image(media_dir / FRONTAL[0])
    face = _face(frontend, image)
    h, w = image.shape[:2]
    pupils = face.iris[[0, 5], :2]
    base = estimate_gaze(pupils, face.pose, w, h, face.landmarks)
    right = estimate_gaze(pupils + np.array([3.0, 0.0]), face.pose, w, h, face.landmarks)
    down = estimate_gaze(pupils + np.array([0.0, 3.0]), face.pose, w, h, face.landmarks)
    assert right.angle[0] > base.angle[0] + 0.05  # x > 0: toward the image's right
    assert abs(right.angle[1] - base.angle[1]) < 0.02
    assert down.angle[1] > base.angle[1] + 0.05  # y > 0: down
    assert abs(down.angle[0] - base.angle[0]) < 0.02


def test_a_mirrored_photo_mirrors_the_gaze(frontend, media_dir: Path) -> None:
    for name in FRONTAL:
        image = read_image(media_dir / name)
        g = _face(frontend, image).gaze
        m = _face(frontend, np.ascontiguousarray(image[:, ::-1])).gaze
        # Face Mesh V2 itself is not exactly mirror-symmetric: 0.055 rad apart at worst here.
        assert m.angle[0] == pytest.approx(-g.angle[0], abs=0.08)
        assert m.angle[1] == pytest.approx(g.angle[1], abs=0.08)
        # Eye 0 (image left) of the mirror is eye 1 of the original, x negated (one eye's vector
        # is noisier than the mean: 0.072 apart at worst here).
        np.testing.assert_allclose(m.eye0, g.eye1 * [-1, 1, 1], atol=0.1)

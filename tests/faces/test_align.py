from __future__ import annotations

import math

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.align import ALIGN_TEMPLATE, align_face, align_points, similarity_umeyama
from facexpr.faces.detector import FaceDetector
from facexpr.faces.landmarks68 import eye_centres, landmarks68
from facexpr.faces.mesh import FaceMesh, roi_from_detection


def test_umeyama_recovers_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2))
    c, s = math.cos(0.3), math.sin(0.3)
    a = 2.5 * np.array([[c, -s], [s, c]])
    dst = src @ a.T + [3, -1]
    m = similarity_umeyama(src, dst, np.ones(5))
    np.testing.assert_allclose(m[:, :2], a, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], [3, -1], atol=1e-9)


@pytest.mark.parametrize("name", ["single_face.jpg", "multi_face.jpg"])
@pytest.mark.parametrize("size", [224, 112])
def test_eyes_land_on_template(load_rgb, name: str, size: int) -> None:
    image = load_rgb(name)
    mesh = FaceMesh()
    dets = FaceDetector().detect(image)
    assert dets
    for d in dets:
        lm = landmarks68(mesh.run(image, roi_from_detection(d.box, d.keypoints)).landmarks)
        crop, m = align_face(image, lm, size)
        assert crop.shape == (size, size, 3)
        assert m.shape == (2, 3)
        eyes = np.stack(eye_centres(lm)) @ m[:, :2].T + m[:, 2]
        err = np.linalg.norm(eyes - ALIGN_TEMPLATE[:2] * size, axis=1)
        assert err.max() < 3.0
        mouth = align_points(lm)[2] @ m[:, :2].T + m[:, 2]
        assert np.linalg.norm(mouth - ALIGN_TEMPLATE[2] * size) < 0.1 * size


def test_align_errors() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ConfigError, match="size"):
        align_face(image, np.zeros((68, 2), np.float32), 8)
    with pytest.raises(InputError, match="68"):
        align_face(image, np.zeros((5, 2), np.float32))

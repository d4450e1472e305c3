from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import InputError
from facexpr.faces.detector import FaceDetector
from facexpr.faces.landmarks68 import landmarks68, mesh_to_ibug68
from facexpr.faces.mesh import FaceMesh, roi_from_detection


def test_map_shape_and_unique() -> None:
    idx = mesh_to_ibug68()
    assert idx.shape == (68,)
    assert len(set(idx.tolist())) == 68
    assert idx.min() >= 0
    assert idx.max() < 468


def test_layout_on_frontal_face(load_rgb) -> None:
    image = load_rgb("single_face.jpg")
    d = FaceDetector().detect(image)[0]
    lm = landmarks68(FaceMesh().run(image, roi_from_detection(d.box, d.keypoints)).landmarks)
    x, y = lm[:, 0], lm[:, 1]
    # Jaw: from the right ear (image left) down to the chin, then up to the left ear.
    assert np.all(np.diff(y[0:9]) > 0)
    assert np.all(np.diff(y[8:17]) < 0)
    assert np.all(np.diff(x[0:17]) > -2.0)  # near vertical at the ears, never doubling back
    assert x[0] < x[8] < x[16]
    assert np.argmax(y[0:17]) == 8  # chin is the lowest jaw point
    assert np.all(np.diff(x[17:27]) > 0)  # brows left -> right
    assert np.all(np.diff(y[27:31]) > 0)  # nose bridge goes down
    assert np.all(np.diff(x[31:36]) > 0)
    assert y[17:27].max() < y[36:48].min()  # brows above the eyes
    assert x[36] < x[39] < x[42] < x[45]  # eye corners in order
    assert y[37] < y[41]  # upper lid above lower lid
    assert y[43] < y[47]
    assert x[48] < x[51] < x[54]  # mouth corners and top
    assert y[51] < y[57]
    assert y[62] <= y[66]
    assert y[33] < y[51]  # nose above mouth


def test_rejects_bad_mesh() -> None:
    with pytest.raises(InputError, match="468"):
        landmarks68(np.zeros((68, 2), np.float32))

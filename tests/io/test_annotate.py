"""Drawing results: boxes and landmarks land where the face is; the input is not modified."""

from __future__ import annotations

import numpy as np

from facexpr.core.types import FaceResult, FrameResult
from facexpr.io.annotate import draw_frame, face_colour


def _result(face_id: int = 2) -> FrameResult:
    lm = np.stack([np.linspace(120, 180, 68), np.linspace(110, 190, 68)], axis=1)
    face = FaceResult(
        box=np.array([100, 100, 200, 200], np.float32),
        score=0.9,
        landmarks=lm.astype(np.float32),
        face_id=face_id,
    )
    return FrameResult("x.jpg", 0, 0.0, 320, 240, (face,))


def test_box_and_landmarks_are_drawn_in_the_face_colour():
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_frame(image, _result())
    colour = np.array(face_colour(2))
    assert (out[150, 100] == colour).all()  # left edge of the box
    assert (out[150, 50] == 0).all()  # far from the face
    assert (image == 0).all()  # input untouched
    lm_pixels = out[110:191, 120:181].reshape(-1, 3)
    assert (lm_pixels == colour).all(axis=1).sum() > 68


def test_no_face_leaves_the_frame_as_it_was():
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    out = draw_frame(image, FrameResult("x.jpg", 0, 0.0, 80, 60, ()))
    np.testing.assert_array_equal(out, image)


def test_label_stays_inside_a_face_at_the_right_edge():
    image = np.zeros((240, 320, 3), np.uint8)
    r = _result()
    face = r.faces[0]
    moved = FaceResult(
        box=np.array([280, 100, 319, 150], np.float32),
        score=face.score,
        landmarks=face.landmarks * 0 + 300,
        face_id=2,
    )
    out = draw_frame(image, FrameResult("x.jpg", 0, 0.0, 320, 240, (moved,)))
    label_rows = out[75:99]  # the label sits just above the box (top at y=100)
    assert (label_rows[:, :275] != 0).any()  # shifted left of the box's x=280 to fit
    assert (label_rows[:, 318:] != 0).any()  # and reaching the right edge, not beyond

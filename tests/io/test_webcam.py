"""Tests of facexpr.io.webcam: the error path on this camera-less machine, and the frame path
through a fake ``cv2.VideoCapture``."""

from __future__ import annotations

import itertools

import cv2
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io import webcam
from facexpr.io.webcam import WebcamReader


def test_frames_from_fake_camera(fake_cv2: type) -> None:
    frames = list(WebcamReader(2, width=32, height=24, fps=15))
    assert len(frames) == 5
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.source == "webcam:2" for f in frames)
    assert frames[3].image.shape == (24, 32, 3)
    assert frames[3].image[0, 0].tolist() == [200, 0, 3]  # BGR -> RGB
    t = [f.timestamp for f in frames]
    assert t[0] >= 0.0
    assert all(b >= a for a, b in itertools.pairwise(t))
    cap = fake_cv2.instances[0]
    assert cap.index == 2
    assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 32
    assert cap.props[cv2.CAP_PROP_FPS] == 15
    assert cap.released


def test_max_frames(fake_cv2: type) -> None:
    with WebcamReader(0, max_frames=2) as cam:
        frames = list(cam)
    assert len(frames) == 2
    assert fake_cv2.instances[0].read_count == 2


def test_cannot_open_camera_fake(monkeypatch: pytest.MonkeyPatch, fake_cv2: type) -> None:
    monkeypatch.setattr(webcam.cv2, "VideoCapture", lambda i: fake_cv2(i, opened=False))
    with pytest.raises(InputError, match="webcam:7: cannot open camera 7"):
        list(WebcamReader(7))


def test_cannot_open_real_missing_camera() -> None:
    # No camera on the test machines: index 99 cannot exist anywhere.
    with pytest.raises(InputError, match="webcam:99: cannot open camera 99"), WebcamReader(99):
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": -1}, "webcam index must be an integer >= 0"),
        ({"index": 0, "width": 0}, "webcam width must be > 0"),
        ({"index": 0, "fps": -5}, "webcam fps must be > 0"),
        ({"index": 0, "max_frames": 0}, "max_frames must be >= 1"),
    ],
)
def test_invalid_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebcamReader(**kwargs)

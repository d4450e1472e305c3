"""Fixtures of the io tests: small media files made on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

from facexpr.io import webcam


@pytest.fixture(scope="session")
def audio_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Returns a 0.3 s 440 Hz mono sine as 16 kHz PCM WAV (no video stream)."""
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    rate = 16000
    t = np.arange(int(0.3 * rate)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


class FakeCapture:
    """Stands in for cv2.VideoCapture: BGR frames whose blue channel is the frame number."""

    instances: ClassVar[list[FakeCapture]] = []

    def __init__(self, index: int, n_frames: int = 5, opened: bool = True) -> None:
        self.index = index
        self.n_frames = n_frames
        self.opened = opened
        self.read_count = 0
        self.released = False
        self.props: dict[int, float] = {}
        FakeCapture.instances.append(self)

    def isOpened(self) -> bool:  # OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.read_count >= self.n_frames:
            return False, None
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[..., 0] = self.read_count  # blue
        bgr[..., 2] = 200  # red
        self.read_count += 1
        return True, bgr

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_cv2(monkeypatch: pytest.MonkeyPatch) -> type[FakeCapture]:
    FakeCapture.instances = []
    monkeypatch.setattr(webcam.cv2, "VideoCapture", FakeCapture)
    return FakeCapture

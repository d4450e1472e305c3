"""Fixtures of the faces tests: real photos and video frames from ../shared/fixtures/media."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def load_rgb(media_dir: Path) -> Callable[[str], np.ndarray]:
    """Returns a loader of (H, W, 3) uint8 RGB photos by file name."""

    def load(name: str) -> np.ndarray:
        image = cv2.imread(str(media_dir / name), cv2.IMREAD_COLOR_RGB)
        if image is None:
            pytest.skip(f"{media_dir / name} is missing or unreadable")
        return image

    return load


@pytest.fixture(scope="session")
def video_frames() -> Callable[[Path, int | None], list[tuple[np.ndarray, float]]]:
    """Returns a reader of a video's (RGB frame, timestamp s) pairs, decoded with PyAV."""
    return _read_video


def _read_video(path: Path, max_frames: int | None = None) -> list[tuple[np.ndarray, float]]:
    import av

    if not path.is_file():
        pytest.skip(f"{path} is missing")
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append((frame.to_ndarray(format="rgb24"), float(frame.time or 0.0)))
            if max_frames is not None and len(out) >= max_frames:
                break
    return out

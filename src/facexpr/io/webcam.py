"""Reading live frames from a camera with OpenCV."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType

import cv2

from facexpr.core.errors import ConfigError, InputError
from facexpr.core.types import Frame

log = logging.getLogger(__name__)


class WebcamReader:
    """Iterates over frames of camera ``index`` as :class:`Frame` (RGB uint8), until the camera
    stops delivering or ``max_frames`` frames were read.

    ``Frame.timestamp`` is seconds on a monotonic clock since the camera was opened, ``index``
    counts frames read (0, 1, ...), ``source`` is ``"webcam:N"``.

    Args:
        index: OpenCV camera index (0 is the default camera).
        width: requested frame width in px (the camera may pick another).
        height: requested frame height in px.
        fps: requested frames/s.
        max_frames: stop after this many frames; None reads until the camera stops.

    Raises:
        ConfigError: a negative index or non-positive size, fps or max_frames.
        InputError: the camera cannot be opened (on entering or iterating).
    """

    def __init__(
        self,
        index: int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        if int(index) != index or index < 0:
            raise ConfigError(f"webcam index must be an integer >= 0, got {index}")
        for name, v in (("width", width), ("height", height), ("fps", fps)):
            if v is not None and not v > 0:
                raise ConfigError(f"webcam {name} must be > 0, got {v}")
        if max_frames is not None and not max_frames >= 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
        self.index = int(index)
        self.source = f"webcam:{self.index}"
        self.width = width
        self.height = height
        self.fps = fps
        self.max_frames = max_frames
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        """Opens the camera and applies the requested size and rate."""
        if self._cap is not None:
            return
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise InputError(
                self.source,
                f"cannot open camera {self.index} (not connected, busy, or no permission)",
            )
        if self.width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
        if self.height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
        if self.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, float(self.fps))
        self._cap = cap

    def close(self) -> None:
        """Releases the camera; safe to call twice."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> WebcamReader:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        cap = self._cap
        assert cap is not None  # open() set it or raised
        t0 = time.monotonic()
        i = 0
        try:
            while self.max_frames is None or i < self.max_frames:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    log.info("%s: the camera stopped delivering after %d frames", self.source, i)
                    break
                t = time.monotonic() - t0
                if bgr.ndim == 2:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
                elif bgr.shape[2] == 4:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
                else:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(image=rgb, index=i, timestamp=t, source=self.source)
                i += 1
        finally:
            self.close()

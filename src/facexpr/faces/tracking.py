"""Multi-face tracking over video: ROI propagation, greedy IoU association, One Euro smoothing.

As in MediaPipe's face landmark graph, a tracked face's next ROI comes from its current
landmarks, and the detector runs only when a track is lost or, to catch faces entering, every
``redetect_every`` frames; detections overlapping no track start new tracks. Hungarian
assignment would need scipy, which facexpr does not depend on; a greedy match by decreasing IoU
is enough for the few faces of a video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from facexpr.faces.mesh import RotatedRect


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Returns the (N, M) IoU of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Returns (row, col) pairs matched greedily by decreasing IoU, each above ``threshold``."""
    pairs = []
    if iou.size == 0:
        return pairs
    order = np.argsort(-iou, axis=None)
    used_r, used_c = set(), set()
    for flat in order:
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] <= threshold:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class OneEuroFilter:
    """One Euro filter over arrays, scale-normalised.

    Casiez, Roussel & Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy Input
    in Interactive Systems", CHI 2012. The cutoff frequency rises with speed:
    ``fc = min_cutoff + beta * |dx/dt|``. As in MediaPipe's landmark smoothing the speed is
    measured in face sizes per second, so the parameters hold for any face size. Defaults were
    chosen on ``single_face.mp4`` / ``WolfgangLanger_Pexels.mp4`` (Face Mesh output): they cut the
    frame-to-frame second difference of the landmarks by 59% / 54% with a mean lag of 0.5% / 1% of
    the face width; MediaPipe's pose-landmark setting (min_cutoff 0.05, beta 80) cut it by 37% /
    26% only.

    Args:
        min_cutoff: cutoff at rest, Hz (> 0).
        beta: speed coefficient (>= 0), per (face sizes / s).
        d_cutoff: cutoff of the speed estimate, Hz (> 0).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, scale: float) -> np.ndarray:
        """Returns the filtered ``x`` (same shape) at time ``t`` seconds.

        ``scale`` (x's units, e.g. the face width in px) divides the speed only: dividing the
        values themselves would multiply the output by a scale that jitters from frame to frame.
        """
        if self._x is None or t <= self._t:
            self._x, self._dx, self._t = x.astype(np.float64), np.zeros(x.shape), t
            return x.copy()
        dt = t - self._t
        dx = (x - self._x) / (dt * scale)
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x = self._x + a * (x - self._x)
        self._t = t
        return self._x.astype(x.dtype)


@dataclass
class Track:
    """State of one tracked face (internal to :class:`~facexpr.faces.frontend.FaceFrontEnd`).

    Attributes:
        face_id: stable id, in order of appearance.
        roi: where to run the mesh on the next frame.
        score: detector score of the detection that started or last refreshed the track.
        keypoints: (6, 2) px detector keypoints of that detection.
        misses: consecutive frames the mesh did not find the face.
        filter: landmark smoother, or None when smoothing is off.
        box: (4,) xyxy px landmark extent at the last hit.
    """

    face_id: int
    roi: RotatedRect
    score: float
    keypoints: np.ndarray
    misses: int = 0
    filter: OneEuroFilter | None = None
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))

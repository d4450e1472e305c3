"""Face detection with MediaPipe's BlazeFace models (short- and full-range), in numpy.

BlazeFace: Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs",
2019. The steps follow MediaPipe's graphs ``face_detection_short_range.pbtxt`` and
``face_detection_full_range.pbtxt`` (mediapipe 0.10): letterbox the image to the model input
(keep aspect ratio, pad) normalised to [-1, 1]; SSD anchors (``SsdAnchorsCalculator``, fixed anchor
size); box decoding with x/y/w/h scale = input size and ``reverse_output_order`` (x before y);
sigmoid scores with logits clipped to +-100; weighted non-maximum suppression
(``NonMaxSuppressionCalculator`` algorithm ``WEIGHTED``); letterbox removal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.faces._tflite import TFLiteModel

log = logging.getLogger(__name__)

KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_centre",
    "right_ear_tragion",
    "left_ear_tragion",
)
"""Detector keypoints, subject's sides (the right eye is on the image's left in a frontal view)."""


@dataclass(frozen=True, slots=True)
class _ModelSpec:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: int  # fixed anchor size: 1, or 2 with interpolated_scale_aspect_ratio=1
    outputs: tuple[str, str]  # (regressors, scores)


_SPECS = {
    "full": _ModelSpec(
        "face_detection_full_range_sparse.tflite", 192, (4,), 1, ("Identity", "Identity_1")
    ),
    "short": _ModelSpec(
        "face_detection_short_range.tflite",
        128,
        (8, 16, 16, 16),
        2,
        ("regressors", "classificators"),
    ),
}


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected face.

    Attributes:
        box: (4,) float32 xyxy px in the source image.
        score: confidence in [0, 1].
        keypoints: (6, 2) float32 px, in the order of ``KEYPOINT_NAMES``.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray


@dataclass
class FaceDetectorOptions:
    """Options of :class:`FaceDetector`.

    Attributes:
        model: ``"full"`` (full-range BlazeFace, 192 px input, faces up to ~5 m; best recall) or
            ``"short"`` (short-range, 128 px, faces within ~2 m; 3x faster).
        min_score: detections below this score are dropped, in (0, 1).
        nms_threshold: IoU above which detections are merged by weighted NMS, in (0, 1].
        num_threads: interpreter CPU threads (>= 1).
        max_faces: keep at most this many detections, best first (>= 1).
        tile_above: images whose longer side exceeds this (px) are also searched in overlapping
            tiles of ``tile_size`` px, so that small faces in big photos (a crowd, a 4K frame) are
            not shrunk below what the 192 px model sees; 0 disables tiling.
        tile_size: side of those tiles, px (>= 256). 800 found all five faces of
            ``multi_face.jpg`` shrunk to 50% inside a 3200x2400 frame, where the whole-image pass
            finds one.
        resize: how the image is shrunk to the model input (:func:`letterbox`): ``"area"``, or
            ``"bilinear"`` as MediaPipe does (the front-end's Face Mesh V2 path, to reproduce
            MediaPipe's Face Landmarker).
    """

    model: Literal["full", "short"] = "full"
    min_score: float = 0.5
    nms_threshold: float = 0.3
    num_threads: int = 1
    max_faces: int = 100
    tile_above: int = 1280
    tile_size: int = 800
    resize: Literal["area", "bilinear"] = "area"

    def __post_init__(self) -> None:
        if self.model not in _SPECS:
            raise ConfigError(f"FaceDetectorOptions.model: {self.model!r} is not 'full' or 'short'")
        if not 0.0 < self.min_score < 1.0:
            raise ConfigError(f"FaceDetectorOptions.min_score: {self.min_score} not in (0, 1)")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ConfigError(
                f"FaceDetectorOptions.nms_threshold: {self.nms_threshold} not in (0, 1]"
            )
        if self.num_threads < 1:
            raise ConfigError(f"FaceDetectorOptions.num_threads: {self.num_threads} < 1")
        if self.max_faces < 1:
            raise ConfigError(f"FaceDetectorOptions.max_faces: {self.max_faces} < 1")
        if self.tile_above != 0 and self.tile_above < 256:
            raise ConfigError(f"FaceDetectorOptions.tile_above: {self.tile_above} not 0 or >= 256")
        if self.tile_size < 256:
            raise ConfigError(f"FaceDetectorOptions.tile_size: {self.tile_size} < 256")
        if self.resize not in ("area", "bilinear"):
            raise ConfigError(
                f"FaceDetectorOptions.resize: {self.resize!r} is not 'area' or 'bilinear'"
            )


def ssd_anchors(size: int, strides: tuple[int, ...], anchors_per_cell: int) -> np.ndarray:
    """Returns the SSD anchor centres, (N, 2) float32 normalised (x, y), MediaPipe's order.

    With ``fixed_anchor_size`` every anchor is 1x1, so only centres matter. Consecutive layers with
    the same stride share one grid (as ``SsdAnchorsCalculator`` merges them).
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = math.ceil(size / strides[i])
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, anchors_per_cell * (j - i), axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def letterbox(
    image: np.ndarray, size: int, resize: Literal["area", "bilinear"] = "area"
) -> tuple[np.ndarray, float, float, float]:
    """Resizes ``image`` into a ``size`` square keeping aspect ratio, padding symmetrically.

    Args:
        image: (H, W, 3) uint8 RGB.
        size: model input side.
        resize: ``"area"`` (pixel-area averaging to a whole number of pixels: no aliasing) or
            ``"bilinear"``, MediaPipe's ``ImageToTensorCalculator`` exactly (the image centred in
            a square of its long side, whose corners map onto the input's corners, bilinear, zero
            border; aliases when shrinking a lot, which moves scores of small faces).

    Returns:
        (1, size, size, 3) float32 in [-1, 1], the scale (model px per image px), and the x, y
        padding in model px.
    """
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    if resize == "bilinear":
        s = size / max(w, h)
        px, py = (size - w * s) / 2, (size - h * s) / 2
        m = np.array([[s, 0.0, px], [0.0, s, py]])
        canvas = cv2.warpAffine(
            image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        x = canvas.astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0
        return x[None], s, float(px), float(py)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[py : py + nh, px : px + nw] = resized
    x = canvas.astype(np.float32)
    x *= 2.0 / 255.0
    x -= 1.0
    # Pixels of the padding are -1 (black), as MediaPipe's letterbox pads with zeros.
    return x[None], nw / w, float(px), float(py)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Candidates are taken best first; all remaining boxes overlapping the best by IoU > threshold
    are averaged with their scores as weights (box and keypoints) and removed; the merged
    detection keeps the best score.

    Args:
        boxes: (N, 4) xyxy.
        scores: (N,).
        keypoints: (N, K, 2).
        threshold: IoU threshold.
    """
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    alive = np.ones(len(scores), bool)
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        ix0 = np.maximum(boxes[i, 0], boxes[:, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[:, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[:, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.maximum(ix1 - ix0, 0) * np.maximum(iy1 - iy0, 0)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-12)
        group = alive & (iou > threshold)
        group[i] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kps))
        alive &= ~group
    return out


class FaceDetector:
    """Detects faces in RGB images with BlazeFace.

    Args:
        options: detector options; defaults to ``FaceDetectorOptions()``.
    """

    def __init__(self, options: FaceDetectorOptions | None = None) -> None:
        self.options = options or FaceDetectorOptions()
        spec = _SPECS[self.options.model]
        self._spec = spec
        self._model = TFLiteModel(spec.file, self.options.num_threads)
        self._anchors = ssd_anchors(spec.size, spec.strides, spec.anchors_per_cell)
        self._logit_min = -math.log(1.0 / self.options.min_score - 1.0)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Returns the faces in ``image_rgb``, best score first.

        Args:
            image_rgb: (H, W, 3) uint8 RGB (a (H, W) grey or (H, W, 4) RGBA image is converted).
        """
        image = as_rgb(image_rgb)
        parts = [self._detect_px(image, 0, 0)]
        h, w = image.shape[:2]
        t = self.options.tile_above
        if t and max(h, w) > t:
            for x0, y0, x1, y1 in _tiles(w, h, self.options.tile_size):
                parts.append(self._detect_px(np.ascontiguousarray(image[y0:y1, x0:x1]), x0, y0))
        boxes = np.concatenate([p[0] for p in parts])
        if len(boxes) == 0:
            return []
        scores = np.concatenate([p[1] for p in parts])
        kps = np.concatenate([p[2] for p in parts])
        merged = weighted_nms(boxes, scores, kps, self.options.nms_threshold)
        return [
            Detection(box.astype(np.float32), score, kp.astype(np.float32))
            for box, score, kp in merged[: self.options.max_faces]
        ]

    def _detect_px(
        self, image: np.ndarray, x0: int, y0: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns raw (N, 4) boxes, (N,) scores and (N, 6, 2) keypoints in source px."""
        size = self._spec.size
        x, scale, px, py = letterbox(image, size, self.options.resize)
        reg, logits = self._model(x, self._spec.outputs)
        logits = np.clip(logits[0, :, 0], -100.0, 100.0)
        keep = np.flatnonzero(logits >= self._logit_min)
        if keep.size == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2))
        reg = reg[0, keep].reshape(-1, 8, 2) / size  # (M, 8, 2): centre, size, 6 keypoints
        anchors = self._anchors[keep][:, None, :]
        centre = reg[:, 0] + anchors[:, 0]
        half = reg[:, 1] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = reg[:, 2:] + anchors
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        # Normalised letterbox coordinates -> source px.
        offset = np.array([px, py])
        origin = np.array([x0, y0], np.float64)
        boxes = ((boxes.reshape(-1, 2, 2) * size - offset) / scale + origin).reshape(-1, 4)
        kps = (kps * size - offset) / scale + origin
        return boxes, scores, kps

    def close(self) -> None:
        """Releases the interpreter."""
        self._model = None  # type: ignore[assignment]


def _tiles(w: int, h: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Returns overlapping (x0, y0, x1, y1) tiles of about ``tile`` px covering a w x h image.

    Neighbouring tiles overlap by a quarter tile, so a face up to that size lies whole in one.
    """

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        k = math.ceil((n - tile) / (0.75 * tile)) + 1
        return [round(i * (n - tile) / (k - 1)) for i in range(k)]

    return [(x, y, min(w, x + tile), min(h, y + tile)) for y in starts(h) for x in starts(w)]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Returns ``image`` as (H, W, 3) uint8 RGB; grey is replicated, alpha dropped.

    Raises:
        InputError: if the array is not an image.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(
            None,
            f"image must be a uint8 numpy array, got {type(image).__name__}"
            f" {getattr(image, 'dtype', '')}",
        )
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    raise InputError(None, f"image must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")

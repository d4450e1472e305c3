"""Face Mesh: 468 3D landmarks from a rotated face ROI (MediaPipe ``face_landmark.tflite``).

Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile GPUs", 2019.
The ROI follows MediaPipe's ``face_detection_front_detection_to_roi.pbtxt`` (rotation from the
detector's two eye keypoints so that the eyes are horizontal, box scaled 1.5x and made square
on its long side) and ``face_landmark_landmarks_to_roi.pbtxt`` (rotation from landmarks 33 and
263, box from the landmarks' extent, scaled 1.5x, square). The crop is warped to 192x192 RGB in
[0, 1]; landmarks come back through the inverse affine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facexpr.core.errors import ConfigError
from facexpr.faces._tflite import TFLiteModel

MESH_INPUT = 192
RIGHT_EYE_OUTER = 33  # subject's right eye, outer corner (image left in a frontal view)
LEFT_EYE_OUTER = 263


@dataclass(frozen=True, slots=True)
class RotatedRect:
    """A square region of the image, rotated about its centre.

    Attributes:
        center: (2,) float32 px.
        size: side length in px.
        angle: radians; the ROI's x axis is ``(cos(angle), sin(angle))`` in image px (y down), so
            a positive angle means the subject's left eye is lower than the right one.
    """

    center: np.ndarray
    size: float
    angle: float

    def corners(self) -> np.ndarray:
        """Returns the (4, 2) float32 corners (top-left, top-right, bottom-right, bottom-left)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        h = self.size / 2
        local = np.array([[-h, -h], [h, -h], [h, h], [-h, h]], np.float32)
        rot = np.array([[c, -s], [s, c]], np.float32)
        return local @ rot.T + self.center

    def box(self) -> np.ndarray:
        """Returns the (4,) float32 axis-aligned xyxy box enclosing the rotated square."""
        p = self.corners()
        return np.concatenate([p.min(0), p.max(0)]).astype(np.float32)


def roi_from_points(
    points: np.ndarray, eye_right: np.ndarray, eye_left: np.ndarray, scale: float = 1.5
) -> RotatedRect:
    """Returns the square ROI around ``points`` rotated so the eye line is horizontal.

    The extent is measured in the rotated frame (so a tilted face does not inflate the box), the
    box is made square on its long side and scaled by ``scale``.

    Args:
        points: (N, 2) px, e.g. the 468 mesh points, or the detector box corners.
        eye_right: (2,) px, subject's right eye (image left).
        eye_left: (2,) px, subject's left eye.
        scale: enlargement of the square box.
    """
    d = eye_left - eye_right
    angle = math.atan2(float(d[1]), float(d[0]))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]], np.float32)
    local = points @ rot  # image -> ROI axes
    lo, hi = local.min(0), local.max(0)
    centre = ((lo + hi) / 2) @ rot.T
    size = float(max(hi - lo)) * scale
    return RotatedRect(centre.astype(np.float32), size, angle)


def roi_from_detection(box: np.ndarray, keypoints: np.ndarray, scale: float = 1.5) -> RotatedRect:
    """Returns the mesh ROI of a detection as MediaPipe builds it.

    MediaPipe rotates the *axis-aligned* detection box about its centre (it does not re-measure
    it), then scales it by 1.5 and squares it on the long side.

    Args:
        box: (4,) xyxy px.
        keypoints: (6, 2) px, detector keypoints (0: right eye, 1: left eye).
        scale: enlargement of the square box.
    """
    d = keypoints[1] - keypoints[0]
    angle = math.atan2(float(d[1]), float(d[0]))
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
    size = float(max(box[2] - box[0], box[3] - box[1])) * scale
    return RotatedRect(centre, size, angle)


def roi_affine(roi: RotatedRect, out_size: int) -> np.ndarray:
    """Returns the (2, 3) float64 affine mapping image px to ROI crop px (``out_size`` square)."""
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    k = out_size / roi.size
    a = np.array([[c, s], [-s, c]]) * k  # rotate image axes into ROI axes, then scale
    t = out_size / 2 - a @ roi.center.astype(np.float64)
    return np.hstack([a, t[:, None]])


@dataclass(frozen=True, slots=True)
class MeshResult:
    """Face Mesh output for one ROI.

    Attributes:
        landmarks: (468, 3) float32; x, y px in the source image, z px at the same scale relative
            to the face centre, + away from the camera.
        presence: face presence probability in [0, 1] (sigmoid of the face-flag logit).
        roi: the ROI the model ran on.
    """

    landmarks: np.ndarray
    presence: float
    roi: RotatedRect


class FaceMesh:
    """Runs MediaPipe's Face Mesh model on rotated ROIs.

    Args:
        num_threads: interpreter CPU threads (>= 1).
    """

    def __init__(self, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ConfigError(f"FaceMesh.num_threads: {num_threads} < 1")
        self._model = TFLiteModel("face_landmark.tflite", num_threads)
        self._outputs = ("conv2d_21", "conv2d_31")

    def crop(self, image_rgb: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, np.ndarray]:
        """Returns the (192, 192, 3) uint8 ROI crop and its (2, 3) image->crop affine."""
        m = roi_affine(roi, MESH_INPUT)
        crop = cv2.warpAffine(
            image_rgb,
            m,
            (MESH_INPUT, MESH_INPUT),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return crop, m

    def run(self, image_rgb: np.ndarray, roi: RotatedRect) -> MeshResult:
        """Returns the 468 landmarks of the face in ``roi``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            roi: where the face is (see :func:`roi_from_detection`, :func:`roi_from_points`).
        """
        crop, m = self.crop(image_rgb, roi)
        x = crop.astype(np.float32)[None]
        x *= 1.0 / 255.0
        raw, flag = self._model(x, self._outputs)
        pts = raw.reshape(468, 3).astype(np.float64)
        # Inverse of the similarity: crop px -> image px; z scales like x, y.
        a = m[:, :2]
        inv_a = np.linalg.inv(a)
        xy = (pts[:, :2] - m[:, 2]) @ inv_a.T
        z = pts[:, 2] * (roi.size / MESH_INPUT)
        out = np.empty((468, 3), np.float32)
        out[:, :2] = xy
        out[:, 2] = z
        logit = float(np.clip(flag.reshape(-1)[0], -100.0, 100.0))
        return MeshResult(out, 1.0 / (1.0 + math.exp(-logit)), roi)

    def close(self) -> None:
        """Releases the interpreter."""
        self._model = None  # type: ignore[assignment]

"""Face Mesh: 468 (Face Mesh) or 478 (Face Mesh V2, with iris) 3D landmarks from a rotated ROI.

Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile GPUs", 2019;
Grishchenko et al., "Attention Mesh: High-fidelity Face Mesh Prediction in Real-time", 2020 (the
iris points of V2). Two models, run with ai-edge-litert:

- ``mesh468``: ``face_landmark.tflite`` (mediapipe 0.10.21 wheel), 192x192 input.
- ``mesh478``: ``face_landmarks_detector.tflite`` of MediaPipe's Face Landmarker bundle (Face
  Mesh V2), 256x256 input; points 468-472 are the iris of the subject's right eye (image left;
  468 its centre), 473-477 the left one's.

Both take the ROI crop as RGB in [0, 1] (V2's metadata: mean 0, std 255), warped from the image
by the rotated rectangle (``ImageToTensorCalculator``: the rectangle's corners onto the crop's
corners, bilinear; V2 with MediaPipe's default border, edge pixels replicated; the 468-point
model with the zero border its tuned figures were measured with); landmarks come back as
``LandmarkProjectionCalculator`` maps them: ROI-normalised offsets rotated, then scaled by the
ROI's width and height, plus its centre (for a non-square ROI this is not the crop's exact
inverse, and MediaPipe's output has that quirk, so it is reproduced); z scales with the ROI
width.

ROIs. The legacy graphs (``face_detection_front_detection_to_roi.pbtxt``,
``face_landmark_landmarks_to_roi.pbtxt``) rotate the detection box by the eye keypoints, square
it on its long side and scale it 1.5x. The Face Landmarker task
(``mediapipe/tasks/cc/vision/face_detector/face_detector_graph.cc``) scales the detection box
1.5x **without** squaring it; from landmarks (``face_landmarks_detector_graph.cc``) both use the
axis-aligned extent of all points, rotated so that points 33 and 263 are level, squared, 1.5x.
:func:`roi_from_points` can instead measure the extent in the rotated frame (our default for the
468-point tracker: a tilted face then does not inflate the box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from facexpr.core.errors import ConfigError, ModelError
from facexpr.faces._tflite import TFLiteModel

MESH_INPUT = 192  # input side of the 468-point model
MeshModel = Literal["mesh468", "mesh478"]
RIGHT_EYE_OUTER = 33  # subject's right eye, outer corner (image left in a frontal view)
LEFT_EYE_OUTER = 263


@dataclass(frozen=True, slots=True)
class RotatedRect:
    """A square region of the image, rotated about its centre.

    Attributes:
        center: (2,) float32 px.
        size: side length in px (the width, along the ROI's x axis, when ``height`` is set).
        angle: radians; the ROI's x axis is ``(cos(angle), sin(angle))`` in image px (y down), so
            a positive angle means the subject's left eye is lower than the right one.
        height: side along the ROI's y axis in px, or None for a square.
    """

    center: np.ndarray
    size: float
    angle: float
    height: float | None = None

    @property
    def width(self) -> float:
        """Side along the ROI's x axis, px."""
        return float(self.size)

    @property
    def side_y(self) -> float:
        """Side along the ROI's y axis, px."""
        return float(self.size if self.height is None else self.height)

    def corners(self) -> np.ndarray:
        """Returns the (4, 2) float32 corners (top-left, top-right, bottom-right, bottom-left)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        w, h = self.width / 2, self.side_y / 2
        local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float32)
        rot = np.array([[c, -s], [s, c]], np.float32)
        return local @ rot.T + self.center

    def box(self) -> np.ndarray:
        """Returns the (4,) float32 axis-aligned xyxy box enclosing the rotated square."""
        p = self.corners()
        return np.concatenate([p.min(0), p.max(0)]).astype(np.float32)


def roi_from_points(
    points: np.ndarray,
    eye_right: np.ndarray,
    eye_left: np.ndarray,
    scale: float = 1.5,
    extent: Literal["rotated", "axis"] = "rotated",
) -> RotatedRect:
    """Returns the square ROI around ``points`` rotated so the eye line is horizontal.

    The box is made square on its long side and scaled by ``scale``.

    Args:
        points: (N, 2) px, e.g. the mesh points, or the detector box corners.
        eye_right: (2,) px, subject's right eye (image left).
        eye_left: (2,) px, subject's left eye.
        scale: enlargement of the square box.
        extent: ``"rotated"`` measures the points' extent in the rotated frame (a tilted face
            does not inflate the box); ``"axis"`` takes their axis-aligned extent and rotates
            that box about its centre, as MediaPipe does.
    """
    d = eye_left - eye_right
    angle = math.atan2(float(d[1]), float(d[0]))
    if extent == "axis":
        lo, hi = points.min(0), points.max(0)
        centre = (lo + hi) / 2
    else:
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]], np.float32)
        local = points @ rot  # image -> ROI axes
        lo, hi = local.min(0), local.max(0)
        centre = ((lo + hi) / 2) @ rot.T
    size = float(max(hi - lo)) * scale
    return RotatedRect(np.asarray(centre, np.float32), size, angle)


def roi_from_detection(
    box: np.ndarray, keypoints: np.ndarray, scale: float = 1.5, square: bool = True
) -> RotatedRect:
    """Returns the mesh ROI of a detection as MediaPipe builds it.

    MediaPipe rotates the *axis-aligned* detection box about its centre (it does not re-measure
    it), then scales it by 1.5; the legacy Face Mesh graph also squares it on the long side, the
    Face Landmarker task does not (``square=False``).

    Args:
        box: (4,) xyxy px.
        keypoints: (6, 2) px, detector keypoints (0: right eye, 1: left eye).
        scale: enlargement of the box.
        square: square the box on its long side first.
    """
    d = keypoints[1] - keypoints[0]
    angle = math.atan2(float(d[1]), float(d[0]))
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    if square:
        return RotatedRect(centre, max(w, h) * scale, angle)
    return RotatedRect(centre, w * scale, angle, h * scale)


def roi_affine(roi: RotatedRect, out_size: int) -> np.ndarray:
    """Returns the (2, 3) float64 affine mapping image px to ROI crop px (``out_size`` square).

    The ROI's corners land on the crop's corners (``ImageToTensorCalculator``'s mapping).
    """
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    a = np.array([[c, s], [-s, c]])  # rotate image axes into ROI axes, then scale each axis
    a[0] *= out_size / roi.width
    a[1] *= out_size / roi.side_y
    t = out_size / 2 - a @ roi.center.astype(np.float64)
    return np.hstack([a, t[:, None]])


def project_landmarks(raw: np.ndarray, roi: RotatedRect, in_size: int) -> np.ndarray:
    """Returns (N, 3) float32 image-px landmarks from a mesh model's (N, 3) crop-px output.

    ``LandmarkProjectionCalculator``: offsets from the crop centre, in crop sizes, are rotated by
    the ROI angle, then scaled by the ROI's width and height and moved to its centre; z is scaled
    by the ROI width.
    """
    u = raw[:, :2].astype(np.float64) / in_size - 0.5
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    x = (c * u[:, 0] - s * u[:, 1]) * roi.width + float(roi.center[0])
    y = (s * u[:, 0] + c * u[:, 1]) * roi.side_y + float(roi.center[1])
    out = np.empty((len(raw), 3), np.float32)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = raw[:, 2] * (roi.width / in_size)
    return out


@dataclass(frozen=True, slots=True)
class _MeshSpec:
    file: str
    size: int
    points: int
    outputs: tuple[str, str]  # (landmarks, face flag)
    border: int  # cv2 border mode of the crop


# V2 pads the crop as MediaPipe's ImageToTensorCalculator does by default (edge pixels
# replicated); the 468-point path keeps the zero border its tuned figures were measured with.
_MESH_SPECS: dict[str, _MeshSpec] = {
    "mesh468": _MeshSpec(
        "face_landmark.tflite", MESH_INPUT, 468, ("conv2d_21", "conv2d_31"), cv2.BORDER_CONSTANT
    ),
    "mesh478": _MeshSpec(
        "face_landmarks_detector.tflite", 256, 478, ("Identity", "Identity_1"), cv2.BORDER_REPLICATE
    ),
}


@dataclass(frozen=True, slots=True)
class MeshResult:
    """Face Mesh output for one ROI.

    Attributes:
        landmarks: (468, 3) or (478, 3) float32 (the model's points); x, y px in the source
            image, z px at the same scale relative to the face centre, + away from the camera.
        presence: face presence probability in [0, 1] (sigmoid of the face-flag logit).
        roi: the ROI the model ran on.
    """

    landmarks: np.ndarray
    presence: float
    roi: RotatedRect


class FaceMesh:
    """Runs one of MediaPipe's Face Mesh models on rotated ROIs.

    Args:
        num_threads: interpreter CPU threads (>= 1).
        model: ``"mesh468"`` (Face Mesh, 192 px) or ``"mesh478"`` (Face Mesh V2 with iris).
        content: the model's bytes instead of the vendored file (e.g. read from a ``.task``
            bundle).
        source: where ``content`` came from, for error messages.
        border: how the crop is padded where the ROI leaves the image: ``"replicate"`` (edge
            pixels, MediaPipe's default) or ``"zero"``; None takes the model's (V2 replicate, the
            468-point model zero).
    """

    def __init__(
        self,
        num_threads: int = 1,
        model: MeshModel = "mesh468",
        content: bytes | None = None,
        source: str | None = None,
        border: Literal["replicate", "zero"] | None = None,
    ) -> None:
        if num_threads < 1:
            raise ConfigError(f"FaceMesh.num_threads: {num_threads} < 1")
        if model not in _MESH_SPECS:
            raise ConfigError(f"FaceMesh.model: {model!r} is not 'mesh468' or 'mesh478'")
        if border not in (None, "replicate", "zero"):
            raise ConfigError(f"FaceMesh.border: {border!r} is not 'replicate' or 'zero'")
        spec = _MESH_SPECS[model]
        self.model = model
        self.input_size = spec.size
        self.points = spec.points
        name = source if content is not None and source else spec.file
        self._model = TFLiteModel(name, num_threads, content)
        if self._model.output_sizes.get(spec.outputs[0]) != 3 * spec.points:
            raise ModelError(
                f"{self._model.path}: not a {spec.points}-point Face Mesh model (no "
                f"{3 * spec.points}-value output '{spec.outputs[0]}')"
            )
        self._outputs = spec.outputs
        self._border = {None: spec.border, "replicate": cv2.BORDER_REPLICATE,
                        "zero": cv2.BORDER_CONSTANT}[border]  # fmt: skip

    def crop(self, image_rgb: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, np.ndarray]:
        """Returns the (S, S, 3) uint8 ROI crop (S: the model input) and its (2, 3) affine."""
        n = self.input_size
        m = roi_affine(roi, n)
        crop = cv2.warpAffine(image_rgb, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=self._border)
        return crop, m

    def run(self, image_rgb: np.ndarray, roi: RotatedRect) -> MeshResult:
        """Returns the landmarks of the face in ``roi``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            roi: where the face is (see :func:`roi_from_detection`, :func:`roi_from_points`).
        """
        crop, _ = self.crop(image_rgb, roi)
        x = crop.astype(np.float32)[None]
        x *= 1.0 / 255.0
        raw, flag = self._model(x, self._outputs)
        out = project_landmarks(raw.reshape(self.points, 3), roi, self.input_size)
        logit = float(np.clip(flag.reshape(-1)[0], -100.0, 100.0))
        return MeshResult(out, 1.0 / (1.0 + math.exp(-logit)), roi)

    def close(self) -> None:
        """Releases the interpreter."""
        self._model = None  # type: ignore[assignment]

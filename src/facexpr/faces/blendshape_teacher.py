"""The Blendshape V2 teacher: MediaPipe's Face Mesh V2 + Blendshape V2 models, run by our code.

A training-time tool: 52 ARKit-style scores on any real face, used as pseudo-labels (triplets by
teacher-vector distance, cached in shards). It reads the models from Google's Face Landmarker
bundle (``face_landmarker.task``, Apache-2.0), which the package does **not** ship: pass its path,
or set :data:`BUNDLE_ENV`. What MediaPipe's graph does is reproduced, not its code
(``mediapipe/tasks/cc/vision/face_landmarker/``):

- the landmark ROI: from a face detection, the detector's eye keypoints give the rotation and the
  box is scaled 1.5x and squared on its long side (:func:`~facexpr.faces.mesh.roi_from_detection`);
  from landmarks, points 33 and 263 give the rotation and their extent the box, scaled 1.5x
  (``face_landmarks_detector_graph.cc``, :func:`~facexpr.faces.mesh.roi_from_points`);
- Face Mesh V2 (``face_landmarks_detector.tflite``) runs on the 256x256 RGB ROI with values in
  [0, 1] (its metadata: mean 0, std 255); output 0 is 478 x (x, y, z) in ROI pixels, output 1
  the face-flag logit (presence = sigmoid);
- Blendshape V2 (``face_blendshapes.tflite``) takes 146 of the 478 points
  (``resources/blendshape_teacher_inputs.json``), x and y in image pixels (MediaPipe's normalised
  landmarks times the image size); the model normalises them itself (its output does not change
  when the points are shifted or scaled); output: 52 scores, ``_neutral`` then 51 ARKit names in
  :data:`~facexpr.core.arkit.ARKIT_NAMES` order (no ``tongueOut``).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError, ModelError
from facexpr.faces.mesh import (
    LEFT_EYE_OUTER,
    RIGHT_EYE_OUTER,
    RotatedRect,
    roi_affine,
    roi_from_detection,
    roi_from_points,
)

__all__ = [
    "BUNDLE_ENV",
    "TEACHER_NAMES",
    "BlendshapeTeacher",
    "TeacherResult",
    "resolve_bundle",
]

BUNDLE_ENV = "FACEXPR_LANDMARKER_TASK"
"""Environment variable naming ``face_landmarker.task`` when no path is passed."""
MESH_V2_INPUT = 256
TEACHER_NAMES: tuple[str, ...] = ARKIT_NAMES[:51]
"""The 51 ARKit names the teacher scores, in its output order (MediaPipe's; ``tongueOut`` is not
predicted). ``_neutral`` comes separately."""
_MEMBERS = ("face_landmarks_detector.tflite", "face_blendshapes.tflite")
_RESOURCE = Path(__file__).resolve().parent / "resources" / "blendshape_teacher_inputs.json"


def _input_indices() -> np.ndarray:
    idx = np.asarray(json.loads(_RESOURCE.read_text("utf-8"))["indices"], np.int64)
    if idx.shape != (146,) or idx.max() >= 478:
        raise ModelError(f"{_RESOURCE}: expected 146 indices below 478")
    return idx


def resolve_bundle(bundle: str | Path | None = None) -> Path:
    """Returns the Face Landmarker bundle to use: ``bundle``, else ``$FACEXPR_LANDMARKER_TASK``.

    Raises:
        ModelError: neither is given.
        InputError: the file does not exist.
    """
    if bundle is None:
        env = os.environ.get(BUNDLE_ENV)
        if not env:
            raise ModelError(
                "the Blendshape V2 teacher needs MediaPipe's Face Landmarker bundle "
                "(face_landmarker.task, Apache-2.0; not shipped with facexpr): pass its path "
                f"(--teacher-bundle PATH) or set {BUNDLE_ENV}"
            )
        bundle = env
    p = Path(bundle).expanduser()
    if not p.is_file():
        raise InputError(p, "Face Landmarker bundle not found")
    return p


def _interpreter(data: bytes, where: str, num_threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - listed as a core dependency
        raise MissingDependencyError("ai-edge-litert", "faces", "the blendshape teacher") from exc
    try:
        it = Interpreter(model_content=data, num_threads=int(num_threads))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot load TFLite model ({exc})") from exc
    return it


@dataclass(frozen=True, slots=True)
class TeacherResult:
    """The teacher's output for one face.

    Attributes:
        scores: (51,) float32 in [0, 1], :data:`TEACHER_NAMES` order.
        neutral: the ``_neutral`` score in [0, 1].
        landmarks: (478, 3) float32 Face Mesh V2 points; x, y px in the image, z px-scaled.
        presence: face presence probability in [0, 1].
        roi: the ROI the landmark model ran on last.
    """

    scores: np.ndarray
    neutral: float
    landmarks: np.ndarray
    presence: float
    roi: RotatedRect

    def arkit52(self) -> np.ndarray:
        """Returns (52,) float32 in :data:`ARKIT_NAMES` order, ``tongueOut`` NaN (not predicted)."""
        return np.append(self.scores, np.float32(np.nan)).astype(np.float32)


class BlendshapeTeacher:
    """Runs Face Mesh V2 and Blendshape V2 from a Face Landmarker bundle.

    Args:
        bundle: ``face_landmarker.task``; default ``$FACEXPR_LANDMARKER_TASK``.
        num_threads: interpreter CPU threads (>= 1).
        refine: extra landmark passes on the ROI of the previous pass's points (MediaPipe's
            next-frame ROI); 1 frames any crop as MediaPipe's tracking does.

    Raises:
        ModelError: no bundle given, or a model that does not load.
        InputError: the bundle is missing, not a zip, or lacks a model.
        ConfigError: bad options.
    """

    def __init__(
        self, bundle: str | Path | None = None, num_threads: int = 1, refine: int = 1
    ) -> None:
        if num_threads < 1:
            raise ConfigError(f"BlendshapeTeacher.num_threads: {num_threads} < 1")
        if refine < 0:
            raise ConfigError(f"BlendshapeTeacher.refine: {refine} < 0")
        self.bundle = resolve_bundle(bundle)
        try:
            with zipfile.ZipFile(self.bundle) as z:
                names = set(z.namelist())
                missing = [m for m in _MEMBERS if m not in names]
                if missing:
                    raise InputError(
                        self.bundle, f"not a Face Landmarker bundle: lacks {', '.join(missing)}"
                    )
                data = {m: z.read(m) for m in _MEMBERS}
        except (zipfile.BadZipFile, OSError) as e:
            raise InputError(self.bundle, f"not a Face Landmarker bundle (not a zip: {e})") from e
        self.refine = int(refine)
        self._mesh = _interpreter(data[_MEMBERS[0]], f"{self.bundle}:{_MEMBERS[0]}", num_threads)
        self._bs = _interpreter(data[_MEMBERS[1]], f"{self.bundle}:{_MEMBERS[1]}", num_threads)
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = sorted(self._mesh.get_output_details(), key=lambda o: o["name"])
        by_size = {int(np.prod(o["shape"])): o["index"] for o in outs}
        if 1434 not in by_size:
            raise ModelError(f"{self.bundle}: the landmark model has no 1434-value output")
        self._mesh_pts = by_size[1434]
        self._mesh_flag = outs[1]["index"]  # Identity_1: the face flag (graph output 1)
        self._bs_in = self._bs.get_input_details()[0]["index"]
        self._bs_out = self._bs.get_output_details()[0]["index"]
        self._idx = _input_indices()
        self._detector = None

    # The two models -------------------------------------------------------------------------

    def mesh(self, image_rgb: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, float]:
        """Returns the (478, 3) float32 landmarks (image px) in ``roi`` and the presence."""
        m = roi_affine(roi, MESH_V2_INPUT)
        crop = cv2.warpAffine(
            image_rgb, m, (MESH_V2_INPUT, MESH_V2_INPUT), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )  # fmt: skip
        x = crop.astype(np.float32)[None]
        x *= 1.0 / 255.0
        self._mesh.set_tensor(self._mesh_in, x)
        self._mesh.invoke()
        pts = self._mesh.get_tensor(self._mesh_pts).reshape(478, 3).astype(np.float64)
        flag = float(self._mesh.get_tensor(self._mesh_flag).reshape(-1)[0])
        out = np.empty((478, 3), np.float32)
        out[:, :2] = (pts[:, :2] - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
        out[:, 2] = pts[:, 2] * (roi.size / MESH_V2_INPUT)
        return out, 1.0 / (1.0 + math.exp(-float(np.clip(flag, -100, 100))))

    def blendshapes(self, landmarks: np.ndarray) -> np.ndarray:
        """Returns the 52 raw scores (``_neutral`` first) of (478, 2+) landmarks in image px."""
        lm = np.asarray(landmarks)
        if lm.ndim != 2 or lm.shape[0] != 478 or lm.shape[1] < 2:
            raise ConfigError(f"blendshapes: expected (478, 2 or 3) landmarks, got {lm.shape}")
        x = np.ascontiguousarray(lm[self._idx, :2], np.float32)[None]
        self._bs.set_tensor(self._bs_in, x)
        self._bs.invoke()
        return self._bs.get_tensor(self._bs_out).reshape(52).astype(np.float32).copy()

    # Whole pipeline -------------------------------------------------------------------------

    def run_roi(self, image_rgb: np.ndarray, roi: RotatedRect) -> TeacherResult:
        """Returns the teacher's result for the face in ``roi`` (refined ``refine`` times)."""
        lm, presence = self.mesh(image_rgb, roi)
        for _ in range(self.refine):
            roi = roi_from_points(lm[:, :2], lm[RIGHT_EYE_OUTER, :2], lm[LEFT_EYE_OUTER, :2])
            lm, presence = self.mesh(image_rgb, roi)
        raw = self.blendshapes(lm)
        return TeacherResult(raw[1:].copy(), float(raw[0]), lm, presence, roi)

    def run_crop(self, image_rgb: np.ndarray) -> TeacherResult:
        """Returns the result for a face crop (one upright face filling the image: UTKFace, FER+,
        the front-end's aligned crops). Greyscale (H, W) input is replicated to RGB."""
        img = _rgb(image_rgb)
        h, w = img.shape[:2]
        # As the front-end's aligned mode: the crop is the face, the ROI that face x 1.5 / 1.25.
        roi = RotatedRect(np.array([w / 2, h / 2], np.float32), 1.5 * max(w, h) / 1.25, 0.0)
        return self.run_roi(img, roi)

    def run_image(self, image_rgb: np.ndarray, max_faces: int = 10) -> list[TeacherResult]:
        """Returns one result per face the short-range detector finds (MediaPipe's own choice),
        largest first."""
        from facexpr.faces.detector import FaceDetector, FaceDetectorOptions

        img = _rgb(image_rgb)
        if self._detector is None:
            self._detector = FaceDetector(FaceDetectorOptions(model="short"))
        dets = self._detector.detect(img)
        dets.sort(key=lambda d: -float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))
        return [self.run_roi(img, roi_from_detection(d.box, d.keypoints)) for d in dets[:max_faces]]

    def run_video(
        self, frames: Iterable[np.ndarray], min_presence: float = 0.5
    ) -> Iterator[TeacherResult | None]:
        """Yields the main face's result per frame (``None`` where there is none), as MediaPipe's
        VIDEO mode: the landmarks of one frame give the next frame's ROI, and the detector runs
        only when the face is lost (presence below ``min_presence``)."""
        roi: RotatedRect | None = None
        for frame in frames:
            img = _rgb(frame)
            r = None
            if roi is not None:
                lm, presence = self.mesh(img, roi)
                if presence >= min_presence:
                    raw = self.blendshapes(lm)
                    r = TeacherResult(raw[1:].copy(), float(raw[0]), lm, presence, roi)
            if r is None:
                found = self.run_image(img, max_faces=1)
                r = found[0] if found and found[0].presence >= min_presence else None
            roi = None
            if r is not None:
                lm = r.landmarks
                roi = roi_from_points(lm[:, :2], lm[RIGHT_EYE_OUTER, :2], lm[LEFT_EYE_OUTER, :2])
            yield r

    def close(self) -> None:
        """Releases the interpreters."""
        self._mesh = self._bs = None
        if self._detector is not None:
            self._detector.close()
            self._detector = None


def _rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InputError(None, f"teacher input must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(None, f"teacher input must be (H, W, 3) RGB or (H, W) grey, got {a.shape}")
    return np.ascontiguousarray(a)

"""The Blendshape V2 teacher: MediaPipe's Face Mesh V2 + Blendshape V2 models, run by our code.

A training-time tool: 52 ARKit-style scores on any real face, used as pseudo-labels (triplets by
teacher-vector distance, cached in shards). The models are the vendored members of Google's Face
Landmarker bundle (``face_landmarker.task``, Apache-2.0: ``faces/models/``); a bundle given by
path (or :data:`BUNDLE_ENV`) is read instead, for checking another version. What MediaPipe's
graph does is reproduced, not its code (``mediapipe/tasks/cc/vision/face_landmarker/``):

- the landmark ROI: from a face detection, the detector's eye keypoints give the rotation and the
  box is scaled 1.5x and squared on its long side (:func:`~facexpr.faces.mesh.roi_from_detection`);
  from landmarks, points 33 and 263 give the rotation and their extent the box, scaled 1.5x
  (:func:`~facexpr.faces.mesh.roi_from_points`). The teacher keeps these choices (square boxes,
  extent in the rotated frame, one refinement pass, a zero border around the crop), with which
  its cached labels were made; the front-end's ``mesh478`` path reproduces the Face Landmarker
  task's exact ROIs and border instead;
- Face Mesh V2 (:class:`~facexpr.faces.mesh.FaceMesh` ``"mesh478"``) on the 256x256 ROI;
- Blendshape V2 (:class:`~facexpr.faces.blendshape_model.BlendshapeModel`) on 146 of the 478
  points in image pixels; output: ``_neutral`` then 51 ARKit names in
  :data:`~facexpr.core.arkit.ARKIT_NAMES` order (no ``tongueOut``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.blendshape_model import BlendshapeModel
from facexpr.faces.mesh import (
    LEFT_EYE_OUTER,
    RIGHT_EYE_OUTER,
    FaceMesh,
    RotatedRect,
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
"""Environment variable naming a ``face_landmarker.task`` to read instead of the vendored models."""
MESH_V2_INPUT = 256
TEACHER_NAMES: tuple[str, ...] = ARKIT_NAMES[:51]
"""The 51 ARKit names the teacher scores, in its output order (MediaPipe's; ``tongueOut`` is not
predicted). ``_neutral`` comes separately."""
_MEMBERS = ("face_landmarks_detector.tflite", "face_blendshapes.tflite")


def resolve_bundle(bundle: str | Path | None = None) -> Path | None:
    """Returns the Face Landmarker bundle to read: ``bundle``, else ``$FACEXPR_LANDMARKER_TASK``,
    else None (the vendored models).

    Raises:
        InputError: the named file does not exist.
    """
    if bundle is None:
        env = os.environ.get(BUNDLE_ENV)
        if not env:
            return None
        bundle = env
    p = Path(bundle).expanduser()
    if not p.is_file():
        raise InputError(p, "Face Landmarker bundle not found")
    return p


def _read_members(bundle: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(bundle) as z:
            missing = [m for m in _MEMBERS if m not in set(z.namelist())]
            if missing:
                lacks = ", ".join(missing)
                raise InputError(bundle, f"not a Face Landmarker bundle: lacks {lacks}")
            return {m: z.read(m) for m in _MEMBERS}
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(bundle, f"not a Face Landmarker bundle (not a zip: {e})") from e


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
    """Runs Face Mesh V2 and Blendshape V2 (the vendored models, or a bundle's).

    Args:
        bundle: a ``face_landmarker.task`` to read the models from; default
            ``$FACEXPR_LANDMARKER_TASK``, else the vendored models.
        num_threads: interpreter CPU threads (>= 1).
        refine: extra landmark passes on the ROI of the previous pass's points (MediaPipe's
            next-frame ROI); 1 frames any crop as MediaPipe's tracking does.

    Raises:
        ModelError: a model that does not load.
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
        data: dict[str, bytes | None] = dict.fromkeys(_MEMBERS)
        where = {m: m for m in _MEMBERS}
        if self.bundle is not None:
            data.update(_read_members(self.bundle))
            where = {m: f"{self.bundle}:{m}" for m in _MEMBERS}
        self.refine = int(refine)
        # Zero border, as the labels already cached in datasets were made: on UTKFace crops, whose
        # ROI leaves the image, MediaPipe's replicated border moves the scores by 0.12 (median of
        # the largest change per face, 40 faces; up to 0.36).
        self._mesh = FaceMesh(
            num_threads, "mesh478", data[_MEMBERS[0]], where[_MEMBERS[0]], border="zero"
        )
        self._bs = BlendshapeModel(num_threads, data[_MEMBERS[1]], where[_MEMBERS[1]])
        self._detector = None

    # The two models -------------------------------------------------------------------------

    def mesh(self, image_rgb: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, float]:
        """Returns the (478, 3) float32 landmarks (image px) in ``roi`` and the presence."""
        r = self._mesh.run(image_rgb, roi)
        return r.landmarks, r.presence

    def blendshapes(self, landmarks: np.ndarray) -> np.ndarray:
        """Returns the 52 raw scores (``_neutral`` first) of (478, 2+) landmarks in image px."""
        return self._bs(landmarks)

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
        self._mesh.close()
        self._bs.close()
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

"""Typed results passed between stages.

Stages return these frozen dataclasses, never dicts, so a typo fails at once. Arrays are numpy;
shapes, dtypes and units are given per field. Pixel coordinates are in the source frame, x to the
right and y down, origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class RunningMode(enum.Enum):
    """How frames relate to each other.

    IMAGE: every frame is independent (photos). VIDEO: frames come in time order from one file, so
    faces are tracked and landmarks smoothed. STREAM: like VIDEO but live (webcam), unbounded.
    """

    IMAGE = "image"
    VIDEO = "video"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        index: 0-based position of the frame in its source (decode order of the video stream,
            counting skipped frames too; 0 for a photo).
        timestamp: presentation time in seconds from the stream's start (0.0 for a photo).
        source: the path (or ``webcam:N``) the frame came from.
    """

    image: np.ndarray
    index: int = 0
    timestamp: float = 0.0
    source: str = ""

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Rigid head pose of a face relative to the camera.

    Angles follow OpenFace 2.0's convention (R = Rx @ Ry @ Rz in the camera frame: x right, y down,
    z forward): pitch > 0 when the head nods down, yaw > 0 when the nose turns toward the image's
    left (the subject's right), roll > 0 when the head tilts clockwise in the image. Checked
    against OpenFace's own ``pose_R*`` columns (tests/faces).

    Attributes:
        pitch: degrees.
        yaw: degrees.
        roll: degrees.
        rotation: (3,) float32 radians, Euler angles (rx, ry, rz) with R = Rx @ Ry @ Rz, as
            OpenFace's ``pose_Rx/Ry/Rz``; pitch, yaw and roll are these in degrees.
        translation: (3,) float32 millimetres, camera frame (OpenFace ``pose_Tx/Ty/Tz``), x right,
            y down, z forward from the camera.
        reprojection_error: mean distance in px between the 68 landmarks and the posed model.
    """

    pitch: float
    yaw: float
    roll: float
    rotation: np.ndarray
    translation: np.ndarray
    reprojection_error: float = float("nan")


@dataclass(frozen=True, slots=True)
class Gaze:
    """Eye gaze as OpenFace 2.0 reports it (``gaze_0_*``, ``gaze_1_*``, ``gaze_angle_*``).

    Camera coordinates: x right, y down, z forward (away from the camera), so a face looking
    into the camera has gaze vectors near (0, 0, -1).

    Attributes:
        eye0: (3,) float32 unit vector of the eye on the image's left (the subject's right eye;
            OpenFace's ``gaze_0``).
        eye1: (3,) float32 unit vector of the other eye (OpenFace's ``gaze_1``).
        angle: (2,) float32 radians, (``gaze_angle_x``, ``gaze_angle_y``) of the mean of the two
            vectors: ``atan2(x, -z)``, ``atan2(y, -z)``; x > 0 looking toward the image's right,
            y > 0 looking down.
    """

    eye0: np.ndarray
    eye1: np.ndarray
    angle: np.ndarray


@dataclass(frozen=True, slots=True)
class FaceResult:
    """Everything the front-end knows about one face in one frame.

    Attributes:
        box: (4,) float32 xyxy px.
        score: detector confidence in [0, 1].
        landmarks: (68, 2) float32 px, iBUG / Multi-PIE 68-point order (as OpenFace and dlib).
        confidence: landmark model's face-presence confidence in [0, 1] (OpenFace ``confidence``).
        face_id: stable id of the track in a video (0, 1, ...); in a photo, the face's rank by
            box area, largest first.
        mesh: (468, 3) float32 dense mesh (MediaPipe Face Mesh topology); x, y in px, z in px at
            the same scale, relative to the mesh centre, + away from the camera. None if absent.
        iris: (10, 3) float32 iris points of Face Mesh V2 (its points 468-477: the subject's
            right iris, centre first, then the left one), same units as ``mesh``; None when the
            468-point model ran.
        keypoints: (6, 2) float32 px detector keypoints (right eye, left eye, nose tip, mouth,
            right ear tragion, left ear tragion; subject's sides) or None.
        pose: head pose, or None if it could not be computed.
        aligned: (S, S, 3) uint8 RGB similarity-aligned crop, or None if not requested.
        align_matrix: (2, 3) float32 affine mapping source px -> aligned crop px, or None.
        blendshapes: (52,) float32 ARKit weights in [0, 1] (order of ``core.arkit.ARKIT_NAMES``),
            or None when not computed.
        aus: (n_aus,) float32 FACS AU intensities on the 0-5 scale (order of
            ``avatars.facs.AU_NAMES``), or None.
        fit_residual: mean landmark error / inter-ocular distance of the model fit that gave the
            blendshapes (NaN if none).
        embedding: (16,) float32, L2-normalised expression embedding of the aligned crop
            (``facexpr.analyze.embedding``; cosine or squared distance follows expression
            similarity, not identity), or None when not computed.
        emotions: (8,) float32 probabilities of ``core.affect.EMOTIONS`` (learned heads), or None.
        valence_arousal: (2,) float32 valence and arousal in [-1, 1] (learned heads), or None.
        au_occurrence: (20,) float32 0/1 occurrence of ``core.affect.HEAD_AUS`` (learned heads,
            calibrated thresholds), or None.
        au_intensity: (20,) float32 0-5 intensities of ``core.affect.HEAD_AUS`` (learned
            heads), or None.
        gaze: eye gaze from the iris points and the head pose, or None (no iris or no pose).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    confidence: float = 1.0
    face_id: int = 0
    mesh: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    pose: HeadPose | None = None
    aligned: np.ndarray | None = None
    align_matrix: np.ndarray | None = None
    blendshapes: np.ndarray | None = None
    aus: np.ndarray | None = None
    fit_residual: float = float("nan")
    embedding: np.ndarray | None = None  # (16,) float32, L2-normalised
    emotions: np.ndarray | None = None
    valence_arousal: np.ndarray | None = None
    au_occurrence: np.ndarray | None = None
    au_intensity: np.ndarray | None = None
    iris: np.ndarray | None = None
    gaze: Gaze | None = None


@dataclass(frozen=True, slots=True)
class FrameResult:
    """All faces of one frame; no face is an empty tuple, not an error.

    Attributes:
        source: path (or ``webcam:N``) of the input.
        index: 0-based frame index in the source.
        timestamp: seconds.
        width: frame width in px.
        height: frame height in px.
        faces: faces found, ordered by face_id.
    """

    source: str
    index: int
    timestamp: float
    width: int
    height: int
    faces: tuple[FaceResult, ...] = field(default_factory=tuple)

    @property
    def success(self) -> bool:
        return len(self.faces) > 0

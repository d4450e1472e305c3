"""facexpr.faces: face detection, Face Mesh (468 or 478 points with iris), 68 iBUG landmarks,
alignment, head pose, gaze, tracking.

Frames in, :class:`~facexpr.core.types.FrameResult` out (:class:`FaceFrontEnd`); the stages are
usable alone. Models: MediaPipe BlazeFace, Face Mesh, Face Mesh V2 and Blendshape V2 (Apache-2.0,
vendored in ``models/``; ``docs/frontend.md``).
"""

from facexpr.faces.align import ALIGN_TEMPLATE, align_face
from facexpr.faces.detector import (
    KEYPOINT_NAMES,
    Detection,
    FaceDetector,
    FaceDetectorOptions,
)
from facexpr.faces.frontend import FaceFrontEnd, FaceFrontEndOptions
from facexpr.faces.landmarks68 import landmarks68, mesh_to_ibug68
from facexpr.faces.mesh import FaceMesh, MeshResult, RotatedRect, roi_from_detection
from facexpr.faces.pose import head_pose
from facexpr.faces.tracking import OneEuroFilter

__all__ = [
    "ALIGN_TEMPLATE",
    "KEYPOINT_NAMES",
    "Detection",
    "FaceDetector",
    "FaceDetectorOptions",
    "FaceFrontEnd",
    "FaceFrontEndOptions",
    "FaceMesh",
    "MeshResult",
    "OneEuroFilter",
    "RotatedRect",
    "align_face",
    "head_pose",
    "landmarks68",
    "mesh_to_ibug68",
    "roi_from_detection",
]

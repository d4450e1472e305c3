"""Head pose from the 68 landmarks by PnP against the ICT FaceKit neutral face.

Method: ``cv2.solvePnP`` with SOLVEPNP_SQPNP (Terzakis & Lourakis, ECCV 2020: a globally optimal
non-minimal solver, 0.2 ms here, where SOLVEPNP_ITERATIVE's Levenberg-Marquardt took ~5 ms) of
the stable landmarks 17-67 (brows, nose, eyes, mouth; the jaw contour slides along the
silhouette on turned heads, so it is left out) against the same 68 vertices of the ICT FaceKit
neutral face (``resources/ict68_mm.json``, mm, OpenCV axes: x right, y down, z away from the
camera for a face looking at it). Camera: pinhole, focal length ``max(W, H)`` px, principal
point at the image centre, no distortion, unless given.

Angles: the rotation R (model -> camera) is split as R = Rx(rx) @ Ry(ry) @ Rz(rz), as OpenFace's
``pose_Rx/Ry/Rz``; pitch, yaw, roll = rx, ry, rz in degrees. With these axes: pitch > 0 is
nodding down, roll > 0 tilts the head so that the subject's left eye (image right) goes down, and
yaw > 0 turns the nose toward the image's left (the subject's right). A horizontally mirrored
image negates yaw and roll. These signs agree with OpenFace 2.0: on its landmarks in
``OpenFace_Test.csv`` our rotation follows its ``pose_Ry`` / ``pose_Rz`` with correlations 0.99 /
0.97 and equal signs (``tests/faces/test_pose.py``). The
translation is the model origin (mean of the 68 points: 36 mm behind the nose tip and 7 mm
above it) in camera mm.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from facexpr.core.errors import InputError, ModelError
from facexpr.core.types import HeadPose

_RESOURCE = Path(__file__).resolve().parent / "resources" / "ict68_mm.json"
STABLE = np.arange(17, 68)


@cache
def model_points() -> np.ndarray:
    """Returns the (68, 3) float64 ICT FaceKit landmark positions, mm, OpenCV axes."""
    try:
        pts = np.asarray(json.loads(_RESOURCE.read_text())["points"], np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{_RESOURCE}: cannot read the 3D landmarks ({exc})") from exc
    if pts.shape != (68, 3):
        raise ModelError(f"{_RESOURCE}: expected (68, 3) points, got {pts.shape}")
    return pts


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Returns the (3, 3) float64 pinhole intrinsics: focal ``max(W, H)`` px unless given."""
    f = float(max(width, height)) if focal is None else float(focal)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def euler_xyz(r: np.ndarray) -> np.ndarray:
    """Returns (rx, ry, rz) radians with ``r = Rx(rx) @ Ry(ry) @ Rz(rz)``."""
    ry = math.asin(max(-1.0, min(1.0, r[0, 2])))
    rx = math.atan2(-r[1, 2], r[2, 2])
    rz = math.atan2(-r[0, 1], r[0, 0])
    return np.array([rx, ry, rz])


def head_pose(
    lm68: np.ndarray,
    width: int,
    height: int,
    camera: np.ndarray | None = None,
) -> HeadPose:
    """Returns the head pose of a face from its 68 landmarks.

    Args:
        lm68: (68, 2) px iBUG landmarks.
        width: image width px.
        height: image height px.
        camera: (3, 3) intrinsics; default :func:`camera_matrix`.
    """
    if lm68.shape != (68, 2):
        raise InputError(None, f"head_pose: landmarks must be (68, 2), got {lm68.shape}")
    k = camera_matrix(width, height) if camera is None else np.asarray(camera, np.float64)
    obj = model_points()[STABLE]
    img = lm68[STABLE].astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise InputError(None, "head_pose: PnP found no pose for these landmarks")
    r, _ = cv2.Rodrigues(rvec)
    angles = euler_xyz(r)
    proj, _ = cv2.projectPoints(model_points(), rvec, tvec, k, None)
    err = float(np.linalg.norm(proj.reshape(68, 2) - lm68, axis=1).mean())
    deg = np.degrees(angles)
    return HeadPose(
        pitch=float(deg[0]),
        yaw=float(deg[1]),
        roll=float(deg[2]),
        rotation=angles.astype(np.float32),
        translation=tvec.reshape(3).astype(np.float32),
        reprojection_error=err,
    )

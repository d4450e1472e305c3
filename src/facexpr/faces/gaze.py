"""Eye gaze from Face Mesh V2's iris centres and the head pose, as OpenFace 2.0 computes it.

OpenFace (Baltrusaitis et al., "OpenFace 2.0: Facial Behavior Analysis Toolkit", FG 2018;
``GazeEstimation.cpp``: ``EstimateGaze``, ``GetGazeAngle``) models each eye as a 12 mm sphere
whose centre is the midpoint of the eye's two corners (iBUG points 36/39 and 42/45 of its posed
3D face model) plus ``(0, -3.5, 7)`` mm in head coordinates (up and behind the corners); the ray
from the camera centre through the pupil meets the sphere's front, and the gaze vector is the
unit vector from the sphere's centre to that point. Here the 3D face model is the ICT FaceKit
68-point model posed by :func:`~facexpr.faces.pose.head_pose` (same axes as OpenFace's: x right,
y down, z away from the camera; mm) and the pupil is Face Mesh V2's iris centre (points 468 and
473). The eye corners are taken where the landmarks see them (iBUG 36/39, 42/45 of the image),
at the depth of the posed model's corners: the model's own corners would carry its fit residual
(a few px) into the eyeball centre, and a 1 px shift of the centre turns the vector by about
0.1 rad on a 300 px face. Where the ray misses the sphere (OpenFace then answers "straight
ahead"), the point of the ray closest to the sphere is used, so the vector still follows the
iris. ``gaze_angle_x/y`` are ``atan2(x, -z)`` and ``atan2(y, -z)`` of the mean of the two
vectors, as OpenFace's.
"""

from __future__ import annotations

import math

import numpy as np

from facexpr.core.types import Gaze, HeadPose
from facexpr.faces.pose import camera_matrix, model_points

__all__ = ["EYEBALL_OFFSET_MM", "EYEBALL_RADIUS_MM", "estimate_gaze", "rotation_matrix"]

EYEBALL_RADIUS_MM = 12.0
EYEBALL_OFFSET_MM = np.array([0.0, -3.5, 7.0])
"""Eyeball centre from the midpoint of the eye corners, head coordinates (OpenFace's values)."""
# (corner, corner) iBUG indices per eye; eye 0 is on the image's left (the subject's right eye).
_EYE_CORNERS = ((36, 39), (42, 45))


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """Returns the (3, 3) float64 ``Rx(rx) @ Ry(ry) @ Rz(rz)`` of Euler angles in radians."""
    rx, ry, rz = (float(a) for a in angles)
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    )  # fmt: skip
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return x @ y @ z


def eyeball_centres(
    pose: HeadPose, lm68: np.ndarray | None = None, k_inv: np.ndarray | None = None
) -> np.ndarray:
    """Returns the (2, 3) float64 eyeball centres in camera mm (eye 0, eye 1).

    Args:
        pose: the head pose.
        lm68: (68, 2) px landmarks: the corners' midpoint is taken on them, at the depth of the
            posed model's; None takes the model's corners.
        k_inv: (3, 3) inverse intrinsics (needed with ``lm68``).
    """
    r = rotation_matrix(pose.rotation)
    t = np.asarray(pose.translation, np.float64)
    pts = model_points()
    out = np.empty((2, 3))
    for k, (a, b) in enumerate(_EYE_CORNERS):
        mid = r @ ((pts[a] + pts[b]) / 2) + t
        if lm68 is not None and k_inv is not None:
            seen = (np.asarray(lm68[a], np.float64) + np.asarray(lm68[b], np.float64)) / 2
            ray = k_inv @ np.array([seen[0], seen[1], 1.0])
            mid = ray * (mid[2] / ray[2])
        out[k] = mid + r @ EYEBALL_OFFSET_MM
    return out


def _hit(ray: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Returns the first point where the unit ``ray`` from the origin meets the sphere (or the
    ray's point closest to it when it misses)."""
    b = float(ray @ centre)
    disc = b * b - float(centre @ centre) + radius * radius
    return ray * (b - math.sqrt(max(disc, 0.0)))


def estimate_gaze(
    pupils: np.ndarray,
    pose: HeadPose,
    width: int,
    height: int,
    lm68: np.ndarray | None = None,
    camera: np.ndarray | None = None,
) -> Gaze:
    """Returns the gaze of a face from its two pupil centres and its head pose.

    Args:
        pupils: (2, 2+) px, the pupil of eye 0 (image left: Face Mesh V2 point 468) then eye 1
            (point 473).
        pose: the head pose from :func:`~facexpr.faces.pose.head_pose` on the same image.
        lm68: (68, 2) px landmarks the pose was solved from (eye corners as seen); None uses
            the posed model's corners.
        width: image width px.
        height: image height px.
        camera: (3, 3) intrinsics; default :func:`~facexpr.faces.pose.camera_matrix` (the one
            the pose was solved with).
    """
    k = camera_matrix(width, height) if camera is None else np.asarray(camera, np.float64)
    k_inv = np.linalg.inv(k)
    centres = eyeball_centres(pose, lm68, k_inv)
    vecs = []
    for p, c in zip(np.asarray(pupils, np.float64)[:, :2], centres, strict=True):
        ray = k_inv @ np.array([p[0], p[1], 1.0])
        ray /= np.linalg.norm(ray)
        g = _hit(ray, c, EYEBALL_RADIUS_MM) - c
        vecs.append(g / np.linalg.norm(g))
    m = (vecs[0] + vecs[1]) / 2
    angle = np.array([math.atan2(m[0], -m[2]), math.atan2(m[1], -m[2])], np.float32)
    return Gaze(vecs[0].astype(np.float32), vecs[1].astype(np.float32), angle)

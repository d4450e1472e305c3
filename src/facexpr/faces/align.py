"""Similarity alignment of a face to a fixed template from its 68 landmarks."""

from __future__ import annotations

import cv2
import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.landmarks68 import MOUTH, eye_centres

ALIGN_TEMPLATE = np.array([[0.37, 0.38], [0.63, 0.38], [0.50, 0.68]], np.float32)
"""(3, 2) template positions, as fractions of the crop size: the subject's right eye centre
(image left), left eye centre, mouth centre. Eye centres are means of the 68-point eye contours
(36-41, 42-47), the mouth centre the mean of 48-67. The framing keeps the whole face, brows to
chin, with a margin: expression models need the chin of an open jaw and the forehead of raised
brows (the eye-to-mouth / eye-to-eye ratio, 1.15, is that of an average face)."""

TEMPLATE_WEIGHTS = np.array([1.0, 1.0, 0.1])
"""Least-squares weights of the three points: the eyes dominate (they land on the template within
a pixel or two), the mouth only steadies the scale and rotation."""


def similarity_umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Returns the (2, 3) float64 weighted least-squares similarity mapping ``src`` to ``dst``.

    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", TPAMI 1991, with per-point weights.

    Args:
        src: (N, 2) points.
        dst: (N, 2) points.
        weights: (N,) non-negative weights.
    """
    w = weights / weights.sum()
    ms, md = w @ src, w @ dst
    s, d = src - ms, dst - md
    cov = (d * w[:, None]).T @ s
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = u @ np.diag(sign) @ vt
    var = (w * (s**2).sum(1)).sum()
    scale = (sig * sign).sum() / var
    a = scale * r
    return np.hstack([a, (md - a @ ms)[:, None]])


def align_points(lm68: np.ndarray) -> np.ndarray:
    """Returns the (3, 2) float64 alignment points: right eye, left eye and mouth centres, px."""
    er, el = eye_centres(lm68.astype(np.float64))
    return np.stack([er, el, lm68[MOUTH].astype(np.float64).mean(0)])


def align_face(
    image_rgb: np.ndarray, lm68: np.ndarray, size: int = 224
) -> tuple[np.ndarray, np.ndarray]:
    """Returns a similarity-aligned face crop and its matrix.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        lm68: (68, 2) px iBUG landmarks.
        size: side of the square crop in px (>= 16).

    Returns:
        The (size, size, 3) uint8 crop (bilinear, border replicated) and the (2, 3) float32
        affine mapping source px to crop px.
    """
    if size < 16:
        raise ConfigError(f"align_face: size {size} < 16 px")
    if lm68.shape != (68, 2):
        raise InputError(None, f"align_face: landmarks must be (68, 2), got {lm68.shape}")
    m = similarity_umeyama(align_points(lm68), ALIGN_TEMPLATE * size, TEMPLATE_WEIGHTS)
    crop = cv2.warpAffine(
        image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, m.astype(np.float32)

"""Image composition for synthetic faces: backgrounds and landmark-based similarity alignment.

The aligned crop follows a fixed 68-point template (``resources/template68.json``: the ICT FaceKit
neutral face seen frontally, as fractions of the crop). The similarity (rotation, uniform scale,
translation) is fitted by least squares (Umeyama 1991) on the points that expressions move least
(eye corners and the nose), so a dropped jaw or raised brows do not shift the crop.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError

__all__ = [
    "ALIGN_POINTS",
    "BackgroundKind",
    "align_face",
    "draw_background",
    "list_photos",
    "similarity_transform",
    "template68",
]

BackgroundKind = Literal["solid", "gradient", "noise", "photos"]
# iBUG-68 points that expressions barely move: nose bridge and tip (27-35), eye corners.
ALIGN_POINTS: tuple[int, ...] = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@cache
def _template_unit() -> np.ndarray:
    text = resources.files("facexpr.synth").joinpath("resources", "template68.json").read_text()
    pts = np.asarray(json.loads(text)["points"], np.float64)
    pts.setflags(write=False)
    return pts


def template68(size: int) -> np.ndarray:
    """Returns the (68, 2) float64 template landmarks in px of a ``size`` x ``size`` crop."""
    return _template_unit() * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Returns the (2, 3) float64 similarity that maps ``src`` points onto ``dst`` (least squares).

    Args:
        src: (N, 2) points, N >= 2.
        dst: (N, 2) points.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    scale = float(np.trace(np.diag(sig) @ e) / (s**2).sum(1).mean())
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = mu_d - scale * r @ mu_s
    return m


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the face cropped to the template, its landmarks and the transform.

    Args:
        image: (H, W, 3) uint8 RGB.
        landmarks: (68, 2) px in ``image``.
        size: crop side, px.

    Returns:
        ``(crop, landmarks, matrix)``: (size, size, 3) uint8 RGB; (68, 2) float32 px in the crop;
        (2, 3) float64 affine from image to crop px.
    """
    import cv2

    m = similarity_transform(landmarks[list(ALIGN_POINTS)], template68(size)[list(ALIGN_POINTS)])
    crop = cv2.warpAffine(
        image, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101
    )
    pts = landmarks @ m[:, :2].T + m[:, 2]
    return crop, pts.astype(np.float32), m


def list_photos(folder: str | Path) -> tuple[Path, ...]:
    """Returns the sorted image files of a background folder.

    Raises:
        InputError: the folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "background photo folder not found")
    photos = tuple(sorted(p for p in folder.rglob("*") if p.suffix.lower() in _PHOTO_SUFFIXES))
    if not photos:
        raise InputError(folder, f"no images ({', '.join(_PHOTO_SUFFIXES)}) in background folder")
    return photos


def draw_background(
    rng: np.random.Generator,
    kind: BackgroundKind,
    height: int,
    width: int,
    photos: tuple[Path, ...] = (),
) -> np.ndarray:
    """Returns a random (height, width, 3) uint8 RGB background.

    Args:
        rng: random source.
        kind: 'solid' colour, linear 'gradient' between two colours, smooth coloured 'noise'
            (value noise at a random scale), or a random crop of one of ``photos``.
        height: px.
        width: px.
        photos: image files for 'photos'.

    Raises:
        ConfigError: unknown kind, or 'photos' without photos.
        InputError: a photo cannot be read.
    """
    import cv2

    if kind == "solid":
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (height, width, 3)).copy()
    if kind == "gradient":
        c0, c1 = rng.uniform(0, 255, (2, 3))
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height).astype(np.float32)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return (c0 + t[..., None] * (c1 - c0)).astype(np.uint8)
    if kind == "noise":
        cells = int(rng.integers(2, 12))
        small = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == "photos":
        if not photos:
            raise ConfigError("background 'photos' needs a folder with images")
        path = photos[int(rng.integers(len(photos)))]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(path, "cannot read background image")
        h, w = bgr.shape[:2]
        side = min(h, w) * rng.uniform(0.5, 1.0)
        y0 = rng.uniform(0, h - side)
        x0 = rng.uniform(0, w - side)
        crop = bgr[int(y0) : int(y0 + side), int(x0) : int(x0 + side)]
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(crop[:, :, ::-1])
    raise ConfigError(f"unknown background kind '{kind}' (solid, gradient, noise, photos)")

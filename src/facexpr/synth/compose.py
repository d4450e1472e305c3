"""Image composition for synthetic faces: backgrounds (solid, gradient, noise, user photos).

Cropping uses the front-end's own alignment (:mod:`facexpr.faces.align`), so synthetic and real
crops are framed alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError

__all__ = ["BackgroundKind", "draw_background", "list_photos"]

BackgroundKind = Literal["solid", "gradient", "noise", "photos"]
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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

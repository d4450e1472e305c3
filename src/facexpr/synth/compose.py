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


def list_photos(folder: str | Path) -> tuple[Path, ...]:
    """Returns the sorted image files of a background folder, each checked from its header.

    Every file with an image suffix (:data:`facexpr.io.images.IMAGE_EXTENSIONS`, any case, in
    subfolders too) must be a photo :func:`facexpr.io.images.read_image` accepts: a regular file
    (never a FIFO or device), a readable image of 20-8000 px a side. Only headers are read here;
    a photo whose pixel data is damaged is reported when it is first drawn.

    Raises:
        InputError: the folder is missing or not a folder, holds no images, or one of them is not
            a usable photo (the message names it).
    """
    from facexpr.io.images import check_image, is_image_path

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            folder,
            "background photo folder not found"
            if not folder.exists()
            else "background photo folder is not a folder",
        )
    try:
        photos = tuple(sorted(p for p in folder.rglob("*") if is_image_path(p)))
    except OSError as e:
        raise InputError(folder, f"cannot list the background photo folder ({e})") from e
    if not photos:
        raise InputError(
            folder, "no images (.jpg, .jpeg, .png, .webp, .bmp, .tif) in background folder"
        )
    for p in photos:
        try:
            check_image(p)
        except InputError as e:
            raise InputError(
                e.path,
                f"{e.problem}; every image in the background folder {folder} must be a "
                "usable photo (remove or fix this one)",
            ) from None
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
        from facexpr.io.images import read_image

        path = photos[int(rng.integers(len(photos)))]
        try:
            rgb = read_image(path)  # bounded: sides checked from the header before decoding
        except InputError as e:
            raise InputError(e.path, f"cannot read background image: {e.problem}") from None
        h, w = rgb.shape[:2]
        side = min(h, w) * rng.uniform(0.5, 1.0)
        y0 = rng.uniform(0, h - side)
        x0 = rng.uniform(0, w - side)
        crop = rgb[int(y0) : int(y0 + side), int(x0) : int(x0 + side)]
        return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    raise ConfigError(f"unknown background kind '{kind}' (solid, gradient, noise, photos)")

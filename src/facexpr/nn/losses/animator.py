"""The animator's losses (FreeAvatar, arXiv:2409.13180, section 3.3), tensors only.

The weights the recipe puts on them follow the authors' released training configuration: rig x10,
image x1, expression consistency x0.2, symmetry x0.2.

- :func:`rig_l2`: mean squared error of predicted against known rig weights (synthetic actors).
- :func:`symmetry_loss`: the prediction for the mirrored actor must be the mirrored prediction
  (left/right shape pairs swapped). FreeAvatar compares a dedicated asymmetry embedding of the
  actor and of the render; we have no such network, so the mirror is taken on the rig.
- :func:`temporal_smoothness`: the mean squared second difference along time of a sequence of
  predictions (penalises jitter, not steady motion).
- :func:`image_l1`: L1 between the neural renders of the predicted and of the target rig.
- :func:`expression_consistency`: squared distance between the frozen encoder's embedding of the
  actor and of the neural render of the predicted rig (the perceptual loss).
"""

from __future__ import annotations

import torch

from facexpr.core.errors import ConfigError

__all__ = [
    "expression_consistency",
    "image_l1",
    "rig_l2",
    "symmetry_loss",
    "temporal_smoothness",
]


def rig_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns the mean squared error of (B, C) predicted and target rig weights."""
    if pred.shape != target.shape:
        raise ConfigError(f"rig_l2: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    return torch.mean((pred - target.to(pred.dtype)) ** 2)


def symmetry_loss(
    pred: torch.Tensor, pred_mirrored: torch.Tensor, mirror: torch.Tensor
) -> torch.Tensor:
    """Returns the mean squared gap between the mirrored actor's prediction and the mirror of the
    actor's prediction.

    Args:
        pred: (B, C) weights predicted for the actor.
        pred_mirrored: (B, C) weights predicted for the horizontally flipped actor.
        mirror: (C,) int64 permutation swapping each left shape with its right one.
    """
    if pred.shape != pred_mirrored.shape or mirror.shape != (pred.shape[-1],):
        raise ConfigError(
            f"symmetry_loss: shapes {tuple(pred.shape)}, {tuple(pred_mirrored.shape)} and a "
            f"mirror of {tuple(mirror.shape)} do not fit"
        )
    return torch.mean((pred_mirrored - pred[:, mirror]) ** 2)


def temporal_smoothness(seq: torch.Tensor) -> torch.Tensor:
    """Returns the mean squared second difference over time of (B, T, C) predictions (T >= 3).

    Zero for a constant or linearly changing sequence; frame-to-frame jitter raises it.
    """
    if seq.ndim != 3 or seq.shape[1] < 3:
        raise ConfigError(f"temporal_smoothness: need (B, T >= 3, C), got {tuple(seq.shape)}")
    d2 = seq[:, 2:] - 2 * seq[:, 1:-1] + seq[:, :-2]
    return torch.mean(d2**2)


def image_l1(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns the mean absolute difference of (B, 3, H, W) images in [0, 1]."""
    if render.shape != target.shape:
        raise ConfigError(
            f"image_l1: shapes differ, {tuple(render.shape)} vs {tuple(target.shape)}"
        )
    return torch.mean(torch.abs(render - target.to(render.dtype)))


def expression_consistency(actor: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
    """Returns the mean over the batch of the squared distance of (B, D) embeddings."""
    if actor.shape != rendered.shape:
        raise ConfigError(
            f"expression_consistency: shapes differ, {tuple(actor.shape)} vs "
            f"{tuple(rendered.shape)}"
        )
    return torch.mean(torch.sum((rendered - actor.to(rendered.dtype)) ** 2, dim=-1))

"""Losses and their metrics."""

from facexpr.nn.losses.heads import (
    ccc,
    masked_bce,
    masked_ccc_loss,
    masked_mse,
    masked_soft_ce,
)
from facexpr.nn.losses.triplet import (
    FEC_MARGINS,
    margins_for,
    triplet_accuracy,
    triplet_distances,
    triplet_loss,
)

__all__ = [
    "FEC_MARGINS",
    "ccc",
    "margins_for",
    "masked_bce",
    "masked_ccc_loss",
    "masked_mse",
    "masked_soft_ce",
    "triplet_accuracy",
    "triplet_distances",
    "triplet_loss",
]

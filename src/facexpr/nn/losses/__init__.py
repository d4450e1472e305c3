"""Losses and their metrics."""

from facexpr.nn.losses.triplet import (
    FEC_MARGINS,
    margins_for,
    triplet_accuracy,
    triplet_distances,
    triplet_loss,
)

__all__ = ["FEC_MARGINS", "margins_for", "triplet_accuracy", "triplet_distances", "triplet_loss"]

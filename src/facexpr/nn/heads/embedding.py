"""The expression embedding head: encoder features -> a compact L2-normalised vector.

As FECNet (Vemulapalli and Agarwal 2019, "A Compact Embedding for Facial Expression Similarity",
arXiv:1811.11283): a hidden layer, then a 16-d output on the unit sphere, so squared Euclidean
distances lie in [0, 4] and triplet margins (0.1, 0.2) mean the same for every model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facexpr.core.errors import ConfigError

__all__ = ["EmbeddingHead"]


class EmbeddingHead(nn.Module):
    """Maps (B, in_dim) features to (B, dim) unit-length embeddings.

    Args:
        in_dim: feature width of the encoder.
        dim: embedding width (16 as FECNet).
        hidden_dim: width of the hidden layer (GELU); ``None`` for a single linear layer.
    """

    def __init__(self, in_dim: int, dim: int = 16, hidden_dim: int | None = 512) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("dim", dim), ("hidden_dim", hidden_dim or 1)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"EmbeddingHead.{name} must be an integer >= 1, got {v!r}")
        self.in_dim = in_dim
        self.dim = dim
        self.hidden_dim = hidden_dim
        # A LayerNorm first (MAE's fc_norm): pooled features of a pretrained encoder share a large
        # common offset, which would leave every embedding nearly the same after normalising.
        if hidden_dim is None:
            self.net: nn.Module = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim))
        else:
            self.net = nn.Sequential(
                nn.LayerNorm(in_dim),
                nn.Linear(in_dim, hidden_dim),
                nn.GELU(),
                nn.Linear(hidden_dim, dim),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, dim) float32 embeddings of unit L2 norm of (B, in_dim) features."""
        return F.normalize(self.net(x), dim=-1)

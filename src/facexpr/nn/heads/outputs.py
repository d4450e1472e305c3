"""Output heads of the analysis model: Mixture-of-Experts linear layers and the Local AU Features
Module.

- :class:`MoELinear`: ``experts`` linear maps mixed by a softmax gate on the same input, Norface's
  Mixture-of-Experts output layer (Liu et al. 2024, arXiv:2407.15617); one expert is a plain
  linear layer.
- :class:`LocalAUFeatures`: the Local AU Features Module (arXiv:2210.15160): from the encoder's
  patch tokens an AU feature-map extractor gives one feature map per AU and an AU mask extractor
  one spatial mask per AU; the mask-weighted mean of each map feeds that AU's occurrence
  classifier and its intensity regressor (0-5).
"""

from __future__ import annotations

import torch
from torch import nn

from facexpr.core.errors import ConfigError

__all__ = ["LocalAUFeatures", "MoELinear"]


def _positive(owner: str, **values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{owner}.{name} must be an integer >= 1, got {v!r}")


class MoELinear(nn.Module):
    """``y = sum_e softmax(gate(x))_e * (W_e x + b_e)``; one expert is ``nn.Linear``.

    Args:
        in_dim: input width.
        out_dim: output width.
        experts: number of experts (1: a plain linear layer, no gate).
    """

    def __init__(self, in_dim: int, out_dim: int, experts: int = 1) -> None:
        super().__init__()
        _positive("MoELinear", in_dim=in_dim, out_dim=out_dim, experts=experts)
        self.in_dim, self.out_dim, self.experts = in_dim, out_dim, experts
        self.proj = nn.Linear(in_dim, out_dim * experts)
        self.gate = nn.Linear(in_dim, experts) if experts > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (..., out_dim) of (..., in_dim)."""
        y = self.proj(x)
        if self.gate is None:
            return y
        w = torch.softmax(self.gate(x), dim=-1)  # (..., E)
        y = y.unflatten(-1, (self.experts, self.out_dim))  # (..., E, out)
        return (w.unsqueeze(-1) * y).sum(-2)


class LocalAUFeatures(nn.Module):
    """AU occurrence logits and intensities from patch tokens, one local feature per AU.

    For each AU k: a feature map ``F_k = W_k t_n`` over the patch tokens ``t_n`` (the AU feature
    map extractor, a 1x1 convolution over the token grid) and a mask ``M_k(n)`` in (0, 1) (the AU
    mask extractor, a small MLP per token then a sigmoid); the AU's local feature is the
    mask-weighted mean ``sum_n M_k(n) F_k(n) / sum_n M_k(n)``, read by its own occurrence
    classifier and intensity regressor. The masks show where the module looks for each AU
    (:meth:`masks`).

    Args:
        in_dim: token width.
        n_aus: number of AUs.
        au_dim: width of each AU's local feature.
        experts: Mixture-of-Experts size of the two per-AU read-outs (1: plain).
    """

    def __init__(self, in_dim: int, n_aus: int, au_dim: int = 32, experts: int = 1) -> None:
        super().__init__()
        _positive("LocalAUFeatures", in_dim=in_dim, n_aus=n_aus, au_dim=au_dim, experts=experts)
        self.n_aus, self.au_dim, self.experts = n_aus, au_dim, experts
        self.norm = nn.LayerNorm(in_dim)
        self.feature_maps = nn.Linear(in_dim, n_aus * au_dim)
        self.mask_net = nn.Sequential(
            nn.Linear(in_dim, in_dim // 2), nn.GELU(), nn.Linear(in_dim // 2, n_aus)
        )
        # Per-AU read-outs (grouped: AU k's weights see only AU k's feature), E experts each.
        self.occ_w = nn.Parameter(torch.randn(experts, n_aus, au_dim) * au_dim**-0.5)
        self.int_w = nn.Parameter(torch.randn(experts, n_aus, au_dim) * au_dim**-0.5)
        self.occ_b = nn.Parameter(torch.zeros(experts, n_aus))
        self.int_b = nn.Parameter(torch.zeros(experts, n_aus))
        self.gate = nn.Linear(in_dim, experts) if experts > 1 else None
        # Occurrence thresholds on the probability, one per AU: 0.5 until calibrated on held-out
        # faces (scripts/ship_analysis_weights.py), saved with the weights.
        self.register_buffer("thresholds", torch.full((n_aus,), 0.5))

    def masks(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns (B, n_aus, N) masks in (0, 1) of (B, N, D) patch tokens."""
        return torch.sigmoid(self.mask_net(self.norm(tokens))).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(logits, intensity)``, each (B, n_aus): occurrence logits and 0-5
        intensities of (B, N, D) patch tokens (no class token)."""
        t = self.norm(tokens)
        b, n, _ = t.shape
        maps = self.feature_maps(t).view(b, n, self.n_aus, self.au_dim)  # (B, N, K, c)
        m = torch.sigmoid(self.mask_net(t))  # (B, N, K)
        local = (m.unsqueeze(-1) * maps).sum(1) / (m.sum(1).unsqueeze(-1) + 1e-6)  # (B, K, c)
        occ = torch.einsum("bkc,ekc->bek", local, self.occ_w) + self.occ_b  # (B, E, K)
        inten = torch.einsum("bkc,ekc->bek", local, self.int_w) + self.int_b
        if self.gate is None:
            occ, inten = occ[:, 0], inten[:, 0]
        else:
            w = torch.softmax(self.gate(t.mean(1)), dim=-1).unsqueeze(-1)  # (B, E, 1)
            occ, inten = (w * occ).sum(1), (w * inten).sum(1)
        return occ, 5.0 * torch.sigmoid(inten)

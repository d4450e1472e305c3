"""The symmetric triplet loss of FEC (Vemulapalli and Agarwal 2019, "A Compact Embedding for
Facial Expression Similarity", arXiv:1811.11283), with margins per triplet type.

A triplet (anchor, positive, negative) says the anchor and the positive look most alike; the
negative is the odd one out. FEC's loss asks for the anchor-positive distance to be smaller by a
margin than **both** distances to the negative (from the anchor and from the positive), since
either image of the similar pair is the anchor by convention only:

    l = max(0, d(a, p) - d(a, n) + m) + max(0, d(a, p) - d(p, n) + m)

with squared Euclidean distances of unit-length embeddings. FEC uses m = 0.1 for one- and
two-class triplets and 0.2 for three-class ones (:data:`FEC_MARGINS`); each triplet's margin is
one value of a (B,) tensor (:func:`margins_for`), so types with different margins mix in a batch.
A triplet counts as right (:func:`triplet_accuracy`) when d(a, p) is below both other distances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from facexpr.core.errors import ConfigError

__all__ = ["FEC_MARGINS", "margins_for", "triplet_accuracy", "triplet_distances", "triplet_loss"]

#: FEC's margins per triplet type (the FEC annotation CSV's type names, lower-cased).
FEC_MARGINS: dict[str, float] = {"one_class": 0.1, "two_class": 0.1, "three_class": 0.2}


def _check(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> None:
    if anchor.ndim != 2 or anchor.shape != positive.shape or anchor.shape != negative.shape:
        raise ConfigError(
            "triplet embeddings must be three (B, D) tensors of one shape, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )


def triplet_distances(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns the (B,) squared Euclidean distances d(a, p), d(a, n), d(p, n) of (B, D) tensors.

    Raises:
        ConfigError: the three tensors are not (B, D) of one shape.
    """
    _check(anchor, positive, negative)
    d_ap = (anchor - positive).pow(2).sum(dim=1)
    d_an = (anchor - negative).pow(2).sum(dim=1)
    d_pn = (positive - negative).pow(2).sum(dim=1)
    return d_ap, d_an, d_pn


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float | torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """Returns FEC's symmetric triplet loss.

    Args:
        anchor, positive, negative: (B, D) embeddings (unit length, as ``EmbeddingHead``'s).
        margin: one margin for all, or a (B,) tensor of per-triplet margins.
        reduction: "mean" (scalar), "sum" (scalar) or "none" ((B,) per triplet).

    Raises:
        ConfigError: shapes that do not match, a negative margin or an unknown reduction.
    """
    d_ap, d_an, d_pn = triplet_distances(anchor, positive, negative)
    m = torch.as_tensor(margin, dtype=d_ap.dtype, device=d_ap.device)
    if m.ndim not in (0, 1) or (m.ndim == 1 and m.shape[0] != d_ap.shape[0]):
        raise ConfigError(
            f"margin must be a number or a ({d_ap.shape[0]},) tensor, got shape {tuple(m.shape)}"
        )
    if bool((m < 0).any()):
        raise ConfigError("triplet margins must be >= 0")
    per = torch.relu(d_ap - d_an + m) + torch.relu(d_ap - d_pn + m)
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    if reduction == "none":
        return per
    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def triplet_accuracy(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> torch.Tensor:
    """Returns the share in [0, 1] (a scalar float tensor) of triplets whose anchor-positive
    distance is below both the anchor-negative and the positive-negative distance (FEC's
    triplet prediction accuracy)."""
    d_ap, d_an, d_pn = triplet_distances(anchor, positive, negative)
    return ((d_ap < d_an) & (d_ap < d_pn)).float().mean()


def margins_for(
    types: Sequence[str],
    table: Mapping[str, float] = FEC_MARGINS,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Returns the (B,) float32 margins of triplets of the given type names.

    Raises:
        ConfigError: a type has no margin in ``table`` (naming it and the known ones).
    """
    out = []
    for t in types:
        if t not in table:
            raise ConfigError(
                f"triplet type '{t}' has no margin (known: {', '.join(sorted(table))})"
            )
        out.append(float(table[t]))
    return torch.tensor(out, dtype=torch.float32, device=device)

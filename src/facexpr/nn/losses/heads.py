"""Masked losses of the analysis heads: a missing label never counts as a zero.

Every loss takes a (B, K) bool ``mask`` (True where the label exists) and averages over the
labelled entries only; with none labelled it returns a zero that still carries the graph (so every
head gets a gradient, zero, in every batch, which DDP needs). Masked entries are selected out
(``torch.where``), never multiplied by zero: a target there may hold anything, NaN included,
without changing the loss or its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ccc", "masked_bce", "masked_ccc_loss", "masked_mse", "masked_soft_ce"]


def _zero(x: torch.Tensor) -> torch.Tensor:
    return 0.0 * x.sum()


def masked_soft_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean cross-entropy ``-sum_k p_k log q_k`` over rows with a label.

    ``mask`` (B, K) marks the classes a row's source can name; the prediction is renormalised over
    them (FER2013 names no contempt) and rows with no class marked, or no mass on a marked class,
    are skipped. ``target`` rows are distributions over the marked classes (they are
    renormalised too).
    """
    t = torch.where(mask, target, torch.zeros_like(target))
    # A row counts when it names a class and puts mass on one (an all-zero row is no label).
    rows = mask.any(1) & (t.sum(1) > 0)
    if not bool(rows.any()):
        return _zero(logits)
    m = mask[rows]
    t = t[rows]
    t = t / t.sum(1, keepdim=True)
    logq = torch.log_softmax(logits[rows].masked_fill(~m, float("-inf")), dim=1)
    return -torch.where(m, t * logq, torch.zeros_like(t)).sum(1).mean()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean squared error over the labelled entries."""
    n = mask.sum()
    if int(n) == 0:
        return _zero(pred)
    t = torch.where(mask, target, torch.zeros_like(target))
    return torch.where(mask, (pred - t).pow(2), torch.zeros_like(pred)).sum() / n


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               pos_weight: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Returns the mean binary cross-entropy with logits over the labelled entries
    (``pos_weight`` (K,) up-weights the rare positives of each column)."""
    n = mask.sum()
    if int(n) == 0:
        return _zero(logits)
    t = torch.where(mask, target, torch.zeros_like(target))
    per = F.binary_cross_entropy_with_logits(logits, t, reduction="none", pos_weight=pos_weight)
    return torch.where(mask, per, torch.zeros_like(per)).sum() / n


def ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns Lin's concordance correlation coefficient of two (N,) tensors:
    ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)`` (population moments)."""
    mp, mt = pred.mean(), target.mean()
    vp, vt = pred.var(unbiased=False), target.var(unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean()
    return 2 * cov / (vp + vt + (mp - mt).pow(2) + 1e-8)


def masked_ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean over columns of ``1 - CCC`` on the labelled rows of each column (columns
    with fewer than 2 labelled rows are skipped), the valence-arousal loss of the ABAW
    challenges."""
    losses = []
    for k in range(pred.shape[1]):
        m = mask[:, k]
        if int(m.sum()) >= 2:
            losses.append(1.0 - ccc(pred[m, k], target[m, k]))
    if not losses:
        return _zero(pred)
    return torch.stack(losses).mean()

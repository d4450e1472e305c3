"""Evaluation metrics of expression measurement, as papers report them (numpy only).

Every metric takes an optional boolean ``mask`` (True = the label is valid): an invalid label
(BP4D's 9, Aff-Wild2's -1 / -5, AffectNet's -2) is left out, never counted as 0.

- Action units (occurrence): per-AU :func:`f1_score` and :func:`roc_auc` (binary, positive = 1);
  :func:`per_column` applies either to (N, K) arrays, one value per AU.
- Action units (intensity 0-5): :func:`icc_3_1` (Shrout & Fleiss 1979, ICC(3,1): two-way mixed,
  consistency, single rater; prediction and truth are the two "judges"), :func:`pcc`, :func:`mae`.
- Emotion classes: :func:`accuracy`, :func:`macro_f1`.
- Valence / arousal: :func:`ccc` (Lin 1989, the ABAW and AffectNet metric), :func:`pcc`.
- Protocol reports: :func:`summarize_runs` gives the mean and spread of a metric over folds and
  seeds (fold choice alone moves BP4D+ mean F1 by about 0.065, arXiv:2604.02162).

Undefined values (F1 of an AU that neither occurs nor is predicted, AUC with one class only,
correlations of a constant) are NaN, and means over AUs skip them (``nanmean``), as a table shows
"-" for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facexpr.core.errors import ConfigError

__all__ = [
    "RunSummary",
    "accuracy",
    "ccc",
    "f1_score",
    "icc_3_1",
    "macro_f1",
    "mae",
    "pcc",
    "per_column",
    "roc_auc",
    "summarize_runs",
]


def _pair(
    a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float], mask: object, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the valid entries of two equally shaped 1-D arrays as float64."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ConfigError(f"{name}: the two arrays differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m = np.asarray(mask, dtype=bool).reshape(-1)
        if m.shape != x.shape:
            raise ConfigError(f"{name}: mask has {m.size} entries for {x.size} values")
        keep &= m
    return x[keep], y[keep]


def f1_score(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns the binary F1 of the positive class (1): 2 TP / (2 TP + FP + FN).

    Args:
        y_true: (N,) 0/1 labels.
        y_pred: (N,) 0/1 predictions (threshold scores first).
        mask: (N,) bool, True where the label is valid.

    Returns:
        F1 in [0, 1]; NaN when there is no positive label and no positive prediction.
    """
    t, p = _pair(y_true, y_pred, mask, "f1_score")
    tp = float(np.sum((t == 1) & (p == 1)))
    fp = float(np.sum((t != 1) & (p == 1)))
    fn = float(np.sum((t == 1) & (p != 1)))
    denom = 2 * tp + fp + fn
    return float("nan") if denom == 0 else 2 * tp / denom


def roc_auc(y_true: np.ndarray, score: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns the area under the ROC curve of ``score`` for the positive class (1).

    Computed as the Mann-Whitney U statistic over average ranks, so tied scores count one half.

    Returns:
        AUC in [0, 1]; NaN when the valid labels hold only one class.
    """
    t, s = _pair(y_true, score, mask, "roc_auc")
    pos = t == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Returns 1-based ranks of ``x`` with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    xs = x[order]
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def icc_3_1(
    y_true: np.ndarray, y_pred: np.ndarray | None = None, mask: np.ndarray | None = None
) -> float:
    """Returns ICC(3,1) of Shrout & Fleiss (1979): two-way mixed model, consistency, one rater.

    ``ICC(3,1) = (BMS - EMS) / (BMS + (k - 1) EMS)`` with BMS the between-targets mean square and
    EMS the residual mean square of the targets x judges ANOVA.

    Args:
        y_true: (N,) truth, with ``y_pred`` the (N,) prediction (k = 2 judges, the AU intensity
            use); or, with ``y_pred`` None, an (N, k) table of N targets rated by k judges.
        y_pred: see ``y_true``.
        mask: (N,) bool, rows to keep.

    Returns:
        ICC in [-1, 1] (can be below 0); NaN for fewer than 2 targets or no variance at all.
    """
    if y_pred is None:
        table = np.asarray(y_true, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] < 2:
            raise ConfigError(f"icc_3_1: expected an (N, k >= 2) table, got shape {table.shape}")
        if mask is not None:
            table = table[np.asarray(mask, dtype=bool).reshape(-1)]
        table = table[np.all(np.isfinite(table), axis=1)]
    else:
        t, p = _pair(y_true, y_pred, mask, "icc_3_1")
        table = np.stack([t, p], axis=1)
    n, k = table.shape
    if n < 2:
        return float("nan")
    grand = table.mean()
    ss_rows = k * float(np.sum((table.mean(axis=1) - grand) ** 2))
    ss_cols = n * float(np.sum((table.mean(axis=0) - grand) ** 2))
    ss_err = float(np.sum((table - grand) ** 2)) - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems
    return float("nan") if denom <= 0 else (bms - ems) / denom


def pcc(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns Pearson's correlation; NaN when fewer than 2 values or either is constant."""
    a, b = _pair(x, y, mask, "pcc")
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    denom = float(np.sqrt(np.sum(da * da) * np.sum(db * db)))
    return float("nan") if denom == 0 else float(np.sum(da * db)) / denom


def mae(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns the mean absolute error; NaN with no valid value."""
    a, b = _pair(y_true, y_pred, mask, "mae")
    return float("nan") if a.size == 0 else float(np.mean(np.abs(a - b)))


def ccc(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns Lin's concordance correlation coefficient.

    ``CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)`` with population (1/N)
    moments, as Lin (1989) and the ABAW challenges define it.

    Returns:
        CCC in [-1, 1]; NaN with fewer than 2 values or when both are the same constant.
    """
    a, b = _pair(y_true, y_pred, mask, "ccc")
    if a.size < 2:
        return float("nan")
    ma, mb = a.mean(), b.mean()
    cov = float(np.mean((a - ma) * (b - mb)))
    denom = float(a.var() + b.var() + (ma - mb) ** 2)
    return float("nan") if denom == 0 else 2 * cov / denom


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Returns the share of valid labels predicted exactly; NaN with no valid label."""
    a, b = _pair(y_true, y_pred, mask, "accuracy")
    return float("nan") if a.size == 0 else float(np.mean(a == b))


def macro_f1(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    mask: np.ndarray | None = None,
    labels: Sequence[int] | None = None,
) -> float:
    """Returns the unweighted mean over classes of the one-vs-rest F1.

    Args:
        y_true: (N,) class indices.
        y_pred: (N,) predicted class indices.
        mask: (N,) bool, True where the label is valid.
        labels: the classes to average over; default the classes that occur in the valid labels
            or predictions (scikit-learn's default), a class predicted but never true scoring 0.

    Returns:
        Macro F1 in [0, 1]; NaN with no valid label.
    """
    a, b = _pair(y_true, y_pred, mask, "macro_f1")
    if a.size == 0:
        return float("nan")
    classes = sorted(set(a.tolist()) | set(b.tolist())) if labels is None else list(labels)
    scores = []
    for c in classes:
        f = f1_score(a == c, b == c)
        scores.append(0.0 if np.isnan(f) else f)
    return float(np.mean(scores)) if scores else float("nan")


def per_column(
    metric: Callable[..., float],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Returns (K,) float64: ``metric`` of each column of (N, K) labels and predictions.

    ``mask`` is (N, K) (per label) or (N,) (per sample) bool.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 2 or t.shape != p.shape:
        raise ConfigError(f"per_column: expected two (N, K) arrays, got {t.shape} and {p.shape}")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if m is not None and m.ndim == 1:
        m = np.repeat(m[:, None], t.shape[1], axis=1)
    if m is not None and m.shape != t.shape:
        raise ConfigError(f"per_column: mask shape {m.shape} does not match {t.shape}")
    return np.array(
        [metric(t[:, j], p[:, j], None if m is None else m[:, j]) for j in range(t.shape[1])],
        dtype=np.float64,
    )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Mean and spread of one metric over protocol runs (folds x seeds).

    Attributes:
        mean: mean over all runs.
        std: sample standard deviation over all runs (0 for one run).
        fold_std: standard deviation of the per-fold means (how much the fold choice moves it).
        seed_std: mean over folds of the standard deviation over seeds within the fold (0 with
            one seed a fold).
        min: smallest run value.
        max: largest run value.
        n_runs: runs counted (NaN runs left out).
        folds: fold -> mean over its seeds.
    """

    mean: float
    std: float
    fold_std: float
    seed_std: float
    min: float
    max: float
    n_runs: int
    folds: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "std": self.std,
            "fold_std": self.fold_std,
            "seed_std": self.seed_std,
            "min": self.min,
            "max": self.max,
            "n_runs": self.n_runs,
            "folds": dict(self.folds),
        }


def _std(v: Sequence[float]) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def summarize_runs(runs: Mapping[tuple[str, int], float]) -> RunSummary:
    """Returns the mean and spread of a metric over runs keyed by (fold, seed).

    Args:
        runs: (fold name, seed) -> metric value; NaN values are left out.

    Raises:
        ConfigError: no finite value.
    """
    vals = {k: float(v) for k, v in runs.items() if np.isfinite(v)}
    if not vals:
        raise ConfigError("summarize_runs: no finite metric value among the runs")
    by_fold: dict[str, list[float]] = {}
    for (fold, _seed), v in sorted(vals.items()):
        by_fold.setdefault(str(fold), []).append(v)
    fold_means = {f: float(np.mean(v)) for f, v in by_fold.items()}
    all_v = list(vals.values())
    return RunSummary(
        mean=float(np.mean(all_v)),
        std=_std(all_v),
        fold_std=_std(list(fold_means.values())),
        seed_std=float(np.mean([_std(v) for v in by_fold.values()])),
        min=float(np.min(all_v)),
        max=float(np.max(all_v)),
        n_runs=len(all_v),
        folds=fold_means,
    )

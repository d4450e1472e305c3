"""Evaluation figures of the analysis heads on one source's held-out faces.

Inputs, one row a face: the stacked model outputs under ``pred_<key>`` (``pred_emotion`` logits,
``pred_va``, ``pred_blendshapes``, ``pred_au_logits``, ``pred_au_intensity``) and the targets with
their masks (``emotion``, ``emotion_mask``, ...). Only heads with labelled rows are scored.
"""

from __future__ import annotations

import numpy as np

__all__ = ["head_metrics", "mean_r"]


def mean_r(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, min_std: float = 1e-3) -> float:
    """Returns the mean Pearson r over the columns that move (target std > ``min_std`` on their
    labelled rows, at least 3 of them; NaN when none does). A constant prediction of a moving
    column counts as r = 0."""
    rs = []
    for k in range(target.shape[1]):
        m = mask[:, k]
        if m.sum() < 3 or target[m, k].std() <= min_std:
            continue
        if pred[m, k].std() <= 1e-12:
            rs.append(0.0)
            continue
        rs.append(float(np.corrcoef(pred[m, k], target[m, k])[0, 1]))
    return float(np.mean(rs)) if rs else float("nan")


def _ccc(p: np.ndarray, t: np.ndarray) -> float:
    mp, mt = p.mean(), t.mean()
    return float(2 * ((p - mp) * (t - mt)).mean() / (p.var() + t.var() + (mp - mt) ** 2 + 1e-12))


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    tp = float((pred & true).sum())
    denom = float(pred.sum() + true.sum())
    return 2 * tp / denom if denom else float("nan")


def head_metrics(a: dict[str, np.ndarray], au_threshold: float = 1.0) -> dict[str, float]:
    """Returns the figures of one source: ``emotion_acc`` (argmax against the majority label, on
    rows labelled over all 8 classes), ``va_ccc`` (mean of valence and arousal CCC),
    ``blendshapes_r`` (mean r over moving channels), ``au_f1`` (mean F1 over AUs with
    positives, occurrence at logit > 0 against intensity >= ``au_threshold``) and ``au_r``
    (mean intensity r)."""
    out: dict[str, float] = {}
    if "pred_emotion" in a:
        rows = a["emotion_mask"].all(1)
        if rows.any():
            out["emotion_acc"] = float(
                (a["pred_emotion"][rows].argmax(1) == a["emotion"][rows].argmax(1)).mean()
            )
    if "pred_va" in a:
        rows = a["va_mask"].all(1)
        if rows.sum() >= 3:
            out["va_ccc"] = float(
                np.mean([_ccc(a["pred_va"][rows, k], a["va"][rows, k]) for k in range(2)])
            )
    if "pred_blendshapes" in a and a["blendshapes_mask"].any():
        out["blendshapes_r"] = mean_r(a["pred_blendshapes"], a["blendshapes"],
                                      a["blendshapes_mask"])  # fmt: skip
    if "pred_au_logits" in a and a["aus_mask"].any():
        m = a["aus_mask"]
        true = a["aus"] >= au_threshold
        pred = a["pred_au_logits"] > 0
        f1s = [_f1(pred[m[:, k], k], true[m[:, k], k]) for k in range(true.shape[1])
               if true[m[:, k], k].any()]  # fmt: skip
        if f1s:
            out["au_f1"] = float(np.nanmean(f1s))
        out["au_r"] = mean_r(a["pred_au_intensity"], a["aus"], m, min_std=0.05)
    return out

"""Evaluation figures of the analysis heads against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.train.head_metrics import head_metrics, mean_r


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    xd, yd = x - x.mean(), y - y.mean()
    return float((xd * yd).sum() / np.sqrt((xd**2).sum() * (yd**2).sum()))


def test_mean_r_skips_still_columns_and_masked_rows():
    target = np.array([[0.1, 0.5, 0.0], [0.4, 0.5, 0.9], [0.8, 0.5, 0.2], [0.3, 0.5, 0.6]])
    pred = np.array([[0.2, 0.1, 0.3], [0.3, 0.9, 0.3], [0.9, 0.4, 0.3], [0.1, 0.2, 0.3]])
    mask = np.ones_like(target, bool)
    mask[3, 0] = False
    # Column 0: r on its 3 labelled rows; column 1 does not move (skipped); column 2 moves but
    # the prediction is constant: r = 0.
    want = (_pearson([0.2, 0.3, 0.9], [0.1, 0.4, 0.8]) + 0.0) / 2
    assert mean_r(pred, target, mask) == pytest.approx(want)
    assert np.isnan(mean_r(pred[:, 1:2], target[:, 1:2], mask[:, 1:2]))
    few = mask.copy()
    few[1:, 2] = False  # one labelled row: too few for r, the column is skipped
    assert np.isnan(mean_r(pred[:, 2:], target[:, 2:], few[:, 2:]))
    assert mean_r(pred[:, 2:], target[:, 2:], mask[:, 2:]) == 0.0


def _arrays():
    emo = np.zeros((4, 8), np.float32)
    emo[0, 1] = emo[1, 2] = emo[2, 1] = 1.0
    emo[3, 0] = 0.6
    emo[3, 3] = 0.4
    emo_mask = np.ones((4, 8), bool)
    emo_mask[2, 7] = False  # a FER2013-teacher row: no accuracy against a majority label
    pred_emo = np.zeros((4, 8), np.float32)
    pred_emo[0, 1] = pred_emo[1, 5] = pred_emo[2, 3] = pred_emo[3, 0] = 3.0
    va = np.array([[0.1, 0.2], [0.5, -0.1], [-0.3, 0.4], [0.2, 0.0]], np.float32)
    pred_va = np.array([[0.0, 0.3], [0.4, 0.0], [-0.2, 0.2], [0.3, 0.1]], np.float32)
    aus = np.array([[0.0, 2.0], [1.5, 0.0], [3.0, 0.5], [0.2, 4.0]], np.float32)
    pred_logits = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [1.0, 1.0]], np.float32)
    pred_int = np.array([[0.1, 1.5], [1.0, 0.3], [2.0, 0.2], [0.5, 3.0]], np.float32)
    return {
        "pred_emotion": pred_emo, "emotion": emo, "emotion_mask": emo_mask,
        "pred_va": pred_va, "va": va, "va_mask": np.ones((4, 2), bool),
        "pred_au_logits": pred_logits, "pred_au_intensity": pred_int, "aus": aus,
        "aus_mask": np.ones((4, 2), bool),
        "pred_blendshapes": np.zeros((4, 52), np.float32), "blendshapes": np.zeros((4, 52)),
        "blendshapes_mask": np.zeros((4, 52), bool),
    }  # fmt: skip


def _ccc(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(
        2
        * ((x - x.mean()) * (y - y.mean())).mean()
        / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    )


def test_head_metrics_by_hand():
    a = _arrays()
    got = head_metrics(a, au_threshold=1.0)
    # Rows 0, 1, 3 are labelled over all 8: right on 0 and 3, wrong on 1.
    assert got["emotion_acc"] == pytest.approx(2 / 3)
    want_va = _ccc(a["pred_va"][:, 0], a["va"][:, 0]) + _ccc(a["pred_va"][:, 1], a["va"][:, 1])
    assert got["va_ccc"] == pytest.approx(want_va / 2, rel=1e-5)
    # AU 0: true (>= 1) on rows 1, 2; predicted on rows 0, 1, 3: tp 1, F1 = 2 / (3 + 2).
    # AU 1: true on rows 0, 3; predicted on rows 0, 3: F1 = 1.
    assert got["au_f1"] == pytest.approx((2 / 5 + 1.0) / 2)
    r0 = _pearson(a["pred_au_intensity"][:, 0], a["aus"][:, 0])
    r1 = _pearson(a["pred_au_intensity"][:, 1], a["aus"][:, 1])
    assert got["au_r"] == pytest.approx((r0 + r1) / 2, rel=1e-5)
    assert "blendshapes_r" not in got  # no labelled blendshape: not scored


def test_a_head_without_labelled_rows_is_not_scored():
    a = _arrays()
    a["emotion_mask"][:] = False
    a["aus_mask"][:] = False
    got = head_metrics(a)
    assert "emotion_acc" not in got
    assert "au_f1" not in got
    assert "au_r" not in got
    assert "va_ccc" in got

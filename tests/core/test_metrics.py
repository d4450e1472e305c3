"""Metrics against textbook and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.core.metrics import (
    accuracy,
    ccc,
    f1_score,
    icc_3_1,
    macro_f1,
    mae,
    pcc,
    per_column,
    roc_auc,
    summarize_runs,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their Table 4 gives
# ICC(3,1) = .71 (exactly 0.7148: BMS 11.24, EMS 1.02).
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=np.float64,
)


def test_icc_3_1_matches_shrout_fleiss_table() -> None:
    assert icc_3_1(SHROUT_FLEISS) == pytest.approx(0.7148, abs=5e-4)


def test_icc_3_1_of_two_raters_and_masks() -> None:
    t = np.array([0.0, 1, 2, 3, 4, 5])
    # Consistency ICC ignores a constant offset between the raters.
    assert icc_3_1(t, t + 1.0) == pytest.approx(1.0)
    # By hand: n=3, k=2, rows (0,1) (2,1) (4,5), grand mean 13/6: SS_rows = 52/3, SS_cols = 1/6,
    # SS_total = 113/6, so BMS = 26/3 and EMS = (4/3) / 2 = 2/3: ICC = (24/3) / (28/3) = 6/7.
    assert icc_3_1([0, 2, 4], [1, 1, 5]) == pytest.approx(6 / 7)
    bad = np.array([0, 2, 4, 9])
    assert icc_3_1(bad, [1, 1, 5, -9], mask=[1, 1, 1, 0]) == pytest.approx(6 / 7)


def test_icc_rejects_a_single_column() -> None:
    with pytest.raises(ConfigError, match=r"icc_3_1: expected an \(N, k >= 2\) table"):
        icc_3_1(np.ones((5, 1)))


def test_ccc_hand_example() -> None:
    # x = 1..5, y = 2,2,3,5,4: means 3 and 3.2, var x 2, var y 1.36, cov 1.4 (1/N moments):
    # CCC = 2 * 1.4 / (2 + 1.36 + 0.04) = 14/17.
    assert ccc([1, 2, 3, 4, 5], [2, 2, 3, 5, 4]) == pytest.approx(14 / 17)
    # A shift lowers CCC but not PCC.
    x = np.array([1.0, 2, 3, 4])
    assert pcc(x, x + 1) == pytest.approx(1.0)
    assert ccc(x, x + 1) == pytest.approx(2 * 1.25 / (2.5 + 1))


def test_f1_and_auc_by_hand() -> None:
    t = [1, 1, 0, 0, 1, 0]
    p = [1, 0, 1, 0, 1, 0]  # TP 2, FP 1, FN 1 -> F1 = 4 / 6
    assert f1_score(t, p) == pytest.approx(4 / 6)
    assert np.isnan(f1_score([0, 0], [0, 0]))
    # The classic example: one of the four positive-negative pairs is ranked wrongly.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_masked_labels_are_left_out_not_zero() -> None:
    t = np.array([1, 1, 9, 9])  # 9: BP4D's "unknown"
    p = np.array([1, 1, 1, 1])
    mask = t != 9
    assert f1_score(t, p, mask) == pytest.approx(1.0)
    # Had the unknowns been turned into 0, F1 would be 2*2 / (2*2 + 2) = 2/3.
    assert f1_score(np.where(mask, t, 0), p) == pytest.approx(2 / 3)


def test_per_column_f1() -> None:
    t = np.array([[1, 0], [1, 1], [0, 1], [0, -1]])
    p = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    f = per_column(f1_score, t, p, mask=t >= 0)
    assert f[0] == pytest.approx(2 / 4)  # TP 1, FP 1, FN 1
    assert f[1] == pytest.approx(2 / 3)  # TP 1, FN 1; row 4 masked
    with pytest.raises(ConfigError, match="per_column: expected two"):
        per_column(f1_score, t, p[:, :1])


def test_accuracy_macro_f1_mae() -> None:
    t = [0, 0, 1, 2, 2, 2]
    p = [0, 1, 1, 2, 2, 0]
    assert accuracy(t, p) == pytest.approx(4 / 6)
    # class 0: TP1 FP1 FN1 -> 1/2; class 1: TP1 FP1 -> 2/3; class 2: TP2 FN1 -> 4/5
    assert macro_f1(t, p) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    # With a class that is neither true nor predicted listed, it scores 0.
    assert macro_f1(t, p, labels=[0, 1, 2, 3]) == pytest.approx((0.5 + 2 / 3 + 0.8) / 4)
    assert mae([0, 1, 2], [1, 1, 4]) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="mae: the two arrays differ in length"):
        mae([0, 1], [0])
    with pytest.raises(ConfigError, match="accuracy: mask has 1 entries for 2 values"):
        accuracy([0, 1], [0, 1], mask=[True])


def test_summarize_runs_over_folds_and_seeds() -> None:
    runs = {("1", 0): 0.5, ("1", 1): 0.7, ("2", 0): 0.6, ("2", 1): 0.6, ("3", 0): float("nan")}
    s = summarize_runs(runs)
    assert s.n_runs == 4
    assert s.mean == pytest.approx(0.6)
    assert s.folds == {"1": pytest.approx(0.6), "2": pytest.approx(0.6)}
    assert s.fold_std == pytest.approx(0.0)
    assert s.seed_std == pytest.approx((np.std([0.5, 0.7], ddof=1) + 0) / 2)
    assert (s.min, s.max) == (0.5, 0.7)
    with pytest.raises(ConfigError, match="no finite metric value"):
        summarize_runs({("1", 0): float("nan")})

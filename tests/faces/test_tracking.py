from __future__ import annotations

import numpy as np

from facexpr.faces.tracking import OneEuroFilter, greedy_match, iou_matrix


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])
    assert iou_matrix(a, b[:0]).shape == (1, 0)


def test_greedy_match_takes_best_pairs_first() -> None:
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]
    iou = np.array([[0.9, 0.5], [0.6, 0.1]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]
    iou = np.array([[0.9, 0.5], [0.6, 0.4]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0), (1, 1)]


def test_one_euro_smooths_noise_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter()
    # Jitter of 0.3% of the face size, about what Face Mesh shows on a still face.
    noisy = 100 + rng.normal(0, 0.3, size=(60, 5))
    out = np.array([f(x, i / 30, 100.0) for i, x in enumerate(noisy)])
    jitter_in = np.abs(np.diff(noisy[10:], axis=0)).mean()
    assert np.abs(np.diff(out[10:], axis=0)).mean() < 0.3 * jitter_in
    # A fast move of one face size is followed within a few frames (beta term).
    f = OneEuroFilter()
    for i in range(10):
        f(np.zeros(1), i / 30, 100.0)
    for i in range(10, 20):
        y = f(np.full(1, 100.0), i / 30, 100.0)
    assert y[0] > 90

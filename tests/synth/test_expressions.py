"""Tests of the expression sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.core.arkit import ICT_CHANNELS, ict_to_arkit_matrix
from facexpr.core.errors import ConfigError
from facexpr.synth.expressions import (
    EMOTION_LABELS,
    EMOTIONS,
    ExpressionSampler,
    ExpressionSamplerOptions,
)

I = {n: i for i, n in enumerate(ICT_CHANNELS)}  # noqa: E741
U = {n: i for i, n in enumerate(AU_NAMES)}


@pytest.fixture(scope="module")
def draws() -> list:
    s = ExpressionSampler(7)
    return [s.sample() for _ in range(3000)]


def test_same_seed_same_draws() -> None:
    a = [ExpressionSampler(3).sample().ict_weights for _ in range(1)]
    s1, s2 = ExpressionSampler(3), ExpressionSampler(3)
    for _ in range(50):
        np.testing.assert_array_equal(s1.sample().ict_weights, s2.sample().ict_weights)
    assert not np.array_equal(a[0], ExpressionSampler(4).sample().ict_weights)


def test_weights_in_range_and_shapes(draws: list) -> None:
    w = np.stack([d.ict_weights for d in draws])
    a = np.stack([d.arkit_weights for d in draws])
    assert w.shape == (3000, 53)
    assert a.shape == (3000, 52)
    assert w.min() >= 0
    assert w.max() <= 1


def test_mixture_shares(draws: list) -> None:
    kinds = Counter(d.kind for d in draws)
    assert 0.07 < kinds["neutral"] / 3000 < 0.13
    emotions = Counter(d.emotion for d in draws if d.kind == "emotion")
    assert set(emotions) == set(EMOTIONS)


def test_labels_match_kind(draws: list) -> None:
    for d in draws:
        if d.kind == "random":
            assert d.emotion is None
            assert d.emotion_intensity is None
            assert d.emotion_mix is None
        else:
            assert d.emotion in EMOTION_LABELS
            assert 0 <= d.emotion_intensity <= 1
            assert d.emotion_mix.sum() == pytest.approx(1.0)
            assert EMOTION_LABELS[int(np.argmax(d.emotion_mix))] == d.emotion


def test_neutral_is_near_zero(draws: list) -> None:
    n = np.stack([d.ict_weights for d in draws if d.kind == "neutral"])
    assert n.max() < 0.06


def test_prototypes_express_their_aus() -> None:
    s = ExpressionSampler(0)
    m = ict_to_arkit_matrix()
    expect = {
        "happiness": ["AU06", "AU12"],
        "sadness": ["AU01", "AU04", "AU15"],
        "surprise": ["AU01", "AU02", "AU05", "AU26"],
        "fear": ["AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"],
        "anger": ["AU04", "AU05", "AU07", "AU23"],
        "disgust": ["AU09", "AU15", "AU16"],
        "contempt": ["AU12", "AU14"],
    }
    for e, aus in expect.items():
        au = arkit_to_au(m @ s.prototype(e))
        for a in aus:
            assert au[U[a]] >= 1.5, (e, a)
        assert au[U["AU12"]] == 0 or "AU12" in aus
    c = s.prototype("contempt")
    assert c[I["mouthSmile_R"]] > 0
    assert c[I["mouthSmile_L"]] == 0


def test_plausibility_constraints(draws: list) -> None:
    w = np.stack([d.ict_weights for d in draws])
    for s in ("_L", "_R"):
        blink, wide = w[:, I["eyeBlink" + s]], w[:, I["eyeWide" + s]]
        assert not np.any((blink > 0.6) & (wide > 0.2))
        assert np.all(w[:, I["mouthSmile" + s]] + w[:, I["mouthFrown" + s]] <= 1 + 1e-6)
    assert np.all(w[:, I["mouthClose"]] <= w[:, I["jawOpen"]] + 1e-6)
    assert not np.any((w[:, I["jawLeft"]] > 0) & (w[:, I["jawRight"]] > 0))


def test_left_right_correlated_with_some_asymmetry(draws: list) -> None:
    w = np.stack([d.ict_weights for d in draws if d.kind == "emotion"])
    lr = w[:, [I["mouthSmile_L"], I["mouthSmile_R"]]]
    active = lr.max(1) > 0.2
    assert np.corrcoef(lr[active].T)[0, 1] > 0.7
    ratio = lr[active].min(1) / lr[active].max(1)
    assert 0.05 < np.mean(ratio < 0.85) < 0.5


def test_bad_options_raise() -> None:
    with pytest.raises(ConfigError, match="sum to <= 1"):
        ExpressionSamplerOptions(p_neutral=0.5, p_emotion=0.5, p_blend=0.2)
    with pytest.raises(ConfigError, match="intensity_range"):
        ExpressionSamplerOptions(intensity_range=(0.8, 0.2))
    with pytest.raises(ConfigError, match="jitter must be in"):
        ExpressionSamplerOptions(jitter=2.0)
    with pytest.raises(ConfigError, match="unknown emotion 'joy'"):
        ExpressionSampler(0).prototype("joy")

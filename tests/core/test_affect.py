"""One emotion order for the whole package, and the derived valence-arousal."""

from __future__ import annotations

import numpy as np

from facexpr.core.affect import CIRCUMPLEX, EMOTIONS, emotion_index, va_from_distribution


def test_one_emotion_order_everywhere():
    from facexpr.analyze.evaluators import EMOTIONS as evaluated
    from facexpr.io.datasets import EMOTIONS as ferplus

    assert EMOTIONS == tuple(ferplus) == tuple(evaluated)


def test_derived_va_is_the_vote_weighted_circumplex_point():
    p = np.zeros(8, np.float32)
    p[EMOTIONS.index("happiness")] = 3
    p[EMOTIONS.index("neutral")] = 1
    np.testing.assert_allclose(va_from_distribution(p), 0.75 * CIRCUMPLEX[1], atol=1e-6)
    np.testing.assert_allclose(va_from_distribution(p, 0.5), 0.375 * CIRCUMPLEX[1], atol=1e-6)
    assert list(emotion_index(["happy", "unknown", "contempt"])) == [1, -1, 7]

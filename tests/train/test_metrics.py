"""The expression benchmark's metrics on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.train.metrics import identity_variance_share, triplet_correct


def _crossed(n_id: int, n_ex: int, d: int, id_scale: float, ex_scale: float, seed: int = 0):
    """A fully crossed design e = a_g + b_i: every identity shows every expression once."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_ex, d)) * ex_scale
    b = rng.normal(size=(n_id, d)) * id_scale
    ident = np.repeat(np.arange(n_id), n_ex)
    expr = np.tile(np.arange(n_ex), n_id)
    return a[expr] + b[ident], ident, expr, a, b


def test_crossed_additive_design_gives_the_exact_shares():
    x, ident, expr, a, b = _crossed(6, 9, 4, id_scale=0.5, ex_scale=2.0)
    ss_i = 9 * ((b - b.mean(0)) ** 2).sum()
    ss_e = 6 * ((a - a.mean(0)) ** 2).sum()
    got = identity_variance_share(x, ident, expr)
    assert got.identity == pytest.approx(ss_i / (ss_i + ss_e), rel=1e-9)
    assert got.expression == pytest.approx(ss_e / (ss_i + ss_e), rel=1e-9)
    assert got.identity + got.expression == pytest.approx(1.0, rel=1e-9)
    assert (got.n, got.identities, got.expressions) == (54, 6, 9)


def test_expression_only_embedding_has_no_identity_share():
    x, ident, expr, _, _ = _crossed(5, 7, 3, id_scale=0.0, ex_scale=1.0)
    got = identity_variance_share(x, ident, expr)
    assert got.identity == pytest.approx(0.0, abs=1e-12)
    assert got.expression == pytest.approx(1.0, rel=1e-9)


def test_identity_only_embedding_is_all_identity():
    x, ident, expr, _, _ = _crossed(5, 7, 3, id_scale=1.0, ex_scale=0.0)
    got = identity_variance_share(x, ident, expr)
    assert got.identity == pytest.approx(1.0, rel=1e-9)
    assert got.expression == pytest.approx(0.0, abs=1e-12)


def test_pairs_design_and_chance_level():
    # Each expression on 2 of 20 identities (as --pair-size 2 renders), pure noise per sample:
    # no identity effect, so the share must sit near its permutation chance level, and an
    # added identity effect must lift it far above.
    rng = np.random.default_rng(1)
    n_groups, n_id, d = 400, 20, 8
    ident = np.stack([rng.choice(n_id, 2, replace=False) for _ in range(n_groups)]).ravel()
    expr = np.repeat(np.arange(n_groups), 2)
    noise = rng.normal(size=(len(ident), d))
    base = rng.normal(size=(n_groups, d))[expr] * 3 + noise
    null = identity_variance_share(base, ident, expr, permutations=20, seed=0)
    assert 0 < null.chance < 0.05
    assert abs(null.identity - null.chance) < 0.02
    # An identity offset added: the least-squares fit recovers its true share of the spread
    # (a plain mean of expression residuals per identity would find about a quarter of it).
    offset = rng.normal(size=(n_id, d))[ident] * 2
    with_id = base + offset
    true = ((offset - offset.mean(0)) ** 2).sum() / ((with_id - with_id.mean(0)) ** 2).sum()
    got = identity_variance_share(with_id, ident, expr, permutations=5)
    assert got.identity == pytest.approx(true, abs=0.03)
    assert got.identity > 5 * got.chance


def test_variance_share_rejects_bad_input():
    x = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="must be \\(N >= 2, D\\)"):
        identity_variance_share(np.zeros(4), [0, 1, 0, 1], [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="4 embeddings but 3 identity"):
        identity_variance_share(x, [0, 1, 0], [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="needs >= 2 identities"):
        identity_variance_share(x, [0, 0, 0, 0], [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="zero variance"):
        identity_variance_share(x, [0, 1, 0, 1], [0, 0, 1, 1])


def test_triplet_correct_needs_the_pair_closest_both_ways():
    a = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    p = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # right; wrong (n nearer a); wrong (n nearer p than a is: d(p, n) = 0.25 < d(a, p) = 1)
    n = np.array([[-3.0, 0.0], [0.5, 0.0], [1.5, 0.0]])
    assert triplet_correct(a, p, n).tolist() == [True, False, False]
    with pytest.raises(ConfigError, match="of one shape"):
        triplet_correct(a, p, n[:2])

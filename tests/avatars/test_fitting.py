"""Fitting the ICT model to 2D landmarks recovers known weights, pose and identity."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.avatars.fitting import (
    FitOptions,
    LandmarkModel,
    fit_landmarks,
    interocular,
    project_model,
)
from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError

SIZE = (640, 480)


@pytest.fixture(scope="module")
def model(ict_dir) -> LandmarkModel:
    d = np.load(ict_dir / "ict_facekit.npz")
    return LandmarkModel.from_arrays(
        d["neutral"],
        d["expression_deltas"][:53],
        d["identity_deltas"][:20],
        d["landmarks68"],
        ICT_CHANNELS,
        contour_weight=1.0,
    )


def _scene(model: LandmarkModel, n: int, seed: int):
    rng = np.random.default_rng(seed)
    w = np.zeros((n, model.n_channels), np.float32)
    for t in range(n):
        idx = rng.choice(model.n_channels, rng.integers(1, 4), replace=False)
        w[t, idx] = rng.uniform(0.3, 1.0, len(idx))
    ident = rng.normal(size=model.n_identity).astype(np.float32)
    rot = np.radians(rng.uniform([-10, -20, -8], [10, 20, 8], (n, 3))).astype(np.float32)
    tr = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(45, 60, n)])
    return w, ident, rot, tr.astype(np.float32)


@pytest.mark.parametrize("solver", ["alternating", "adam"])
def test_exact_landmarks_are_fitted_to_sub_pixel_error(model, solver):
    w, ident, rot, tr = _scene(model, 40, seed=1)
    lm = project_model(model, w, ident, rot, tr, SIZE)
    weak = FitOptions(solver=solver, iterations=300, identity_prior=1e-4, expression_l1=1e-4)
    fit = fit_landmarks(lm, SIZE, model, weak)
    back = project_model(model, fit.weights, fit.identity, fit.rotation, fit.translation, SIZE)
    err = np.linalg.norm(back - lm, axis=-1).mean(axis=1) / interocular(lm)
    assert err.max() < 0.02
    assert fit.reliable.all()
    assert ((fit.weights >= 0) & (fit.weights <= 1)).all()
    # rotation recovered within a few degrees
    assert np.degrees(np.abs(fit.rotation - rot)).max() < 4.0


@pytest.mark.parametrize("solver", ["alternating", "adam"])
def test_well_determined_channels_are_recovered(model, solver):
    w, ident, rot, tr = _scene(model, 120, seed=2)
    lm = project_model(model, w, ident, rot, tr, SIZE)
    lm += np.random.default_rng(3).normal(scale=0.3, size=lm.shape).astype(np.float32)
    fit = fit_landmarks(lm, SIZE, model, FitOptions(solver=solver, iterations=300))
    for name in ("jawOpen", "mouthSmile_L", "mouthLeft", "mouthPucker", "jawLeft"):
        c = ICT_CHANNELS.index(name)
        r = np.corrcoef(w[:, c], fit.weights[:, c])[0, 1]
        assert r > 0.75, f"{name}: correlation {r:.2f}"


def test_a_wrong_model_gives_an_unreliable_fit(model):
    w, ident, rot, tr = _scene(model, 4, seed=4)
    lm = project_model(model, w, ident, rot, tr, SIZE)
    scrambled = lm[:, np.random.default_rng(5).permutation(68)]
    fit = fit_landmarks(scrambled, SIZE, model, FitOptions(iterations=100))
    assert not fit.reliable.any()
    assert fit.residual.min() > 0.06


def test_bad_landmarks_are_rejected(model):
    with pytest.raises(ConfigError, match=r"landmarks must be \(T, 68, 2\)"):
        fit_landmarks(np.zeros((2, 5, 2)), SIZE, model)
    lm = np.zeros((1, 68, 2), np.float32)
    lm[0, 3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_landmarks(lm, SIZE, model)
    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        FitOptions(iterations=0)
    with pytest.raises(ConfigError, match="solver must be 'alternating' or 'adam'"):
        FitOptions(solver="lbfgs")


def test_measured_correspondence_is_on_the_face():
    from facexpr.avatars.fitting import correspondence

    c = correspondence()
    for name, n in (("ibug68", 68), ("mesh468", 468)):
        ids = np.asarray(c[name])
        assert ids.shape == (n,)
        assert ((ids >= 0) & (ids <= 9408)).all()  # ICT's face part
        assert np.median(c[f"residual_{name}"]) < 0.05  # in inter-ocular distances
    assert len(set(c["mesh468"])) >= 460


def test_antagonist_channels_are_not_both_used(model):
    from facexpr.avatars.fitting import ANTAGONISTS, _antagonist_matrix

    p = _antagonist_matrix(model.channel_names)
    assert (p == p.T).all()
    assert p.sum() == 2 * sum(a in ICT_CHANNELS and b in ICT_CHANNELS for a, b in ANTAGONISTS)
    # a face with the jaw shifted left: the fit must not pair it with jawRight
    w, ident, rot, tr = _scene(model, 6, seed=7)
    w[:] = 0
    w[:, ICT_CHANNELS.index("jawLeft")] = 0.7
    lm = project_model(model, w, ident, rot, tr, SIZE)
    fit = fit_landmarks(lm, SIZE, model, FitOptions(antagonist=0.5))
    both = (
        fit.weights[:, ICT_CHANNELS.index("jawLeft")]
        * fit.weights[:, ICT_CHANNELS.index("jawRight")]
    )
    assert both.max() < 0.05
    assert fit.weights[:, ICT_CHANNELS.index("jawLeft")].mean() > 0.4
    with pytest.raises(ConfigError, match="antagonist must be >= 0"):
        FitOptions(antagonist=-1)

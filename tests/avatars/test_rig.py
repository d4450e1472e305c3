"""Rig validation and evaluation (numpy and batched torch agree)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facexpr.avatars.rig import Rig, arkit_index
from facexpr.core.arkit import ARKIT_NAMES, ICT_CHANNELS
from facexpr.core.errors import ConfigError


def _tiny(**kw) -> Rig:
    rng = np.random.default_rng(0)
    args = dict(
        neutral=rng.normal(size=(5, 3)),
        faces=[[0, 1, 2], [2, 3, 4]],
        channel_names=("jawOpen", "mouthSmile_L"),
        deltas=rng.normal(size=(2, 5, 3)),
        identity_basis=rng.normal(size=(3, 5, 3)),
    )
    args.update(kw)
    return Rig(**args)


def test_evaluate_is_linear_in_weights_and_identity():
    rig = _tiny()
    w = np.array([0.3, 0.7], np.float32)
    z = np.array([1.0, -0.5], np.float32)
    want = rig.neutral + 0.3 * rig.deltas[0] + 0.7 * rig.deltas[1]
    want = want + 1.0 * rig.identity_basis[0] - 0.5 * rig.identity_basis[1]
    np.testing.assert_allclose(rig.evaluate(w, z), want, atol=1e-5)
    np.testing.assert_allclose(rig.evaluate(np.array([2.0, -1.0]), clamp=True),
                               rig.neutral + rig.deltas[0], atol=1e-5)  # fmt: skip


def test_evaluate_torch_batched_matches_numpy():
    rig = _tiny()
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, (4, 2)).astype(np.float32)
    z = rng.normal(size=(4, 3)).astype(np.float32)
    out = rig.evaluate_torch(torch.from_numpy(w), torch.from_numpy(z))
    assert out.shape == (4, 5, 3)
    for b in range(4):
        np.testing.assert_allclose(out[b].numpy(), rig.evaluate(w[b], z[b]), atol=1e-5)
    wt = torch.from_numpy(w).requires_grad_()
    rig.evaluate_torch(wt).sum().backward()
    np.testing.assert_allclose(wt.grad[0].numpy(), rig.deltas.sum(axis=(1, 2)), rtol=1e-4)


def test_channel_index_is_case_insensitive_and_suggests():
    rig = _tiny()
    assert rig.channel_index("JAWOPEN") == 0
    assert rig.weights(mouthsmile_l=0.5)[1] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="did you mean 'jawOpen'"):
        rig.channel_index("jawOpn")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"neutral": np.zeros((5, 2))}, "neutral must be"),
        ({"faces": [[0, 1, 9]]}, "face vertex ids"),
        ({"deltas": np.zeros((3, 5, 3))}, "deltas must be"),
        ({"channel_names": ("a", "A")}, "duplicate channel"),
        ({"uv": np.zeros((4, 2))}, "uv must be"),
        ({"face_material": [0, 1], "material_names": ("m",)}, "face_material ids"),
        ({"identity_basis": np.zeros((2, 4, 3))}, "identity_basis must be"),
        ({"landmark_vertices": [0, 7]}, "landmark_vertices"),
    ],
)
def test_bad_rigs_are_rejected(kw, match):
    with pytest.raises(ConfigError, match=match):
        _tiny(**kw)


def test_bad_weights_and_identity_are_rejected():
    rig = _tiny()
    with pytest.raises(ConfigError, match=r"weights must be \(2,\)"):
        rig.evaluate(np.zeros(3))
    with pytest.raises(ConfigError, match="K <= 3"):
        rig.evaluate(np.zeros(2), np.zeros(4))
    with pytest.raises(ConfigError, match="identity or base"):
        rig.evaluate(np.zeros(2), np.zeros(1), base=rig.neutral)
    with pytest.raises(ConfigError, match=r"weights must be \(B, 2\)"):
        rig.evaluate_torch(torch.zeros(3))
    with pytest.raises(ConfigError, match="identity must be"):
        rig.evaluate_torch(torch.zeros(1, 2), torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="no landmark vertices"):
        rig.landmarks(rig.neutral)


def test_arkit_index_matches_names_and_variants():
    assert all(ARKIT_NAMES[arkit_index(n)] == n for n in ARKIT_NAMES)
    cases = {
        "blendShape1.jawOpen": "jawOpen", "BS_mouthSmileLeft": "mouthSmileLeft",
        "mouthSmile_L": "mouthSmileLeft", "eyeBlink.R": "eyeBlinkRight",
        "browInnerUp_R": "browInnerUp", "Mouth_Close": "mouthClose",
    }  # fmt: skip
    for name, want in cases.items():
        assert ARKIT_NAMES[arkit_index(name)] == want, name
    assert arkit_index("tongueCurl") is None
    assert all(arkit_index(n) is not None for n in ICT_CHANNELS)

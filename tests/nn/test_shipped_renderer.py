"""The shipped neural renderer (``neural_renderer.ict9``) against the real renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import MissingDependencyError
from facexpr.nn import create_model
from facexpr.nn.neural_renderer import NEURAL_RENDERER_CARD
from facexpr.nn.registry import WEIGHTS_DIR, sha256_file
from facexpr.synth.rig_renders import RigRenderOptions, RigRenderSet, load_avatar


@pytest.fixture(scope="module")
def shipped():
    return create_model("neural_renderer", pretrained=True).eval()


def test_the_file_is_the_carded_one(shipped):
    assert sha256_file(WEIGHTS_DIR / NEURAL_RENDERER_CARD.file) == NEURAL_RENDERER_CARD.sha256
    assert shipped.size == 128
    assert shipped.avatars == tuple(NEURAL_RENDERER_CARD.config["avatars"])


@pytest.mark.parametrize(("name", "floor_db"), [("ict_000", 30.0), ("ict_toon", 25.0)])
def test_it_matches_the_real_renderer_on_rig_weights_it_never_saw(shipped, name, floor_db):
    try:
        rs = RigRenderSet(load_avatar(name), RigRenderOptions(size=shipped.size, seed=0))
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL (moderngl + EGL): {e}")
    with rs:
        pairs = [rs.sample("test", i) for i in range(6)]
    w = torch.from_numpy(np.stack([p[0] for p in pairs]))
    real = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        out = shipped(name, w)
    mse = ((out - real) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(1 / mse)).mean().item()
    assert psnr > floor_db  # benchmarks/neural_renderer.py: ict_000 35.3 dB, ict_toon 29.8 dB


def test_opening_the_jaw_changes_the_mouth_not_the_forehead(shipped):
    w = torch.zeros(2, 53)
    w[1, ICT_CHANNELS.index("jawOpen")] = 1.0
    with torch.no_grad():
        a, b = shipped("ict_000", w)
    diff = (a - b).abs().mean(0)  # (S, S)
    s = shipped.size
    mouth = diff[int(0.62 * s) : int(0.9 * s), int(0.3 * s) : int(0.7 * s)].mean()
    forehead = diff[int(0.05 * s) : int(0.25 * s), int(0.3 * s) : int(0.7 * s)].mean()
    assert mouth > 0.03
    assert mouth > 5 * forehead

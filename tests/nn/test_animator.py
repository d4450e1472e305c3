"""The multi-avatar animator: shapes, bounds, codes, add-avatar invariance, cards, losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facexpr.core.errors import ConfigError, ModelError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.nn import create_model, list_models, weights_to_bytes
from facexpr.nn.animator import MultiAvatarAnimator, load_animator
from facexpr.nn.losses.animator import (
    expression_consistency,
    image_l1,
    rig_l2,
    symmetry_loss,
    temporal_smoothness,
)
from facexpr.nn.registry import WeightsCard, sha256_file


def small(**kw) -> MultiAvatarAnimator:
    torch.manual_seed(0)
    return MultiAvatarAnimator([("a", 53), ("b", 7)], in_dim=12, hidden=16, depth=2, **kw)


def test_output_shapes_per_rig_and_bounds() -> None:
    m = small().eval()
    x = torch.randn(5, 12) * 100  # far outside the training range: still in [0, 1]
    with torch.no_grad():
        ya, yb = m(x, "a"), m(x, 1)
    assert ya.shape == (5, 53)
    assert yb.shape == (5, 7)
    assert float(ya.min()) >= 0.0
    assert float(ya.max()) <= 1.0
    assert m.n_shapes("b") == 7
    assert m.avatars == ("a", "b")


def test_identity_code_changes_the_output() -> None:
    m = MultiAvatarAnimator([("a", 4), ("b", 4)], in_dim=6, hidden=8, depth=1).eval()
    with torch.no_grad():  # FiLM starts at zero: give it weight, and the two avatars own heads
        for p in (m.in_film.weight, m.blocks[0].film.weight):
            p.normal_()
        m.heads[1].load_state_dict(m.heads[0].state_dict())
        m.codes[1].copy_(m.codes[0] + 1.0)
    x = torch.randn(3, 6)
    with torch.no_grad():
        assert float((m(x, "a") - m(x, "b")).abs().max()) > 1e-3


def test_bad_inputs_are_named() -> None:
    m = small()
    with pytest.raises(ConfigError, match=r"input must be \(B, 12\)"):
        m(torch.zeros(2, 11), "a")
    with pytest.raises(ConfigError, match=r"not trained for avatar 'zed'.*--add-avatar"):
        m(torch.zeros(2, 12), "zed")
    with pytest.raises(ConfigError, match="index 5 out of range"):
        m.index(5)
    with pytest.raises(ConfigError, match="already there"):
        m.add_avatar("a", 3)
    with pytest.raises(ConfigError, match="needs >= 1 shape"):
        m.add_avatar("c", 0)
    with pytest.raises(ConfigError, match="at least one avatar"):
        MultiAvatarAnimator([])
    with pytest.raises(ConfigError, match="dropout must be in"):
        MultiAvatarAnimator([("a", 1)], dropout=1.0)


def test_adding_an_avatar_leaves_the_others_unchanged() -> None:
    m = small()
    x = torch.randn(32, 12)
    m.eval()
    with torch.no_grad():
        before = {n: m(x, n).clone() for n in m.avatars}
    new = m.add_avatar("c", 9)
    params = m.train_only(["c"])
    assert {id(p) for p in params} == {
        id(m.codes[new]),
        *(id(p) for p in m.heads[new].parameters()),
    }
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    target = torch.rand(32, 9)
    m.train()
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = rig_l2(m(x, "c"), target)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        for n, y in before.items():
            assert torch.equal(m(x, n), y), n  # bit for bit
        assert float(rig_l2(m(x, "c"), target)) < first  # the new avatar did learn


def test_registry_and_weights_round_trip(tmp_path: Path) -> None:
    assert "animator" in list_models()
    m = create_model("animator", avatars=[["x", 3], ["y", 5]], in_dim=10, hidden=8, depth=1)
    path = tmp_path / "animator.safetensors"
    write_bytes_atomic(path, weights_to_bytes(m))
    card = WeightsCard(tag="t", input_size=(112, 112), sha256=sha256_file(path),
                       config={**m.config(), "encoder_sha256": "0" * 64})  # fmt: skip
    write_text_atomic(path.with_suffix(".json"), card.to_json())
    back, got = load_animator(path)
    x = torch.randn(4, 10)
    m.eval()
    assert torch.equal(back(x, "y"), m(x, "y"))
    assert got.config["encoder_sha256"] == "0" * 64


def test_missing_card_and_unshipped_weights_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    write_bytes_atomic(path, weights_to_bytes(small()))
    with pytest.raises(ModelError, match=r"no card a\.json beside it"):
        load_animator(path)
    with pytest.raises(ModelError, match="facexpr train animator"):
        create_model("animator", pretrained=True)


def test_losses_are_zero_at_the_target_and_grow_away() -> None:
    t = torch.rand(4, 6)
    assert float(rig_l2(t, t)) == 0.0
    assert float(rig_l2(t + 0.1, t)) == pytest.approx(0.01, rel=1e-4)
    mirror = torch.tensor([1, 0, 2, 4, 3, 5])
    assert float(symmetry_loss(t, t[:, mirror], mirror)) == 0.0
    assert float(symmetry_loss(t, t, mirror)) > 0.0
    ramp = torch.linspace(0, 1, 10).view(1, 10, 1).repeat(2, 1, 3)
    assert float(temporal_smoothness(ramp)) == pytest.approx(0.0, abs=1e-12)
    jitter = ramp + 0.1 * (torch.arange(10) % 2).view(1, 10, 1)
    assert float(temporal_smoothness(jitter)) == pytest.approx(0.04, rel=1e-4)  # (2 * 0.1)^2
    img = torch.rand(2, 3, 8, 8)
    assert float(image_l1(img, img)) == 0.0
    e = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    assert float(expression_consistency(e, e)) == 0.0
    assert float(expression_consistency(e, -e)) == pytest.approx(4.0, rel=1e-4)
    with pytest.raises(ConfigError, match="temporal_smoothness: need"):
        temporal_smoothness(torch.zeros(2, 2, 3))
    with pytest.raises(ConfigError, match="rig_l2: shapes differ"):
        rig_l2(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="symmetry_loss"):
        symmetry_loss(t, t, mirror[:3])
    with pytest.raises(ConfigError, match="image_l1: shapes differ"):
        image_l1(img, img[:1])
    with pytest.raises(ConfigError, match="expression_consistency: shapes differ"):
        expression_consistency(e, e[:2])

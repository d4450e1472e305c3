"""The multi-avatar neural renderer: overfitting, gradients, adding avatars, save/load, errors.

Tiny CPU configs (32 px) and synthetic targets: no OpenGL needed here (the recipe's tests in
tests/train/test_renderer_recipe.py train on real renders).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from facexpr.core.errors import ConfigError, ModelError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.nn.neural_renderer import NeuralRenderer, load_neural_renderer, neural_renderer
from facexpr.nn.registry import WeightsCard, sha256_file, weights_to_bytes

TINY = {"size": 32, "latent_dim": 32, "id_dim": 16, "style_dim": 16, "base_channels": 8,
        "max_channels": 32}  # fmt: skip


def _tiny(avatars=("a", "b"), n_shapes=(5, 7), seed: int = 0) -> NeuralRenderer:
    torch.manual_seed(seed)
    return neural_renderer(list(avatars), list(n_shapes), **TINY)


def _targets(weights: torch.Tensor, seed: int) -> torch.Tensor:
    """(B, 3, 32, 32) smooth images in [0, 1] that depend on the weights (a fixed random map)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.rand(weights.shape[1], 3, 4, 4, generator=g)
    low = torch.einsum("bc,cxyz->bxyz", weights, basis) / weights.shape[1] + 0.2
    return F.interpolate(low, size=32, mode="bilinear", align_corners=False).clamp(0, 1)


def test_overfits_a_few_rigs():
    model = _tiny()
    g = torch.Generator().manual_seed(1)
    w = torch.rand(4, 5, generator=g)
    low = torch.rand(4, 3, 4, 4, generator=g)  # one smooth random image per rig
    target = F.interpolate(low, size=32, mode="bilinear", align_corners=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = (model("a", w) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    with torch.no_grad():
        final = float((model("a", w) - target).abs().mean())
    # Stated bound: below 0.03 mean absolute error within 150 steps (starts near 0.25).
    assert first > 0.15
    assert final < 0.03


def test_gradients_reach_the_rig_weights_and_match_finite_differences():
    model = _tiny().double().eval()
    w = torch.full((1, 7), 0.4, dtype=torch.float64, requires_grad=True)
    probe = torch.rand(
        1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )

    def f(x: torch.Tensor) -> torch.Tensor:
        return (model("b", x) * probe).sum()

    f(w).backward()
    grad = w.grad
    assert torch.isfinite(grad).all()
    assert (grad.abs() > 1e-8).all()  # every weight moves the image
    k, eps = 3, 1e-5
    e = torch.zeros_like(w)
    e[0, k] = eps
    with torch.no_grad():
        fd = (f(w + e) - f(w - e)) / (2 * eps)
    assert float(fd) == pytest.approx(float(grad[0, k]), rel=1e-5, abs=1e-9)


def test_adding_an_avatar_leaves_the_others_bit_identical():
    model = _tiny()
    w_a = torch.rand(3, 5, generator=torch.Generator().manual_seed(4))
    w_b = torch.rand(3, 7, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before_a, before_b = model("a", w_a).clone(), model("b", w_b).clone()
    shared_before = {k: v.clone() for k, v in model.state_dict().items()}

    idx = model.add_avatar("c", 4)
    assert idx == 2
    assert model.avatars == ("a", "b", "c")
    assert model.n_shapes("c") == 4
    model.train_only(["c"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"codes.2", "inputs.2.weight", "inputs.2.bias"}
    w_c = torch.rand(6, 4, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():  # a target the frozen decoder can draw: avatar a's renders
        target = model("a", F.pad(w_c, (0, 1)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = (model("c", w_c) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]  # the new avatar did learn
    with torch.no_grad():
        assert torch.equal(model("a", w_a), before_a)
        assert torch.equal(model("b", w_b), before_b)
    after = model.state_dict()
    changed = {k for k, v in shared_before.items() if not torch.equal(v, after[k])}
    assert changed == set()


def test_mixed_batches_match_one_avatar_at_a_time():
    model = _tiny().eval()
    wa = torch.rand(2, 5, generator=torch.Generator().manual_seed(8))
    wb = torch.rand(2, 7, generator=torch.Generator().manual_seed(9))
    padded = torch.cat([F.pad(wa, (0, 2)), wb])
    with torch.no_grad():
        mixed = model(torch.tensor([0, 0, 1, 1]), padded)
        one = torch.cat([model("a", wa), model("b", wb)])
    torch.testing.assert_close(mixed, one, atol=1e-5, rtol=0)


def _export(model: NeuralRenderer, folder) -> object:
    path = folder / "renderer.safetensors"
    write_bytes_atomic(path, weights_to_bytes(model))
    card = WeightsCard(
        tag="t", input_size=(model.size, model.size), file=path.name, sha256=sha256_file(path),
        architecture="neural_renderer: test", config=model.config_dict(),
    )  # fmt: skip
    write_text_atomic(path.with_suffix(".json"), card.to_json())
    return path


def test_save_load_round_trip_gives_the_same_outputs(tmp_path):
    model = _tiny().eval()
    model.add_avatar("c", 3)
    path = _export(model, tmp_path)
    loaded = load_neural_renderer(tmp_path)  # the folder finds renderer.safetensors
    assert loaded.avatars == ("a", "b", "c")
    assert [loaded.n_shapes(a) for a in loaded.avatars] == [5, 7, 3]
    assert loaded.size == 32
    w = torch.rand(2, 3, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert torch.equal(loaded("c", w), model("c", w))
    assert not loaded.training
    assert load_neural_renderer(path).avatars == loaded.avatars


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"renderer\.json: weights card not found"):
        load_neural_renderer(tmp_path / "renderer.safetensors")
    path = _export(_tiny(), tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["architecture"] = "expression: something else"
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"renderer\.json: not a neural renderer's card"):
        load_neural_renderer(path)
    card["architecture"] = "neural_renderer: x"
    card["config"]["n_shapes"] = [5, 8]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"sha256|shape"):
        load_neural_renderer(path)


def test_bad_inputs_raise_clear_errors():
    model = _tiny()
    with pytest.raises(ConfigError, match=r"unknown avatar 'aa'.*did you mean 'a'"):
        model("aa", torch.rand(1, 5))
    with pytest.raises(ConfigError, match=r"avatar 'a' has 5 rig shapes, so weights must be "
                       r"\(B, 5\), got \(2, 4\)"):  # fmt: skip
        model("a", torch.rand(2, 4))
    with pytest.raises(ConfigError, match=r"avatar index 2 out of range"):
        model(2, torch.rand(1, 5))
    with pytest.raises(ConfigError, match=r"one avatar index per row"):
        model(torch.tensor([0]), torch.rand(2, 7))
    with pytest.raises(ConfigError, match=r"weights must be \(B, >= 7\)"):
        model(torch.tensor([1]), torch.rand(1, 5))
    with pytest.raises(ConfigError, match=r"avatar 'b' is already one of its avatars"):
        model.add_avatar("b", 3)
    with pytest.raises(ConfigError, match=r"needs >= 1 rig shape"):
        model.add_avatar("z", 0)
    with pytest.raises(ConfigError, match=r"size must be a power of two >= 16, got 48"):
        neural_renderer(["a"], [3], size=48)
    with pytest.raises(ConfigError, match=r"one rig size per avatar, got 2 avatars and 1"):
        neural_renderer(["a", "b"], [3])


def test_bad_architecture_arguments():
    with pytest.raises(ConfigError, match=r"latent_dim must be >= 1, got 0"):
        neural_renderer(["a"], [3], size=16, latent_dim=0)
    with pytest.raises(ConfigError, match=r"avatar names must be non-empty text, got ''"):
        neural_renderer([""], [3], size=16)

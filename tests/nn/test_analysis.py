"""The analysis model and its output heads: MoE linear layers, the Local AU Features Module,
head subsets, the registry entry."""

from __future__ import annotations

import pytest
import torch

from facexpr.core.affect import EMOTIONS, HEAD_AUS
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError
from facexpr.nn import create_model
from facexpr.nn.analysis import HEADS, FaceAnalysisModel
from facexpr.nn.heads.outputs import LocalAUFeatures, MoELinear

TINY = {"img_size": 48, "depth": 2, "hidden_dim": 32, "au_dim": 8}


def test_moe_with_one_expert_is_a_plain_linear_layer():
    torch.manual_seed(0)
    moe = MoELinear(12, 5, experts=1)
    assert moe.gate is None
    lin = torch.nn.Linear(12, 5)
    lin.load_state_dict({"weight": moe.proj.weight, "bias": moe.proj.bias})
    x = torch.randn(3, 7, 12)
    torch.testing.assert_close(moe(x), lin(x), rtol=0, atol=0)


def test_moe_output_is_the_gated_convex_combination_of_its_experts():
    torch.manual_seed(1)
    e, d_in, d_out = 3, 6, 4
    moe = MoELinear(d_in, d_out, experts=e)
    x = torch.randn(5, d_in)
    w = torch.softmax(x @ moe.gate.weight.T + moe.gate.bias, dim=-1)  # (5, E)
    assert torch.allclose(w.sum(-1), torch.ones(5))
    assert bool((w > 0).all())
    experts = []
    for k in range(e):
        rows = slice(k * d_out, (k + 1) * d_out)
        experts.append(x @ moe.proj.weight[rows].T + moe.proj.bias[rows])  # (5, out)
    want = sum(w[:, k : k + 1] * experts[k] for k in range(e))
    got = moe(x)
    torch.testing.assert_close(got, want)
    # A convex combination lies inside the experts' range, entry by entry.
    stack = torch.stack(experts)
    assert bool((got <= stack.max(0).values + 1e-6).all())
    assert bool((got >= stack.min(0).values - 1e-6).all())
    # ... and differs from the plain mean of the experts (the gate matters).
    assert not torch.allclose(got, stack.mean(0), atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_moe_rejects_bad_sizes(bad):
    with pytest.raises(ConfigError, match=r"MoELinear\.experts must be an integer >= 1"):
        MoELinear(4, 4, experts=bad)
    with pytest.raises(ConfigError, match=r"LocalAUFeatures\.au_dim must be an integer >= 1"):
        LocalAUFeatures(8, 3, au_dim=bad)


def _lafm_by_hand(m: LocalAUFeatures, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The module's steps written out for one AU at a time (arXiv:2210.15160, Local AU
    Features Module)."""
    t = m.norm(tokens)
    b, _n, _ = t.shape
    masks = m.masks(tokens)  # (B, K, N)
    maps = m.feature_maps(t)  # (B, N, K * c)
    occ = torch.zeros(b, m.experts, m.n_aus)
    inten = torch.zeros(b, m.experts, m.n_aus)
    for k in range(m.n_aus):
        fk = maps[:, :, k * m.au_dim : (k + 1) * m.au_dim]  # (B, N, c): AU k's feature map
        mk = masks[:, k]  # (B, N)
        local = (mk[..., None] * fk).sum(1) / (mk.sum(1)[:, None] + 1e-6)  # (B, c)
        for e in range(m.experts):
            occ[:, e, k] = local @ m.occ_w[e, k] + m.occ_b[e, k]
            inten[:, e, k] = local @ m.int_w[e, k] + m.int_b[e, k]
    if m.gate is None:
        return occ[:, 0], 5 * torch.sigmoid(inten[:, 0])
    g = torch.softmax(m.gate(t.mean(1)), -1)[..., None]
    return (g * occ).sum(1), 5 * torch.sigmoid((g * inten).sum(1))


@pytest.mark.parametrize("experts", [1, 3])
def test_local_au_features_follow_the_module_step_by_step(experts):
    torch.manual_seed(2)
    m = LocalAUFeatures(16, n_aus=5, au_dim=4, experts=experts)
    tokens = torch.randn(2, 9, 16)
    masks = m.masks(tokens)
    assert masks.shape == (2, 5, 9)
    assert bool((masks > 0).all())
    assert bool((masks < 1).all())
    logits, inten = m(tokens)
    assert logits.shape == (2, 5)
    assert inten.shape == (2, 5)
    want_logits, want_inten = _lafm_by_hand(m, tokens)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inten, want_inten, rtol=1e-5, atol=1e-5)


def test_au_intensity_stays_in_0_to_5_and_each_au_reads_its_own_feature():
    torch.manual_seed(3)
    m = LocalAUFeatures(16, n_aus=4, au_dim=4)
    with torch.no_grad():
        m.int_b.fill_(40.0)
        _, hi = m(torch.randn(3, 9, 16) * 50)
    assert bool((hi <= 5).all())
    assert bool((hi >= 0).all())
    assert float(hi.max()) == pytest.approx(5.0)
    with torch.no_grad():
        m.int_b.fill_(-40.0)
        _, lo = m(torch.randn(3, 9, 16))
    assert float(lo.min()) == pytest.approx(0.0, abs=1e-6)
    # AU 0's logit depends on AU 0's weights only (grouped read-outs).
    tokens = torch.randn(2, 9, 16)
    before, _ = m(tokens)
    with torch.no_grad():
        m.occ_w[:, 1] += 1.0
    after, _ = m(tokens)
    torch.testing.assert_close(after[:, 0], before[:, 0])
    assert not torch.allclose(after[:, 1], before[:, 1])


def test_model_outputs_every_head_with_shapes_and_ranges():
    torch.manual_seed(0)
    model = create_model("analysis", **TINY).eval()
    assert model.heads == HEADS
    x = torch.randn(3, 3, 48, 48)
    out = model(x)
    assert set(out) == {"embedding", "emotion", "va", "blendshapes", "au_logits", "au_intensity"}
    assert out["embedding"].shape == (3, 16)
    torch.testing.assert_close(out["embedding"].norm(dim=1), torch.ones(3))
    assert out["emotion"].shape == (3, len(EMOTIONS))
    assert out["va"].shape == (3, 2)
    assert bool((out["va"].abs() < 1).all())
    assert out["blendshapes"].shape == (3, len(ARKIT_NAMES))
    assert bool((out["blendshapes"] > 0).all())
    assert bool((out["blendshapes"] < 1).all())
    assert out["au_logits"].shape == (3, len(HEAD_AUS))
    assert bool((out["au_intensity"] >= 0).all())
    assert bool((out["au_intensity"] <= 5).all())
    # Batched equals one by one (no cross-sample mixing anywhere).
    one = model(x[1:2])
    for k, v in one.items():
        torch.testing.assert_close(v[0], out[k][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("heads", [("emotion",), ("aus", "va"), ("blendshapes", "embedding")])
def test_any_subset_of_heads(heads):
    model = create_model("analysis", heads=list(heads), experts=2, **TINY)
    keys = set(model(torch.randn(2, 3, 48, 48)))
    want = {"au_logits", "au_intensity"} if "aus" in heads else set()
    want |= {h for h in heads if h != "aus"}
    assert keys == want
    assert model.heads == tuple(h for h in HEADS if h in heads)  # output order, not given order
    for h in HEADS:
        attr = "head" if h == "embedding" else h
        assert (getattr(model, attr) is None) == (h not in heads), h


def test_embedding_equals_the_expression_model_on_the_same_tensors():
    torch.manual_seed(0)
    model = create_model("analysis", **TINY).eval()
    expr = create_model("expression", img_size=48, depth=2, hidden_dim=32).eval()
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "head."))}
    expr.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(expr(x), model(x)["embedding"])


def test_bad_heads_and_encoders_are_refused():
    enc = create_model("fxvit_tiny_d6_p16_112", img_size=48, depth=1, global_pool="avg")
    with pytest.raises(ConfigError, match=r"analysis heads must be distinct names of"):
        FaceAnalysisModel(enc, ("emotion", "gaze"))
    with pytest.raises(ConfigError, match=r"analysis heads must be distinct names of"):
        FaceAnalysisModel(enc, ())
    with pytest.raises(ConfigError, match=r"analysis heads must be distinct names of"):
        FaceAnalysisModel(enc, ("va", "va"))
    with pytest.raises(ConfigError, match=r"analysis: unknown encoder 'fxvit_huge'"):
        create_model("analysis", encoder="fxvit_huge")

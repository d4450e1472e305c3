"""The identity normaliser (facexpr.nn.normalizer): shapes, gradient flow, option checks, the
registry entry, and the analysis model's optional normalised input."""

from __future__ import annotations

import pytest
import torch

from facexpr.core.errors import ConfigError, ModelError
from facexpr.nn import create_model, list_models
from facexpr.nn.normalizer import normalizer_losses, region_boxes, region_mask

TINY = {"img_size": 32, "dim": 32, "merge_depth": 1, "heads": 2,
        "decoder_channels": (16, 16, 8, 8), "encoder_channels": (8, 8, 16)}  # fmt: skip


@pytest.mark.parametrize("encoder", ["conv", "fxvit_tiny_d6_p16_112"])
def test_output_is_an_image_of_the_input_size_in_0_1(encoder: str) -> None:
    torch.manual_seed(0)
    kw = {**TINY, "depth": 1} if encoder != "conv" else TINY
    m = create_model("normalizer", encoder=encoder, **kw).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        w = m.probe(y)
    assert y.shape == (3, 3, 32, 32)
    assert float(y.min()) >= 0.0
    assert float(y.max()) <= 1.0
    assert m.forward_encoder(x).shape[-1] == 32  # projected to the merge width
    assert m.forward_merge(m.forward_encoder(x)).shape == (3, 4, 32)  # a 2x2 canonical grid
    assert w.shape == (3, 53)
    assert float(w.min()) >= 0
    assert float(w.max()) <= 1
    # Batched equals one by one (no cross-sample leak through the merge).
    with torch.no_grad():
        torch.testing.assert_close(m(x[1:2]), y[1:2], atol=1e-5, rtol=1e-4)


def test_every_part_gets_gradient() -> None:
    torch.manual_seed(0)
    m = create_model("normalizer", **TINY)
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out, lat = m(x, return_latent=True)
    terms = normalizer_losses(out, t, region=region_mask(32), weights_true=torch.rand(2, 53),
                              weights_out=m.probe(out), weights_target=m.probe(t),
                              weights_latent=lat)  # fmt: skip
    sum(terms.values()).backward()
    # The decoder's last conv starts at zero (the output starts as the learned canonical image),
    # so the first step's gradient reaches it but not the layers before it; take one step.
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    opt.step()
    opt.zero_grad()
    out, lat = m(x, return_latent=True)
    terms = normalizer_losses(out, t, region=region_mask(32), weights_true=torch.rand(2, 53),
                              weights_out=m.probe(out), weights_target=m.probe(t),
                              weights_latent=lat)  # fmt: skip
    sum(terms.values()).backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert dead == []
    assert set(terms) == {"pixel", "region", "expression", "probe", "latent"}
    assert lat.shape == (2, 53)


def test_weight_code_is_the_decoders_only_input() -> None:
    torch.manual_seed(0)
    m = create_model("normalizer", **TINY, code="weights").eval()
    x = torch.randn(2, 3, 32, 32)
    w = torch.rand(2, 53)
    with torch.no_grad():
        _, lat = m(x, return_latent=True)
        # The bottleneck: two inputs with the same code draw the same face.
        forced = m(x, code=w[:1].expand(2, -1))
        torch.testing.assert_close(forced[0], forced[1])
        # Without a code the decoder draws the read-out; NaN rows of a code keep it.
        torch.testing.assert_close(m(x), m.forward_decoder(m.forward_code(lat.clamp(0, 1))))
        mixed = m(x, code=torch.stack([w[0], torch.full((53,), float("nan"))]))
        torch.testing.assert_close(mixed[1], m(x)[1])
        torch.testing.assert_close(mixed[0], m(x, code=w)[0])
    # The decoder's input depends on the code (its last conv starts at zero: take a step first).
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m.train()
    (m(x, code=w) - torch.rand(2, 3, 32, 32)).abs().mean().backward()
    opt.step()
    with torch.no_grad():
        assert float((m(x, code=w) - m(x, code=1 - w)).abs().max()) > 1e-4


def test_every_part_of_the_weight_code_model_gets_gradient() -> None:
    torch.manual_seed(0)
    m = create_model("normalizer", **TINY, code="weights")
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        out, lat = m(x, return_latent=True)
        terms = normalizer_losses(out, t, region=region_mask(32), weights_true=torch.rand(2, 53),
                                  weights_out=m.probe(out), weights_target=m.probe(t),
                                  weights_latent=lat)  # fmt: skip
        sum(terms.values()).backward()
        opt.step()
    dead = [n for n, p in m.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert dead == []


def test_weight_code_read_out_is_standardised() -> None:
    m = create_model("normalizer", **TINY, code="weights")
    mean, std = torch.rand(53), torch.rand(53) + 0.1
    m.weight_mean.copy_(mean)
    m.weight_std.copy_(std)
    assert "weight_mean" in m.state_dict()  # saved with the weights
    with torch.no_grad():
        tokens = m.forward_encoder(torch.randn(2, 3, 32, 32))
        z = m.latent(tokens.flatten(1))  # every token, flattened
        torch.testing.assert_close(m.forward_latent(tokens), mean + z * std)
    w = torch.rand(2, 53)
    lat = w + 0.1 * std
    t = torch.rand(2, 3, 32, 32)
    terms = normalizer_losses(t, t, region=region_mask(32), weights_true=w, weights_latent=lat,
                              latent_scale=std)  # fmt: skip
    assert float(terms["latent"]) == pytest.approx(0.01, rel=1e-4)  # (0.1 std / std)^2


def test_code_misuse_is_refused() -> None:
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="model has code='tokens'"):
        create_model("normalizer", **TINY)(x, code=torch.rand(1, 53))
    with pytest.raises(ConfigError, match=r"code must be \(1, 53\)"):
        create_model("normalizer", **TINY, code="weights")(x, code=torch.rand(1, 52))
    with pytest.raises(ConfigError, match="forward_code needs code='weights'"):
        create_model("normalizer", **TINY).forward_code(torch.rand(1, 53))


def test_region_mask_covers_the_boxes_only() -> None:
    m = region_mask(96)
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in region_boxes(96))
    assert float(m.sum()) == area
    assert 0.1 < area / 96**2 < 0.25  # the expression's share of the crop


def test_region_loss_sees_only_the_boxes() -> None:
    t = torch.zeros(1, 3, 32, 32)
    out = t.clone()
    out[..., 0:4, 0:4] = 1.0  # a corner outside every box
    terms = normalizer_losses(out, t, region=region_mask(32))
    assert float(terms["region"]) == 0.0
    assert float(terms["pixel"]) == pytest.approx(16 / 1024)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"img_size": 40}, "multiple of 16"),
        ({"dim": 30}, "multiple of heads"),
        ({"decoder_channels": (8, 8)}, "4 widths"),
        ({"encoder_channels": (8, 8)}, "3 widths"),
        ({"encoder": "resnet"}, "unknown encoder 'resnet'"),
        ({"code": "pixels"}, "code must be 'tokens' or 'weights', got 'pixels'"),
    ],
)
def test_bad_options_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_model("normalizer", **{**TINY, **kw})


def test_wrong_input_shape_is_refused() -> None:
    m = create_model("normalizer", **TINY)
    with pytest.raises(ConfigError, match=r"input must be \(B, 3, 32, 32\)"):
        m(torch.zeros(1, 3, 64, 64))


def test_registered_and_no_weights_shipped_yet() -> None:
    assert "normalizer" in list_models()
    with pytest.raises(ModelError, match="facexpr train normalizer"):
        create_model("normalizer", pretrained=True)


def test_analysis_heads_take_the_normalised_crop_as_a_second_input() -> None:
    torch.manual_seed(0)
    kw = {"img_size": 32, "depth": 1, "hidden_dim": 16, "experts": 2}
    plain = create_model("analysis", **kw).eval()
    both = create_model("analysis", normalized=True, **kw).eval()
    x, xn = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b, c = plain(x), both(x, xn), both(x, xn.flip(-1))
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    # The heads read both passes: changing only the normalised crop changes the outputs.
    assert float((b["emotion"] - c["emotion"]).abs().max()) > 1e-6
    assert both.emotion.body[0].normalized_shape == (2 * 192,)
    with pytest.raises(ConfigError, match="needs x_norm"):
        both(x)
    with pytest.raises(ConfigError, match="takes no x_norm"):
        plain(x, xn)
    with pytest.raises(ConfigError, match="differs from x"):
        both(x, xn[:1])
    from facexpr.nn.analysis import PackedAnalysis

    with pytest.raises(ConfigError, match="takes one input"):
        PackedAnalysis(both)

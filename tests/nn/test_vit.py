"""The fxvit encoders: shapes, position embedding, batching, input and option errors."""

from __future__ import annotations

import math

import pytest
import torch

from facexpr.core.errors import ConfigError, InputError
from facexpr.nn.vit import VisionTransformer, ViTConfig, sincos_pos_embed_2d

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def test_tokens_and_pooled_shapes():
    vit = VisionTransformer(**TINY)
    x = torch.randn(3, 3, 32, 32)
    assert vit.num_patches == 16
    assert tuple(vit.forward_features(x).shape) == (3, 17, 32)
    assert tuple(vit(x).shape) == (3, 32)
    assert tuple(vit.pos_embed.shape) == (1, 17, 32)
    assert tuple(vit.patch_embed(x).shape) == (3, 16, 32)


def test_pooling_token_and_avg():
    torch.manual_seed(0)
    vit = VisionTransformer(**TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = vit.forward_features(x)
    assert torch.equal(vit(x), tokens[:, 0])
    avg = VisionTransformer(**TINY, global_pool="avg").eval()
    avg.load_state_dict(vit.state_dict())
    assert torch.allclose(avg(x), tokens[:, 1:].mean(1), atol=1e-6)


def test_sincos_embedding_is_mae_like():
    emb = sincos_pos_embed_2d(8, 3)
    assert tuple(emb.shape) == (10, 8)
    assert torch.equal(emb[0], torch.zeros(8))  # class token
    # patch (row 1, col 2): first half encodes the row, second half the column
    row = emb[1 + 1 * 3 + 2]
    assert row[0].item() == pytest.approx(math.sin(1.0))  # frequency 1 at k = 0
    assert row[2].item() == pytest.approx(math.cos(1.0))
    assert row[4].item() == pytest.approx(math.sin(2.0))
    assert row[6].item() == pytest.approx(math.cos(2.0))
    # every patch has its own code
    assert torch.unique(emb[1:], dim=0).shape[0] == 9


def test_batched_equals_one_by_one():
    torch.manual_seed(0)
    vit = VisionTransformer(**TINY).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together = vit(x)
        alone = torch.cat([vit(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_drop_path_only_while_training():
    torch.manual_seed(0)
    vit = VisionTransformer(**TINY, drop_path_rate=0.5)
    x = torch.randn(8, 3, 32, 32)
    vit.eval()
    with torch.no_grad():
        a, b = vit(x), vit(x)
    assert torch.equal(a, b)
    vit.train()
    with torch.no_grad():
        c = vit(x)
    assert not torch.allclose(a, c)


def test_wrong_input_shape_is_an_input_error():
    vit = VisionTransformer(**TINY)
    with pytest.raises(
        InputError, match=r"expected a \(B, 3, 32, 32\) image tensor, got \(1, 3, 64, 64\)"
    ):
        vit(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InputError, match=r"got \(3, 32, 32\)"):
        vit(torch.zeros(3, 32, 32))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"img_size": 30}, r"patch_size 8 must divide img_size 30"),
        ({"embed_dim": 36, "num_heads": 8}, r"embed_dim 36 must be a multiple of num_heads 8"),
        ({"embed_dim": 6, "num_heads": 3}, r"embed_dim 6 must be a multiple of 4"),
        ({"depth": 0}, r"ViTConfig\.depth must be an integer >= 1, got 0"),
        ({"mlp_ratio": 0.0}, r"mlp_ratio must be > 0"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\)"),
        ({"global_pool": "max"}, r"global_pool must be 'token' or 'avg'"),
    ],
)
def test_bad_options_are_rejected(kw, message):
    with pytest.raises(ConfigError, match=message):
        VisionTransformer(**{**TINY, **kw})


def test_config_rebuilds_the_architecture():
    vit = VisionTransformer(**TINY)
    again = VisionTransformer(**vit.config_dict())
    assert again.config == vit.config == ViTConfig(**vit.config_dict())
    again.load_state_dict(vit.state_dict())  # same names and shapes

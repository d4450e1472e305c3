"""The expression encoder and its embedding head."""

from __future__ import annotations

import pytest
import torch

from facexpr.core.errors import ConfigError
from facexpr.nn import EmbeddingHead, ExpressionEncoder, create_model
from facexpr.nn.vit import VisionTransformer


def test_embeddings_have_unit_length_and_16_dims():
    torch.manual_seed(0)
    model = create_model("expression", img_size=32, depth=1).eval()
    with torch.no_grad():
        e = model(torch.randn(5, 3, 32, 32))
    assert tuple(e.shape) == (5, 16)
    assert model.dim == 16
    assert torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-6)


def test_head_without_hidden_layer():
    head = EmbeddingHead(8, dim=4, hidden_dim=None)
    layers = list(head.net)
    assert [type(m) for m in layers] == [torch.nn.LayerNorm, torch.nn.Linear]
    out = head(torch.randn(3, 8) * 100)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)


def test_head_separates_features_that_share_a_large_offset():
    # Pretrained pooled features share a big common component; the LayerNorm keeps the
    # embeddings of different faces apart instead of collapsing them onto one point.
    torch.manual_seed(0)
    head = EmbeddingHead(32, dim=8)
    feats = 50.0 + 0.5 * torch.randn(16, 32)
    out = head(feats)
    d = torch.cdist(out, out)
    assert d[~torch.eye(16, dtype=torch.bool)].mean() > 0.3


def test_expression_pools_patch_tokens():
    model = create_model("expression")
    assert model.encoder.config.global_pool == "avg"


def test_wrong_sizes_are_rejected():
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ConfigError, match=r"head in_dim 64 differs from the encoder's width 32"):
        ExpressionEncoder(vit, EmbeddingHead(64))
    with pytest.raises(ConfigError, match=r"EmbeddingHead\.dim must be an integer >= 1, got 0"):
        EmbeddingHead(32, dim=0)
    with pytest.raises(ConfigError, match=r"unknown encoder 'fxvit_huge'"):
        create_model("expression", encoder="fxvit_huge")

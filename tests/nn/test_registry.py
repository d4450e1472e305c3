"""Models by name: registry lookups, close-match errors, pretrained loading."""

from __future__ import annotations

import pytest

import facexpr.nn  # noqa: F401  (fills the registry)
from facexpr.core.errors import ConfigError, InputError
from facexpr.nn.registry import create_model, list_models, weights_card


def test_registered_names():
    assert "mini_xception" in list_models()
    assert list_models("mini_*", pretrained=True) == ["mini_xception.fer2013"]


def test_create_builds_the_architecture():
    import torch

    model = create_model("mini_xception", num_classes=5)
    out = model(torch.zeros(2, 1, 64, 64))
    assert out.shape == (2, 5)
    assert torch.allclose(out.sum(1), torch.ones(2))


def test_card_says_how_to_preprocess():
    card = weights_card("mini_xception.fer2013")
    assert card.input_size == (64, 64)
    assert card.labels[3] == "happy"


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ConfigError, match=r"unknown model 'mini_xeption'.*'mini_xception'"):
        create_model("mini_xeption")
    with pytest.raises(ConfigError, match=r"has no weights 'affectnet' \(has: fer2013\)"):
        create_model("mini_xception.affectnet", pretrained=True)


def test_pretrained_without_ported_weights_says_how_to_port(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEXPR_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=r"port_fer_teacher\.py"):
        create_model("mini_xception.fer2013", pretrained=True)

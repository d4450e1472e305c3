"""ONNX Runtime sessions: one set of options, and clear errors naming the model."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, MissingDependencyError, ModelError
from facexpr.core.onnx_session import cpu_session

ort = pytest.importorskip("onnxruntime", reason="needs facexpr[onnx]")
onnx = pytest.importorskip("onnx", reason="needs facexpr[onnx]")


def _add_one_model() -> bytes:
    """A one-node graph y = x + 1 for (N, 3) float input, built with onnx's helpers."""
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1, 3), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_runs_from_bytes_and_from_a_file(tmp_path):
    data = _add_one_model()
    path = tmp_path / "add_one.onnx"
    path.write_bytes(data)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for source in (data, path, str(path)):
        session = cpu_session(source, threads=2)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], x + 1)
        assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_threads_must_be_a_positive_integer(threads):
    with pytest.raises(ConfigError, match=r"threads must be an integer >= 1"):
        cpu_session(_add_one_model(), threads=threads)


def test_damaged_file_is_named(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(_add_one_model()[:40])
    with pytest.raises(ModelError, match=r"broken\.onnx: ONNX Runtime cannot load it"):
        cpu_session(path)
    with pytest.raises(ModelError, match=r"ONNX bytes: ONNX Runtime cannot load it"):
        cpu_session(b"not a model")
    with pytest.raises(ModelError, match=r"missing\.onnx"):
        cpu_session(tmp_path / "missing.onnx")


def test_missing_onnxruntime_names_the_extra_and_purpose(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        MissingDependencyError, match=r"testing the message needs .*'onnxruntime'.*facexpr\[onnx\]"
    ):
        cpu_session(b"", purpose="testing the message")

"""Running an encoder under ONNX Runtime on CPU (optional: ``pip install 'facexpr[onnx]'``).

Measured on this project's 2 shared cores (``benchmarks/encoder.py``), the CPU-default encoder
at batch 1 costs about 0.6x the speed budget under ONNX Runtime and about 1.0x under PyTorch
(one thread; PyTorch with two threads on shared cores is several times slower), so the analysis
uses ONNX Runtime when it is installed. The model is exported by torch's TorchScript-based
exporter (opset 17, dynamic batch) to bytes; nothing is written to disk here.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from facexpr.core.errors import InputError, MissingDependencyError
from facexpr.core.onnx_session import cpu_session

__all__ = ["OnnxRunner", "export_onnx", "store_float16"]


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], opset: int = 17) -> bytes:
    """Returns the ONNX bytes of ``model`` (eval mode) for (B, C, H, W) input of any batch.

    Args:
        model: a tensors-in, tensor-out module (an encoder or ``ExpressionEncoder``).
        input_shape: (C, H, W) of one input.
        opset: ONNX opset.

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed.
    """
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as e:
        raise MissingDependencyError("onnx", "onnx", "exporting a model to ONNX") from e
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")  # the exporter's deprecation notices
            torch.onnx.export(
                model,
                (torch.zeros(1, *input_shape),),
                buf,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return buf.getvalue()


def store_float16(model: bytes, min_size: int = 16) -> bytes:
    """Returns ``model`` with every float32 initialiser that float16 holds exactly (weights
    shipped as float16 and widened, as the analysis weights are) stored as float16 behind a
    ``Cast`` to float32. Compute stays float32, so ONNX Runtime's outputs are bit-identical (it
    folds the casts when the session is made) and the file is about half the size.

    Args:
        model: ONNX bytes (:func:`export_onnx`).
        min_size: initialisers with fewer elements stay as they are.

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise MissingDependencyError("onnx", "onnx", "storing ONNX weights as float16") from e
    proto = onnx.load_from_string(model)
    graph = proto.graph
    names = {n for node in graph.node for n in node.output}
    names |= {i.name for i in graph.input} | {i.name for i in graph.initializer}
    inits, casts = [], []
    for init in graph.initializer:
        a = numpy_helper.to_array(init)
        half = a.astype(np.float16) if a.dtype == np.float32 and a.size >= min_size else None
        if half is not None and np.array_equal(half.astype(np.float32), a, equal_nan=True):
            stored = init.name + "__float16"
            if stored in names:
                raise ValueError(f"store_float16: the graph already has a tensor named {stored}")
            inits.append(numpy_helper.from_array(half, stored))
            casts.append(helper.make_node("Cast", [stored], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            inits.append(init)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxRunner:
    """An exported model under ONNX Runtime's CPU provider.

    Args:
        model: ONNX bytes (:func:`export_onnx`).
        threads: intra-op threads (>= 1); the session options are
            :func:`facexpr.core.onnx_session.cpu_session`'s.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ConfigError: ``threads`` < 1.
        ModelError: ONNX Runtime cannot load the bytes.
    """

    def __init__(self, model: bytes, threads: int = 1) -> None:
        self._session: Any = cpu_session(
            model, threads=threads, purpose="running an encoder under ONNX Runtime"
        )
        inp = self._session.get_inputs()[0]
        self.input_shape = tuple(inp.shape[1:])

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Returns the model's float32 output (a CPU tensor) for a (B, C, H, W) float batch.

        Raises:
            InputError: the input does not have the exported (C, H, W).
        """
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if arr.ndim != 4 or tuple(arr.shape[1:]) != self.input_shape:
            raise InputError(
                None,
                f"expected a (B, {', '.join(map(str, self.input_shape))}) batch, "
                f"got {tuple(arr.shape)}",
            )
        out = self._session.run(None, {"x": np.ascontiguousarray(arr, dtype=np.float32)})[0]
        return torch.from_numpy(out)

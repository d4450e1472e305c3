"""One home for ONNX Runtime CPU sessions, torch-free.

Every ONNX model facexpr runs (an encoder exported at run time by ``nn.runtime``, the shipped
analysis export read by ``analyze.heads`` without importing torch) goes through
:func:`cpu_session`, so the session options are set in one place: ``threads`` intra-op threads,
one inter-op thread, no spinning (idle threads leave the cores to the rest of the pipeline) and
full graph optimisation. onnxruntime is optional (``pip install 'facexpr[onnx]'``) and imported
only when a session is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facexpr.core.errors import ConfigError, MissingDependencyError, ModelError

__all__ = ["cpu_session"]


def cpu_session(
    model: bytes | str | Path, threads: int = 1, purpose: str = "running a model"
) -> Any:
    """Returns an ``onnxruntime.InferenceSession`` on the CPU provider.

    Args:
        model: ONNX bytes, or the path of an ``.onnx`` file.
        threads: intra-op threads (an integer >= 1).
        purpose: what the session is for, named in the missing-package error.

    Raises:
        ConfigError: ``threads`` is not an integer >= 1.
        MissingDependencyError: onnxruntime is not installed.
        ModelError: ONNX Runtime cannot load the model (the file's path, or "ONNX bytes", is
            named with ONNX Runtime's reason).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"ONNX Runtime: threads must be an integer >= 1, got {threads!r}")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "onnx", purpose) from e
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a broken graph
        where = "ONNX bytes" if isinstance(model, bytes) else str(model)
        raise ModelError(f"{where}: ONNX Runtime cannot load it ({e})") from None

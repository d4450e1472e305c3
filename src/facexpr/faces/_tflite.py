"""Loading the vendored TFLite models with ``ai_edge_litert`` (one interpreter per model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facexpr.core.errors import MissingDependencyError, ModelError

MODEL_DIR = Path(__file__).resolve().parent / "models"


class TFLiteModel:
    """A TFLite model with one float32 input and named outputs.

    Args:
        name: file name in ``faces/models/`` (e.g. ``face_landmark.tflite``).
        num_threads: CPU threads the interpreter may use (>= 1).
        content: the model's bytes (e.g. a member of MediaPipe's ``.task`` bundle) instead of
            the vendored file; ``name`` then only names it in error messages.
    """

    def __init__(self, name: str, num_threads: int = 1, content: bytes | None = None) -> None:
        path = MODEL_DIR / name if content is None else Path(name)
        if content is None and not path.is_file():
            raise ModelError(f"{path}: model file is missing; reinstall facexpr")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - listed as a core dependency
            raise MissingDependencyError("ai-edge-litert", "faces", "face detection") from exc
        try:
            if content is None:
                self._it = Interpreter(model_path=str(path), num_threads=int(num_threads))
            else:
                self._it = Interpreter(model_content=content, num_threads=int(num_threads))
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: cannot load TFLite model ({exc})") from exc
        inp = self._it.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_shape = tuple(int(s) for s in inp["shape"])
        details = self._it.get_output_details()
        self.outputs = {o["name"]: o["index"] for o in details}
        self.output_sizes = {o["name"]: int(np.prod(o["shape"])) for o in details}
        self.path = path

    def __call__(self, x: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """Runs the model on ``x`` (shape ``input_shape`` float32); returns the named outputs."""
        self._it.set_tensor(self.input_index, x)
        self._it.invoke()
        return tuple(self._it.get_tensor(self.outputs[n]) for n in names)

"""MediaPipe's Blendshape V2 model: 52 ARKit-style scores from 146 of Face Mesh V2's 478 points.

``face_blendshapes.tflite`` of the Face Landmarker bundle (an MLP-Mixer, Apache-2.0), run with
ai-edge-litert as MediaPipe's ``face_blendshapes_graph.cc`` does: the 146 points
(``resources/blendshape_teacher_inputs.json``, MediaPipe's ``kLandmarksSubsetIdxs``) as x, y in
image pixels (``LandmarksToTensorCalculator`` multiplies the normalised landmarks by the image
size), one (1, 146, 2) float32 tensor; the model normalises the points itself. Output: 52 scores
in [0, 1], ``_neutral`` first, then 51 ARKit names in
:data:`~facexpr.core.arkit.ARKIT_NAMES` order (``tongueOut`` is not predicted).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, ModelError
from facexpr.faces._tflite import TFLiteModel

__all__ = ["BLENDSHAPE_NAMES", "BlendshapeModel", "input_indices"]

BLENDSHAPE_NAMES: tuple[str, ...] = ("_neutral", *ARKIT_NAMES[:51])
"""The model's 52 outputs in order: ``_neutral``, then the ARKit names without ``tongueOut``."""
MODEL_FILE = "face_blendshapes.tflite"
_RESOURCE = Path(__file__).resolve().parent / "resources" / "blendshape_teacher_inputs.json"


@cache
def input_indices() -> np.ndarray:
    """Returns the (146,) int64 Face Mesh V2 indices the model reads, in its input order."""
    try:
        idx = np.asarray(json.loads(_RESOURCE.read_text("utf-8"))["indices"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{_RESOURCE}: cannot read the blendshape input indices ({exc})") from exc
    if idx.shape != (146,) or idx.min() < 0 or idx.max() >= 478:
        raise ModelError(f"{_RESOURCE}: expected 146 indices in [0, 478)")
    return idx


class BlendshapeModel:
    """Runs Blendshape V2 on Face Mesh V2 landmarks.

    Args:
        num_threads: interpreter CPU threads (>= 1).
        content: the model's bytes instead of the vendored file (a ``.task`` bundle member).
        source: where ``content`` came from, for error messages.
    """

    def __init__(
        self, num_threads: int = 1, content: bytes | None = None, source: str | None = None
    ) -> None:
        if num_threads < 1:
            raise ConfigError(f"BlendshapeModel.num_threads: {num_threads} < 1")
        name = source if content is not None and source else MODEL_FILE
        self._model = TFLiteModel(name, num_threads, content)
        if self._model.input_shape != (1, 146, 2) or list(self._model.output_sizes.values()) != [
            52
        ]:
            raise ModelError(f"{self._model.path}: not the Blendshape V2 model (146x2 -> 52)")
        self._out = next(iter(self._model.outputs))
        self._idx = input_indices()

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        """Returns the (52,) float32 scores (:data:`BLENDSHAPE_NAMES` order) of one face.

        Args:
            landmarks: (478, 2 or 3) Face Mesh V2 points, x and y in image px.

        Raises:
            ConfigError: the landmarks are not (478, 2+).
        """
        lm = np.asarray(landmarks)
        if lm.ndim != 2 or lm.shape[0] != 478 or lm.shape[1] < 2:
            raise ConfigError(f"blendshapes: expected (478, 2 or 3) landmarks, got {lm.shape}")
        x = np.ascontiguousarray(lm[self._idx, :2], np.float32)[None]
        (out,) = self._model(x, (self._out,))
        return out.reshape(52).astype(np.float32).copy()

    @staticmethod
    def to_arkit(scores: np.ndarray, tongue_out: float = float("nan")) -> np.ndarray:
        """Returns (52,) float32 in :data:`ARKIT_NAMES` order from the model's 52 scores.

        ``_neutral`` is dropped and ``tongueOut``, which the model does not predict, is set to
        ``tongue_out``.
        """
        return np.append(np.asarray(scores, np.float32)[1:], np.float32(tongue_out))

    def close(self) -> None:
        """Releases the interpreter."""
        self._model = None  # type: ignore[assignment]

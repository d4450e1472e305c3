"""The expression embedding stage: every face's aligned crop -> a (16,) unit vector.

``ExpressionEmbedder.process(results, tracked=...)`` has the shape of every analysis stage
(:mod:`facexpr.analyze.stages`): it fills ``FaceResult.embedding`` with the output of the
``expression`` encoder (:mod:`facexpr.nn.expression`), whose squared distances follow expression
similarity and ignore identity. Crops are prepared as in training (the front-end's aligned crop,
resized to the card's input size with an area filter, scaled to [0, 1], normalised with the
card's mean/std), and the faces of all the frames handed over are run in batches.

The runtime follows the measurement in docs/nn.md: ONNX Runtime when ``facexpr[onnx]`` is
installed (batch 1 was its fastest on the shared 2 cores), else PyTorch on one thread with faces
batched (PyTorch with two threads on shared cores waited at barriers and was several times
slower). On CUDA, PyTorch on the GPU.

The weights are the shipped ``expression`` weights (``create_model("expression",
pretrained=True)``) or a file given by path (a training run's ``model.safetensors``; a card
JSON beside it, ``NAME.json``, gives another architecture or normalisation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.core.types import FrameResult

log = logging.getLogger(__name__)

__all__ = [
    "EmbeddingOptions",
    "ExpressionEmbedder",
    "cosine_similarity",
    "prepare_crops",
    "shipped_expression_weights",
]

Runtime = Literal["auto", "onnx", "torch"]
_SHIPPED_GLOB = "expression_*.safetensors"


def shipped_weights(pattern: str) -> Path | None:
    """Returns the first shipped weights file in ``facexpr/nn/weights/`` matching ``pattern``, or
    None while none is shipped.

    Found without importing ``facexpr.nn`` (which imports torch), so that deciding whether a
    learned stage runs costs nothing when it does not.
    """
    spec = importlib.util.find_spec("facexpr.nn")
    if spec is None or spec.origin is None:
        return None
    found = sorted((Path(spec.origin).parent / "weights").glob(pattern))
    return found[0] if found else None


def shipped_expression_weights() -> Path | None:
    """Returns the shipped expression weights file, or None while none is shipped."""
    return shipped_weights(_SHIPPED_GLOB)


def check_stage_options(
    runtime: str, batch_size: int | None, weights: str | Path | None, what: str
) -> Path | None:
    """Checks a learned stage's runtime, batch size and weights file; returns the file as a Path.

    Raises:
        ConfigError: an unknown runtime or a batch size that is not an integer >= 1.
        InputError: the weights file does not exist (``what`` names the model).
    """
    if runtime not in ("auto", "onnx", "torch"):
        raise ConfigError(f"runtime must be 'auto', 'onnx' or 'torch', not {runtime!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be an integer >= 1 or None, not {batch_size}")
    if weights is None:
        return None
    path = Path(weights)
    if not path.is_file():
        raise InputError(path, f"{what} weights file not found")
    return path


@dataclass
class EmbeddingOptions:
    """How the expression embedding runs.

    Attributes:
        weights: a safetensors file of the ``expression`` model (a training run's
            ``model.safetensors``), or None for the shipped weights.
        runtime: "auto" (ONNX Runtime if installed and on CPU, else PyTorch), "onnx" or "torch".
        batch_size: faces per encoder call; None picks by runtime (1 under ONNX Runtime, 32
            under PyTorch: the fastest of each in docs/nn.md).
    """

    weights: str | Path | None = None
    runtime: Runtime = "auto"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        self.weights = check_stage_options(
            self.runtime, self.batch_size, self.weights, "expression"
        )

    @property
    def available(self) -> bool:
        """Whether weights exist to run: given by path, or shipped with the package."""
        return self.weights is not None or shipped_expression_weights() is not None


def prepare_crops(
    crops: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    grey: bool = False,
) -> np.ndarray:
    """Returns (N, 3, size, size) float32 encoder input of (S, S, 3) uint8 RGB aligned crops.

    As in training (``facexpr.train.mixing.resize_square`` then ``train.augment.normalise``):
    area filter down, linear up, ``(x / 255 - mean) / std``. With ``grey`` (a model trained on
    greyscale faces, ``WeightsCard.grey``) each crop is first turned into its luminance
    (OpenCV's RGB2GRAY, ITU-R BT.601 weights) repeated on the three channels, as a greyscale
    training face is.
    """
    import cv2

    out = np.empty((len(crops), 3, size, size), np.float32)
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    for i, crop in enumerate(crops):
        if grey:
            crop = np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
        if crop.shape[:2] != (size, size):
            interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (size, size), interpolation=interp)
        out[i] = (crop.transpose(2, 0, 1).astype(np.float32) / 255.0 - m) / s
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Returns the cosine similarity of (D,) ``a`` with each row of (N, D) ``b``: (N,) float32."""
    a = np.asarray(a, np.float32)
    b = np.atleast_2d(np.asarray(b, np.float32))
    na = np.linalg.norm(a)
    nb = np.linalg.norm(b, axis=1)
    return np.clip(b @ a / np.maximum(na * nb, 1e-12), -1.0, 1.0).astype(np.float32)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


class ExpressionEmbedder:
    """Adds the expression embedding to every face of frame results (an analysis stage).

    Args:
        options: weights, runtime and batch size.
        device: "cpu", "cuda" or "auto".
        num_threads: CPU threads of the encoder (1 is the measured best on shared cores).

    Raises:
        ModelError: no weights are shipped and none were given, or the file does not load
            (names the file and the problem).
        MissingDependencyError: ``runtime="onnx"`` without ``facexpr[onnx]``.
    """

    def __init__(
        self,
        options: EmbeddingOptions | None = None,
        *,
        device: str = "cpu",
        num_threads: int = 1,
    ) -> None:
        import torch

        from facexpr.analyze.analyzer import resolve_device
        from facexpr.nn import create_model, load_weights, read_card, weights_card

        self.options = options or EmbeddingOptions()
        self.device = resolve_device(device)
        self.num_threads = num_threads
        o = self.options
        if o.weights is None:
            if shipped_expression_weights() is None:
                raise ModelError(
                    "no expression weights are shipped yet: give a trained file "
                    "(--expression-weights PATH / EmbeddingOptions(weights=PATH)), or train one "
                    "with  facexpr train mae  then  facexpr train expression"
                )
            card = weights_card("expression")
            model = create_model("expression", pretrained=True)
        else:
            path = Path(o.weights)
            beside = path.with_suffix(".json")
            card = read_card(beside) if beside.is_file() else weights_card("expression")
            model = create_model("expression", **dict(card.config))
            load_weights(model, path, card if beside.is_file() else None)
        self.card = card
        self.input_size = int(card.input_size[0])
        self.model = model.eval().to(self.device)
        self.dim = int(self.model.dim)
        self._onnx: Any = None
        want_onnx = o.runtime == "onnx" or (
            o.runtime == "auto"
            and self.device == "cpu"
            and importlib.util.find_spec("onnxruntime") is not None
            and importlib.util.find_spec("onnx") is not None
        )
        if want_onnx:
            from facexpr.nn.runtime import OnnxRunner, export_onnx

            with _torch_threads(num_threads), torch.no_grad():
                data = export_onnx(self.model, (3, self.input_size, self.input_size))
            self._onnx = OnnxRunner(data, threads=num_threads)
        self.runtime: Literal["onnx", "torch"] = "onnx" if self._onnx is not None else "torch"
        self.batch_size = o.batch_size or (1 if self.runtime == "onnx" else 32)
        log.debug(
            "expression embedding: %s, batch %d, %d thread(s), %s",
            self.runtime,
            self.batch_size,
            num_threads,
            o.weights or "shipped weights",
        )

    def reset(self) -> None:
        """Nothing to forget between sources (the embedding is per face)."""

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Returns (N, dim) float32 unit vectors of (S, S, 3) uint8 RGB aligned crops."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        for c in crops:
            if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8 or c.shape[0] != c.shape[1]:
                raise ConfigError(
                    f"expression embedding: crops must be square (S, S, 3) uint8, got "
                    f"{c.shape} {c.dtype}"
                )
        x = prepare_crops(crops, self.input_size, self.card.mean, self.card.std)
        out = []
        for i in range(0, len(x), self.batch_size):
            out.append(self._run(x[i : i + self.batch_size]))
        return np.concatenate(out).astype(np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx(x).numpy()
        import torch

        with _torch_threads(self.num_threads), torch.inference_mode():
            return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def process(self, results: list[FrameResult], *, tracked: bool) -> list[FrameResult]:
        """Returns the results with every face's ``embedding`` filled in.

        All faces of all the given frames go through the encoder together (in batches of
        ``batch_size``). ``tracked`` is unused: the embedding of a face depends on its crop only.

        Raises:
            ConfigError: a face has no aligned crop (the analyzer's ``align_size`` is 0).
        """
        del tracked
        crops = []
        for r in results:
            for face in r.faces:
                if face.aligned is None:
                    raise ConfigError(
                        "the expression embedding needs the aligned face crop; set align_size > 0"
                    )
                crops.append(face.aligned)
        emb = iter(self.embed(crops))
        return [
            dataclasses.replace(
                r, faces=tuple(dataclasses.replace(f, embedding=next(emb)) for f in r.faces)
            )
            for r in results
        ]

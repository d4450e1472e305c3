"""The learned heads stage: every face's aligned crop -> embedding, emotions, valence-arousal,
learned blendshapes, AU occurrence and intensity, from one pass of the analysis model.

``FaceHeads.process(results, tracked=...)`` has the shape of every analysis stage
(:mod:`facexpr.analyze.stages`). It runs the ``analysis`` model of :mod:`facexpr.nn.analysis`
(shipped weights, or a file given by path with its card JSON beside it) on the front-end's
aligned crops, prepared exactly as in training (:func:`facexpr.analyze.embedding.prepare_crops`),
and fills ``FaceResult.embedding``, ``emotions``, ``valence_arousal``, ``au_occurrence``,
``au_intensity`` and, with ``blendshapes=True``, ``blendshapes``. AU occurrence is the
probability against the per-AU threshold calibrated on held-out faces and saved with the weights.

Runtimes. The shipped weights come with their ONNX export (``analysis_<tag>.onnx``, checked by
sha256 against the card): on the CPU with ONNX Runtime installed (``facexpr[onnx]``), "auto"
runs it at batch 8 **without importing torch**, which saves the ~1 s torch import and the model
build of every process (measured: ``benchmarks/mediapipe_speed.py --facexpr-args "--blendshapes
mediapipe"``, docs/heads.md) and 2.6 ms against 3.1 ms a face (PyTorch at batch 32, 2 threads).
Weights given by path run in PyTorch, faces batched 32 at a time (an export at start-up costs
about a second), or under ONNX Runtime with ``runtime="onnx"``; on CUDA, PyTorch on the GPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.analyze.embedding import (
    _torch_threads,
    check_stage_options,
    prepare_crops,
    shipped_weights,
)
from facexpr.core.errors import ConfigError, ModelError
from facexpr.core.onnx_session import cpu_session
from facexpr.core.types import FrameResult

log = logging.getLogger(__name__)

__all__ = ["FaceHeads", "HeadsOptions", "shipped_analysis_weights"]

_SHIPPED_GLOB = "analysis_*.safetensors"
# The analysis model's heads (facexpr.nn.analysis.HEADS), here without importing torch.
ALL_HEADS = ("embedding", "emotion", "va", "blendshapes", "aus")


def shipped_analysis_weights() -> Path | None:
    """Returns the shipped analysis weights file, or None while none is shipped (found without
    importing ``facexpr.nn``, so deciding costs nothing)."""
    return shipped_weights(_SHIPPED_GLOB)


@dataclass
class HeadsOptions:
    """How the learned heads run.

    Attributes:
        weights: a safetensors file of the ``analysis`` model (a ``facexpr train heads`` run's
            ``analysis.safetensors``; its card ``NAME.json`` beside it if the architecture is
            not the default), or None for the shipped weights.
        runtime: "auto" (the shipped ONNX export under ONNX Runtime when it can run, without
            torch; else PyTorch, faces batched), "onnx" (ONNX Runtime, needs
            ``facexpr[onnx]``) or "torch".
        batch_size: faces per call; None: 8 for the shipped ONNX export, 1 for an export made
            at start-up, 32 under PyTorch.
    """

    weights: str | Path | None = None
    runtime: Literal["auto", "onnx", "torch"] = "auto"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        self.weights = check_stage_options(self.runtime, self.batch_size, self.weights, "analysis")

    @property
    def available(self) -> bool:
        """Whether weights exist to run: given by path, or shipped with the package."""
        return self.weights is not None or shipped_analysis_weights() is not None

    def head_names(self) -> tuple[str, ...]:
        """The heads the weights hold, read from their card (``NAME.json`` beside the file; the
        shipped card for the shipped weights) without loading them; all five when a given file
        has no card or its card names none (the default architecture); () when no weights exist.

        Raises:
            ModelError: the card does not parse or names no heads (the card is named).
        """
        path = Path(self.weights) if self.weights is not None else shipped_analysis_weights()
        if path is None:
            return ()
        card = path.with_suffix(".json")
        if not card.is_file():
            return ALL_HEADS
        try:
            config = json.loads(card.read_text(encoding="utf-8")).get("config") or {}
            heads = list(config.get("heads", ALL_HEADS))  # not named: the architecture's default
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError) as e:
            raise ModelError(f"{card}: not a readable analysis card ({e})") from e
        if not isinstance(heads, list) or not heads or not set(heads) <= set(ALL_HEADS):
            raise ModelError(f"{card}: config.heads must list some of {ALL_HEADS}, got {heads!r}")
        return tuple(heads)


class FaceHeads:
    """Adds the learned heads' outputs to every face of frame results (an analysis stage).

    Args:
        options: weights, runtime and batch size.
        blendshapes: also fill ``FaceResult.blendshapes`` with the learned blendshapes.
        embedding: fill ``FaceResult.embedding`` from the embedding head (off when the
            embedding is turned off, or when a separate expression model gives it).
        device: "cpu", "cuda" or "auto".
        num_threads: CPU threads.

    Raises:
        ModelError: no weights shipped and none given, or the file does not load (named).
    """

    def __init__(
        self,
        options: HeadsOptions | None = None,
        *,
        blendshapes: bool = True,
        embedding: bool = True,
        device: str = "cpu",
        num_threads: int = 1,
    ) -> None:
        self.options = options or HeadsOptions()
        self.blendshapes = blendshapes
        self.embedding = embedding
        self.num_threads = num_threads
        o = self.options
        shipped = _shipped_onnx(o, device)
        if shipped is not None:
            self._init_shipped_onnx(*shipped)
            return
        import torch

        from facexpr.analyze.analyzer import resolve_device
        from facexpr.nn import create_model, load_weights, read_card, weights_card
        from facexpr.nn.analysis import PACKED_LAYOUT, PackedAnalysis

        self.device = resolve_device(device)
        if o.weights is None:
            if shipped_analysis_weights() is None:
                raise ModelError(
                    "no analysis weights are shipped yet: give a trained file "
                    "(--heads-weights PATH), or train one with  facexpr train heads"
                )
            card = weights_card("analysis")
            model = create_model("analysis", pretrained=True)
        else:
            path = Path(o.weights)
            beside = path.with_suffix(".json")
            card = read_card(beside) if beside.is_file() else weights_card("analysis")
            model = create_model("analysis", **dict(card.config))
            load_weights(model, path, card if beside.is_file() else None)
        self.card = card
        self.input_size = int(card.input_size[0])
        self.heads = tuple(model.heads)
        self.thresholds = (
            model.aus.thresholds.detach().cpu().numpy().astype(np.float32)
            if model.aus is not None
            else None
        )
        self.packed = PackedAnalysis(model).eval().to(self.device)
        self._slices = _slices(PACKED_LAYOUT)
        self._session: Any = None
        self._onnx: Any = None
        if o.runtime == "onnx":
            from facexpr.nn.runtime import OnnxRunner, export_onnx

            with _torch_threads(num_threads), torch.no_grad():
                data = export_onnx(self.packed, (3, self.input_size, self.input_size))
            self._onnx = OnnxRunner(data, threads=num_threads)
        self.runtime: Literal["onnx", "torch"] = "onnx" if self._onnx is not None else "torch"
        self.batch_size = o.batch_size or (1 if self.runtime == "onnx" else 32)

    def _init_shipped_onnx(self, card: _LiteCard, onnx_path: Path) -> None:
        """The shipped weights' ONNX export under ONNX Runtime: no torch import."""
        self.device = "cpu"
        self.card = card
        self.input_size = int(card.input_size[0])
        self.heads = tuple(card.heads)
        self.thresholds = card.thresholds
        self._slices = _slices(_PACKED_LAYOUT)
        self._session = cpu_session(
            onnx_path,
            threads=max(1, int(self.num_threads)),
            purpose="running the shipped analysis heads",
        )
        self._onnx = None
        self.packed = None
        self.runtime = "onnx"
        self.batch_size = self.options.batch_size or 8
        log.debug("analysis heads: shipped ONNX export %s, batch %d", onnx_path, self.batch_size)

    def reset(self) -> None:
        """Nothing to forget between sources (every output is per face)."""

    def run(self, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Returns the heads' (N, width) float32 outputs of (S, S, 3) uint8 RGB aligned crops:
        ``embedding``, ``emotion`` (probabilities), ``va``, ``blendshapes``,
        ``au_probability``, ``au_intensity`` (0-5) and ``au_occurrence`` (0/1)."""
        if not crops:
            packed = np.zeros((0, sum(s.stop - s.start for s in self._slices.values())))
        else:
            for c in crops:
                if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8 or (
                        c.shape[0] != c.shape[1]):  # fmt: skip
                    raise ConfigError(
                        f"analysis heads: crops must be square (S, S, 3) uint8, got "
                        f"{c.shape} {c.dtype}"
                    )
            x = prepare_crops(crops, self.input_size, self.card.mean, self.card.std, self.card.grey)
            packed = np.concatenate(
                [self._run(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
            )
        out = {k: packed[:, s].astype(np.float32) for k, s in self._slices.items()}
        if self.thresholds is not None:
            out["au_occurrence"] = (out["au_probability"] >= self.thresholds).astype(np.float32)
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._session is not None:  # the shipped ONNX export, no torch
            return self._session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
        if self._onnx is not None:
            return self._onnx(x).numpy()
        import torch

        with _torch_threads(self.num_threads), torch.inference_mode():
            return self.packed(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def process(self, results: list[FrameResult], *, tracked: bool) -> list[FrameResult]:
        """Returns the results with every face's head outputs filled in (all faces of all the
        frames in batches; ``tracked`` is unused: every output depends on the crop only).

        Raises:
            ConfigError: a face has no aligned crop (the analyzer's ``align_size`` is 0).
        """
        del tracked
        crops = []
        for r in results:
            for face in r.faces:
                if face.aligned is None:
                    raise ConfigError(
                        "the analysis heads need the aligned face crop; set align_size > 0"
                    )
                crops.append(face.aligned)
        out = self.run(crops)
        k = 0
        done = []
        for r in results:
            faces = []
            for f in r.faces:
                fields: dict[str, Any] = {}
                if self.embedding and "embedding" in self.heads:
                    fields["embedding"] = out["embedding"][k]
                if "emotion" in self.heads:
                    fields["emotions"] = out["emotion"][k]
                if "va" in self.heads:
                    fields["valence_arousal"] = out["va"][k]
                if "aus" in self.heads:
                    fields["au_intensity"] = out["au_intensity"][k]
                    fields["au_occurrence"] = out["au_occurrence"][k]
                if self.blendshapes and "blendshapes" in self.heads:
                    fields["blendshapes"] = out["blendshapes"][k]
                faces.append(dataclasses.replace(f, **fields))
                k += 1
            done.append(dataclasses.replace(r, faces=tuple(faces)))
        return done


# facexpr.nn.analysis.PACKED_LAYOUT, here without importing torch (a test keeps them equal).
_PACKED_LAYOUT = (
    ("embedding", 16), ("emotion", 8), ("va", 2), ("blendshapes", 52),
    ("au_probability", 20), ("au_intensity", 20),
)  # fmt: skip


def _slices(layout: Sequence[tuple[str, int]]) -> dict[str, slice]:
    """Output name -> its columns in the packed (B, 118) output."""
    out, start = {}, 0
    for name, width in layout:
        out[name] = slice(start, start + width)
        start += width
    return out


@dataclass(frozen=True)
class _LiteCard:
    """What the torch-free runtime needs of a weights card."""

    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    grey: bool
    heads: tuple[str, ...]
    thresholds: np.ndarray | None


def _cuda_possible() -> bool:
    """Whether this machine may have a CUDA device (an NVIDIA device node), decided without
    importing torch; "auto" then leaves the choice to torch."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def _shipped_onnx(o: HeadsOptions, device: str) -> tuple[_LiteCard, Path] | None:
    """The shipped card and ONNX file when the torch-free runtime applies: shipped weights, a
    CPU run, runtime "auto" or "onnx", onnxruntime installed, an export on the card. None
    otherwise (PyTorch then runs).

    Raises:
        ModelError: the shipped card is unreadable, or its ONNX file is missing or differs from
            the card's sha256 (a damaged installation; names the file).
    """
    import importlib.util

    if o.weights is not None or o.runtime not in ("auto", "onnx"):
        return None
    if device == "cuda" or (device == "auto" and _cuda_possible()):
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    weights = shipped_analysis_weights()
    if weights is None:
        return None
    card_path = weights.with_suffix(".json")
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
        onnx_name, onnx_sha = raw.get("onnx_file", ""), raw.get("onnx_sha256", "")
        if not onnx_name:
            return None
        heads = tuple(raw.get("config", {}).get("heads", ALL_HEADS))
        card = _LiteCard(
            input_size=tuple(int(v) for v in raw["input_size"]),
            mean=tuple(float(v) for v in raw["mean"]), std=tuple(float(v) for v in raw["std"]),
            grey=bool(raw.get("grey", False)), heads=heads,
            thresholds=_thresholds(weights) if "aus" in heads else None,
        )  # fmt: skip
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"{card_path}: not a readable analysis card ({e})") from e
    path = weights.parent / onnx_name
    import hashlib

    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise ModelError(f"{path}: the shipped ONNX export cannot be read ({e.strerror})") from None
    if digest != onnx_sha:
        raise ModelError(
            f"{path}: sha256 {digest[:12]}… differs from its card ({onnx_sha[:12]}…): the "
            "installation is damaged; reinstall facexpr"
        )
    return card, path


def _thresholds(weights: Path) -> np.ndarray:
    """The calibrated AU thresholds saved in the weights, read without torch."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as f:
        return np.asarray(f.get_tensor("aus.thresholds"), np.float32)

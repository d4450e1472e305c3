"""Models that ``facexpr evaluate`` can score, by name: a small registry of evaluators.

An evaluator turns one stored face image into a :class:`FacePrediction` (AU intensities and
occurrence scores, emotion probabilities, valence-arousal: whatever the model gives). Built in:

- ``fit``: the ARKit blendshapes fitted by the analyzer (ICT FaceKit model fit), mapped to FACS
  AU intensities by the ARKit-to-FACS table (:mod:`facexpr.avatars.facs`): today's ``AUxx_r``.
- ``mediapipe-teacher``: MediaPipe's Blendshape V2 scores (:mod:`facexpr.faces.blendshape_teacher`,
  needs ``face_landmarker.task``) mapped to AUs with the same table.
- ``fer-teacher``: the ported FER2013 mini-Xception (:mod:`facexpr.nn.teachers`), 7 emotions.

A later model plugs in with one decorated factory, e.g. the learned heads::

    @register_evaluator("heads", "the learned AU / emotion / VA heads")
    def _heads(options: EvaluatorOptions) -> Evaluator:
        return HeadsEvaluator(options.weights, device=options.device)

Occurrence from an intensity-only model: present when the intensity reaches
``EvaluatorOptions.au_threshold`` (default 2, FACS B, the DISFA protocol's rule); its AUC uses
the intensity itself as the score.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facexpr.core.affect import EMOTIONS as _EMOTIONS
from facexpr.core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "Evaluator",
    "EvaluatorOptions",
    "FacePrediction",
    "create_evaluator",
    "describe_evaluators",
    "list_evaluators",
    "register_evaluator",
]

# The facexpr emotion order (FER+'s): one definition, facexpr.core.affect.EMOTIONS.
EMOTIONS = _EMOTIONS


@dataclass(frozen=True, slots=True)
class FacePrediction:
    """A model's output for the main face of one image.

    Attributes:
        found: False when the model found no face (every other field is then None).
        au_intensity: (K,) float32 FACS intensities 0-5 in the evaluator's ``au_names`` order.
        au_score: (K,) float32 occurrence scores (higher = more likely present), same order.
        au_present: (K,) bool occurrence decisions, same order.
        emotion: (8,) float32 probabilities in :data:`EMOTIONS` order, NaN for the classes the
            model does not predict.
        valence: in [-1, 1].
        arousal: in [-1, 1].
    """

    found: bool
    au_intensity: np.ndarray | None = None
    au_score: np.ndarray | None = None
    au_present: np.ndarray | None = None
    emotion: np.ndarray | None = None
    valence: float | None = None
    arousal: float | None = None


@dataclass
class EvaluatorOptions:
    """What every evaluator may need.

    Attributes:
        aligned: the images are face crops (no detection needed); False for full frames.
        device: torch device for learned models: 'cpu', 'cuda' or 'auto'.
        num_threads: CPU threads for the face models.
        au_threshold: intensity (0-5) at which an intensity-only model's AU counts as present.
        weights: model weights file for models that take one (``fer-teacher``: the ported
            teacher, default its cache; later learned models).
        teacher_bundle: MediaPipe's ``face_landmarker.task`` (``mediapipe-teacher``; default
            ``$FACEXPR_LANDMARKER_TASK``).
    """

    aligned: bool = False
    device: str = "cpu"
    num_threads: int = 1
    au_threshold: float = 2.0
    weights: str | None = None
    teacher_bundle: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.au_threshold <= 5.0:
            raise ConfigError(f"au_threshold must be in (0, 5], got {self.au_threshold}")
        if self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")


class Evaluator(Protocol):
    """A model under evaluation.

    Attributes:
        name: registry name.
        au_names: the AUs it predicts ('AU01', ...), () for none.
        emotions: the :data:`EMOTIONS` it predicts, () for none.
        va: whether it predicts valence and arousal.
    """

    name: str
    au_names: tuple[str, ...]
    emotions: tuple[str, ...]
    va: bool

    def predict(self, image: np.ndarray) -> FacePrediction:
        """Returns the prediction for the main face of an (H, W, 3) uint8 RGB image."""
        ...

    def close(self) -> None: ...


Factory = Callable[[EvaluatorOptions], Evaluator]
_REGISTRY: dict[str, tuple[Factory, str]] = {}


def register_evaluator(name: str, description: str) -> Callable[[Factory], Factory]:
    """Returns a decorator registering an evaluator factory under ``name``.

    Raises:
        ConfigError: ``name`` is taken.
    """

    def add(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ConfigError(f"an evaluator named {name!r} is already registered")
        _REGISTRY[name] = (factory, description)
        return factory

    return add


def list_evaluators() -> list[str]:
    """Returns the registered evaluator names, sorted."""
    return sorted(_REGISTRY)


def describe_evaluators() -> dict[str, str]:
    """Returns name -> one-line description of every registered evaluator."""
    return {k: _REGISTRY[k][1] for k in sorted(_REGISTRY)}


def create_evaluator(name: str, options: EvaluatorOptions | None = None) -> Evaluator:
    """Returns the evaluator registered as ``name``.

    Raises:
        ConfigError: unknown name (the message lists the closest names).
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r} (have: {', '.join(list_evaluators())}){hint}")
    return _REGISTRY[name][0](options or EvaluatorOptions())


def _au_prediction(intensity: np.ndarray, threshold: float) -> FacePrediction:
    i = np.asarray(intensity, np.float32)
    return FacePrediction(True, au_intensity=i, au_score=i / 5.0, au_present=i >= threshold)


class _FitEvaluator:
    """AU intensities of the analyzer's fitted blendshapes (``analyze --blendshapes fit``)."""

    name = "fit"
    emotions: tuple[str, ...] = ()
    va = False

    def __init__(self, options: EvaluatorOptions) -> None:
        from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions
        from facexpr.avatars.facs import AU_NAMES

        self.au_names = tuple(AU_NAMES)
        self.threshold = options.au_threshold
        self.analyzer = Analyzer(
            AnalyzerOptions(
                blendshapes="fit",
                aligned=options.aligned,
                embedding=None,
                heads=None,
                num_threads=options.num_threads,
                device=options.device,  # type: ignore[arg-type]
            )
        )

    def predict(self, image: np.ndarray) -> FacePrediction:
        faces = [f for f in self.analyzer.analyze_image(image).faces if f.aus is not None]
        if not faces:
            return FacePrediction(False)
        face = min(faces, key=lambda f: f.face_id)  # face 0 is the largest in a photo
        return _au_prediction(face.aus, self.threshold)

    def close(self) -> None:
        self.analyzer.close()


class _MediapipeTeacherEvaluator:
    """MediaPipe Blendshape V2 scores mapped to AU intensities by the ARKit-to-FACS table."""

    name = "mediapipe-teacher"
    emotions: tuple[str, ...] = ()
    va = False

    def __init__(self, options: EvaluatorOptions) -> None:
        from facexpr.avatars.facs import AU_NAMES
        from facexpr.faces.blendshape_teacher import BlendshapeTeacher

        self.au_names = tuple(AU_NAMES)
        self.threshold = options.au_threshold
        self.aligned = options.aligned
        self.teacher = BlendshapeTeacher(options.teacher_bundle, num_threads=options.num_threads)

    def predict(self, image: np.ndarray) -> FacePrediction:
        from facexpr.avatars.facs import arkit_to_au

        if self.aligned:
            results = [self.teacher.run_crop(image)]
        else:
            results = self.teacher.run_image(image, max_faces=1)
        if not results or results[0].presence < 0.5:
            return FacePrediction(False)
        weights = np.nan_to_num(results[0].arkit52(), nan=0.0)  # tongueOut is not predicted
        return _au_prediction(arkit_to_au(weights), self.threshold)

    def close(self) -> None:
        self.teacher.close()


class _FerTeacherEvaluator:
    """The ported FER2013 mini-Xception: 7 emotion probabilities (no contempt)."""

    name = "fer-teacher"
    au_names: tuple[str, ...] = ()
    va = False

    def __init__(self, options: EvaluatorOptions) -> None:
        from facexpr.nn.teachers import FER2013_LABELS, load_teacher

        self.model = load_teacher(None if options.weights is None else Path(options.weights))
        fer_to_facexpr = {"angry": "anger", "disgust": "disgust", "fear": "fear",
                          "happy": "happiness", "sad": "sadness", "surprise": "surprise",
                          "neutral": "neutral"}  # fmt: skip
        self._index = [EMOTIONS.index(fer_to_facexpr[n]) for n in FER2013_LABELS]
        self.emotions = tuple(EMOTIONS[i] for i in sorted(self._index))
        self.frontend = None
        if not options.aligned:
            from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions

            self.frontend = Analyzer(
                AnalyzerOptions(embedding=None, heads=None, num_threads=options.num_threads)
            )

    def predict(self, image: np.ndarray) -> FacePrediction:
        import cv2
        import torch

        from facexpr.nn.teachers import preprocess

        crop = image
        if self.frontend is not None:
            faces = [f for f in self.frontend.analyze_image(image).faces if f.aligned is not None]
            if not faces:
                return FacePrediction(False)
            crop = min(faces, key=lambda f: f.face_id).aligned
        grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
        with torch.inference_mode():
            p = self.model(preprocess(torch.from_numpy(grey)[None]))[0].numpy()
        probs = np.full(len(EMOTIONS), np.nan, np.float32)
        probs[self._index] = p
        return FacePrediction(True, emotion=probs)

    def close(self) -> None:
        if self.frontend is not None:
            self.frontend.close()


class _HeadsEvaluator:
    """The learned analysis heads (``facexpr train heads``): AU intensities and calibrated
    occurrence (the AUs of :data:`facexpr.core.affect.HEAD_AUS`), 8 emotions, valence-arousal.
    ``options.weights``: an ``analysis.safetensors`` (default: the shipped weights)."""

    name = "heads"
    emotions = EMOTIONS
    va = True

    def __init__(self, options: EvaluatorOptions) -> None:
        from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions
        from facexpr.analyze.heads import HeadsOptions
        from facexpr.core.affect import HEAD_AUS

        self.au_names = tuple(HEAD_AUS)
        self.analyzer = Analyzer(
            AnalyzerOptions(
                aligned=options.aligned,
                embedding=None,
                heads=HeadsOptions(weights=options.weights),
                blendshapes="none",
                num_threads=options.num_threads,
                device=options.device,  # type: ignore[arg-type]
            )
        )
        if not self.analyzer.options.heads_on:
            raise ConfigError(f"evaluator 'heads': {self.analyzer.options.heads_note}")

    def predict(self, image: np.ndarray) -> FacePrediction:
        faces = [f for f in self.analyzer.analyze_image(image).faces if f.emotions is not None]
        if not faces:
            return FacePrediction(False)
        f = min(faces, key=lambda f: f.face_id)
        va = f.valence_arousal
        return FacePrediction(
            True,
            au_intensity=f.au_intensity,
            au_score=f.au_intensity / 5.0,
            au_present=f.au_occurrence.astype(bool),
            emotion=f.emotions,
            valence=float(va[0]),
            arousal=float(va[1]),
        )

    def close(self) -> None:
        self.analyzer.close()


register_evaluator("heads", "the learned analysis heads: AUs (LAFM), 8 emotions, valence-arousal")(
    _HeadsEvaluator
)
register_evaluator("fit", "fitted ARKit blendshapes -> FACS AU intensities (analyze's AUxx_r)")(
    _FitEvaluator
)
register_evaluator(
    "mediapipe-teacher", "MediaPipe Blendshape V2 -> FACS AU intensities (same ARKit table)"
)(_MediapipeTeacherEvaluator)
register_evaluator("fer-teacher", "ported FER2013 mini-Xception: 7 emotion probabilities")(
    _FerTeacherEvaluator
)

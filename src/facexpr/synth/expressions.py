"""Random but plausible facial expressions as ICT FaceKit rig weights.

:class:`ExpressionSampler` draws a mixture of

- neutral faces (all channels near 0),
- the basic emotions of Ekman & Friesen, as the EMFACS prototype AU sets (Ekman & Friesen 1978;
  Ekman, Friesen & Hager 2002, Investigator's Guide) converted to ARKit weights by the FACS table
  of :mod:`facexpr.avatars.facs`, at a random intensity with per-channel jitter,
- blends of two emotions,
- sparse random activations (a few channels, Beta-distributed magnitudes), which cover the space
  the prototypes leave out,

with correlated left/right halves and occasional asymmetry, a random gaze, and plausibility
constraints that remove combinations a face cannot make (a lid both closed and wide open).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from facexpr.avatars.facs import au_to_arkit
from facexpr.core.arkit import ICT_CHANNELS, arkit_to_ict_matrix, ict_to_arkit_matrix
from facexpr.core.errors import ConfigError

__all__ = [
    "EMOTIONS",
    "EMOTION_LABELS",
    "PROTOTYPES",
    "ExpressionSample",
    "ExpressionSampler",
    "ExpressionSamplerOptions",
]

EMOTIONS: tuple[str, ...] = (
    "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt",
)  # fmt: skip
# Class order of the ``emotion_mix`` label: neutral first, then the seven basic emotions.
EMOTION_LABELS: tuple[str, ...] = ("neutral", *EMOTIONS)

# Apex AU intensities (FACS 0-5) of each prototype. The AU sets are the EMFACS prototypes
# (happiness 6+12, sadness 1+4+15, surprise 1+2+5B+26, fear 1+2+4+5+7+20+26, anger 4+5+7+23,
# disgust 9+15+16, contempt R12A+R14A); intensities where the prototype gives none are ours.
# Contempt's apex is raised from A to B/C so that a sampled intensity below 1 stays visible.
PROTOTYPES: dict[str, dict[str, float]] = {
    "happiness": {"AU06": 4.0, "AU12": 5.0},
    "sadness": {"AU01": 4.0, "AU04": 3.0, "AU15": 4.0},
    "surprise": {"AU01": 4.0, "AU02": 4.0, "AU05": 2.0, "AU26": 4.5},
    "fear": {"AU01": 4.0, "AU02": 3.0, "AU04": 3.0, "AU05": 4.0, "AU07": 2.0, "AU20": 4.0,
             "AU26": 3.0},
    "anger": {"AU04": 4.5, "AU05": 3.0, "AU07": 3.0, "AU23": 4.0},
    "disgust": {"AU09": 4.5, "AU15": 3.0, "AU16": 2.5},
    "contempt": {"AU12_R": 2.5, "AU14_R": 3.0},
}  # fmt: skip

_A2I = arkit_to_ict_matrix()
_I2A = ict_to_arkit_matrix()
_IDX = {n: i for i, n in enumerate(ICT_CHANNELS)}
_PAIRS = [
    (_IDX[n], _IDX[n[:-2] + "_R"]) for n in ICT_CHANNELS if n.endswith("_L")
]  # (left, right) channel pairs
_GAZE = {n for n in ICT_CHANNELS if n.startswith("eyeLook")}
# Sparse random activations pick among these "actions": a pair counts once, gaze is separate.
_ACTIONS: list[tuple[int, ...]] = []
for _n in ICT_CHANNELS:
    if _n in _GAZE or _n.endswith("_R"):
        continue
    if _n.endswith("_L"):
        _ACTIONS.append((_IDX[_n], _IDX[_n[:-2] + "_R"]))
    else:
        _ACTIONS.append((_IDX[_n],))


@dataclass(frozen=True, slots=True)
class ExpressionSamplerOptions:
    """Shares and spreads of the expression mixture.

    Attributes:
        p_neutral: share of neutral faces.
        p_emotion: share of single-emotion prototypes.
        p_blend: share of two-emotion blends; the rest are sparse random activations.
        intensity_range: emotion intensity drawn uniformly in this range, within [0, 1].
        jitter: relative per-channel jitter (std) of prototype weights.
        p_asymmetric: chance that a left/right pair gets a clearly asymmetric scale.
        p_gaze: chance of a random gaze direction (else looking straight ahead).
        p_blink: chance of an extra blink on any non-neutral face.
    """

    p_neutral: float = 0.10
    p_emotion: float = 0.45
    p_blend: float = 0.20
    intensity_range: tuple[float, float] = (0.25, 1.0)
    jitter: float = 0.15
    p_asymmetric: float = 0.2
    p_gaze: float = 0.5
    p_blink: float = 0.05

    def __post_init__(self) -> None:
        shares = (self.p_neutral, self.p_emotion, self.p_blend)
        if any(not 0 <= p <= 1 for p in shares) or sum(shares) > 1 + 1e-9:
            raise ConfigError(
                f"ExpressionSamplerOptions: shares must be in [0, 1] and sum to <= 1, got {shares}"
            )
        lo, hi = self.intensity_range
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(
                f"ExpressionSamplerOptions: intensity_range must be 0 <= lo <= hi <= 1, "
                f"got {self.intensity_range}"
            )
        for name in ("jitter", "p_asymmetric", "p_gaze", "p_blink"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"ExpressionSamplerOptions: {name} must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class ExpressionSample:
    """One drawn expression.

    Attributes:
        ict_weights: (53,) float32 in [0, 1], :data:`facexpr.core.arkit.ICT_CHANNELS` order.
        arkit_weights: (52,) float32 in [0, 1], ARKit order (split ICT channels averaged,
            tongueOut 0).
        kind: 'neutral', 'emotion', 'blend' or 'random'.
        emotion: dominant emotion ('neutral' for neutral faces), None for random activations.
        emotion_intensity: intensity in [0, 1] of the dominant emotion (0 for neutral), None for
            random activations.
        emotion_mix: (8,) float32 shares over :data:`EMOTION_LABELS` summing to 1, None for
            random activations.
    """

    ict_weights: np.ndarray
    arkit_weights: np.ndarray
    kind: str
    emotion: str | None
    emotion_intensity: float | None
    emotion_mix: np.ndarray | None


class ExpressionSampler:
    """Draws plausible 53-channel ICT expressions with emotion labels.

    Args:
        seed: an int, or a ``np.random.Generator`` / ``SeedSequence`` to draw from.
        options: mixture shares and spreads.
    """

    def __init__(
        self,
        seed: int | np.random.Generator | np.random.SeedSequence = 0,
        options: ExpressionSamplerOptions | None = None,
    ) -> None:
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.options = options or ExpressionSamplerOptions()
        self._i2a = _I2A
        self._proto = {e: self._prototype_ict(e, mirror=False) for e in EMOTIONS}
        self._proto_mirror = {"contempt": self._prototype_ict("contempt", mirror=True)}

    @staticmethod
    @cache
    def _prototype_ict(emotion: str, mirror: bool) -> np.ndarray:
        aus = PROTOTYPES[emotion]
        if mirror:
            aus = {k.replace("_R", "_L"): v for k, v in aus.items()}
        w = _A2I @ au_to_arkit(aus)
        w.setflags(write=False)
        return w

    def prototype(self, emotion: str, intensity: float = 1.0) -> np.ndarray:
        """Returns the (53,) float32 ICT weights of an emotion prototype, without noise.

        Raises:
            ConfigError: unknown emotion.
        """
        if emotion not in self._proto:
            raise ConfigError(f"unknown emotion '{emotion}'; expected one of {EMOTIONS}")
        return self._scale(self._proto[emotion], intensity)

    @staticmethod
    def _scale(proto: np.ndarray, intensity: float) -> np.ndarray:
        return np.clip(proto * intensity, 0, 1).astype(np.float32)

    def _emotion(self, emotion: str, intensity: float) -> np.ndarray:
        proto = self._proto[emotion]
        if emotion in self._proto_mirror and self.rng.random() < 0.5:
            proto = self._proto_mirror[emotion]
        w = self._scale(proto, intensity)
        jit = 1.0 + self.options.jitter * self.rng.standard_normal(w.shape)
        return w * jit.astype(np.float32)

    def _random(self) -> np.ndarray:
        w = np.zeros(len(ICT_CHANNELS), np.float32)
        k = 1 + min(int(self.rng.poisson(1.5)), 5)
        for a in self.rng.choice(len(_ACTIONS), size=k, replace=False):
            w[list(_ACTIONS[a])] = self.rng.beta(1.5, 2.5)
        return w

    def _symmetry(self, w: np.ndarray) -> np.ndarray:
        for li, ri in _PAIRS:
            m = 0.5 * (w[li] + w[ri])
            if m <= 0:
                continue
            if self.rng.random() < self.options.p_asymmetric:
                s = self.rng.uniform(0.3, 0.8)
                a, b = (m, m * s) if self.rng.random() < 0.5 else (m * s, m)
            else:
                a, b = m * (1 + 0.05 * self.rng.standard_normal(2))
            w[li], w[ri] = a, b
        return w

    def _gaze(self, w: np.ndarray) -> None:
        # Conjugate gaze: both eyes turn the same way. +x is the subject's left.
        gx, gy = np.clip(0.35 * self.rng.standard_normal(2), -1, 1)
        left = "L" if gx > 0 else "R"
        ax = abs(float(gx))
        # Turning to the subject's left: left eye looks out, right eye looks in.
        w[_IDX["eyeLookOut_L" if left == "L" else "eyeLookIn_L"]] = ax
        w[_IDX["eyeLookIn_R" if left == "L" else "eyeLookOut_R"]] = ax
        vert = "eyeLookUp" if gy > 0 else "eyeLookDown"
        w[_IDX[vert + "_L"]] = w[_IDX[vert + "_R"]] = abs(float(gy))

    @staticmethod
    def _constrain(w: np.ndarray) -> np.ndarray:
        w = np.clip(w, 0, 1)
        for s in ("_L", "_R"):
            b, wide, sq = _IDX["eyeBlink" + s], _IDX["eyeWide" + s], _IDX["eyeSquint" + s]
            w[wide] = min(w[wide], max(0.0, 1.0 - 1.5 * w[b]))  # a closing lid is not wide
            w[sq] = min(w[sq], 1.0 - 0.5 * w[b])
            for p, q in (("mouthSmile", "mouthFrown"), ("browDown", "browOuterUp")):
                i, j = _IDX[p + s], _IDX[q + s]
                excess = w[i] + w[j] - 1.0
                if excess > 0:
                    w[min(i, j, key=lambda k: w[k])] -= excess
            lo, lr = _IDX["eyeLookOut" + s], _IDX["eyeLookIn" + s]
            if w[lo] > 0 and w[lr] > 0:
                w[min(lo, lr, key=lambda k: w[k])] = 0
        # Exclusive directions: the jaw and the mouth go one way at a time.
        for p, q in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
            i, j = _IDX[p], _IDX[q]
            w[min(i, j, key=lambda k: w[k])] = 0
        # mouthClose closes the lips against an open jaw; beyond jawOpen they would intersect.
        w[_IDX["mouthClose"]] = min(w[_IDX["mouthClose"]], w[_IDX["jawOpen"]])
        # A pucker and a wide stretch/smile pull the lip corners in opposite directions.
        pucker = max(w[_IDX["mouthPucker"]], w[_IDX["mouthFunnel"]])
        for s in ("_L", "_R"):
            for n in ("mouthStretch", "mouthSmile"):
                w[_IDX[n + s]] = min(w[_IDX[n + s]], 1.2 - pucker)
        return np.clip(w, 0, 1).astype(np.float32)

    def sample(self) -> ExpressionSample:
        """Returns one random expression with its labels."""
        o, rng = self.options, self.rng
        r = rng.random()
        mix: np.ndarray | None = np.zeros(len(EMOTION_LABELS), np.float32)
        if r < o.p_neutral:
            w = np.abs(0.01 * rng.standard_normal(len(ICT_CHANNELS))).astype(np.float32)
            kind, emotion, intensity = "neutral", "neutral", 0.0
            mix[0] = 1.0
        elif r < o.p_neutral + o.p_emotion:
            emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
            intensity = float(rng.uniform(*o.intensity_range))
            w = self._symmetry(self._emotion(emotion, intensity))
            kind = "emotion"
            mix[EMOTION_LABELS.index(emotion)] = 1.0
        elif r < o.p_neutral + o.p_emotion + o.p_blend:
            e1, e2 = (EMOTIONS[i] for i in rng.choice(len(EMOTIONS), 2, replace=False))
            alpha = float(rng.uniform(0.5, 0.8))
            u = float(rng.uniform(*o.intensity_range))
            w = np.maximum(self._emotion(e1, alpha * u), self._emotion(e2, (1 - alpha) * u))
            w = self._symmetry(w)
            kind, emotion, intensity = "blend", e1, alpha * u
            mix[EMOTION_LABELS.index(e1)] = alpha
            mix[EMOTION_LABELS.index(e2)] = 1 - alpha
        else:
            w = self._symmetry(self._random())
            kind, emotion, intensity, mix = "random", None, None, None
        if kind != "neutral":
            if rng.random() < o.p_gaze:
                self._gaze(w)
            if rng.random() < o.p_blink:
                w[[_IDX["eyeBlink_L"], _IDX["eyeBlink_R"]]] = rng.uniform(0.6, 1.0)
        w = self._constrain(w)
        arkit = (self._i2a @ w).astype(np.float32)
        return ExpressionSample(w, arkit, kind, emotion, intensity, mix)

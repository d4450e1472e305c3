"""Names and orders of the affect outputs: emotions, valence-arousal, the analysed AUs.

One order for the 8 emotions everywhere the learned heads are concerned: FER+'s (neutral,
happiness, surprise, sadness, anger, disgust, fear, contempt), the order of its vote columns.
Other sources map into it with :func:`emotion_index` (the synthetic engine's prototypes use
another order; FER2013's 7 classes yet another).

Valence-arousal targets without VA labels are **derived**, not measured: each emotion sits at a
point of Russell's circumplex (Russell 1980, "A circumplex model of affect"; positions rounded
from the category means AffectNet reports for its manual labels, Mollahosseini et al. 2017,
Fig. 7) and a face's target is the vote-weighted (or intensity-scaled) mean of those points.
They make the head give sensible VA on faces with only categorical labels; real VA labels
(AffectNet, Aff-Wild2) replace them when present.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AU_CLASS_COLUMNS",
    "AU_INTENSITY_COLUMNS",
    "CIRCUMPLEX",
    "EMOTIONS",
    "EMOTION_COLUMNS",
    "HEAD_AUS",
    "VA_COLUMNS",
    "emotion_index",
    "va_from_distribution",
]

#: The 8 emotions, FER+ order.
EMOTIONS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

#: (valence, arousal) in [-1, 1] per emotion of :data:`EMOTIONS` (derived targets, see above).
CIRCUMPLEX = np.array(
    [
        [0.00, 0.00],  # neutral
        [0.75, 0.45],  # happiness
        [0.20, 0.75],  # surprise
        [-0.65, -0.35],  # sadness
        [-0.55, 0.65],  # anger
        [-0.65, 0.35],  # disgust
        [-0.55, 0.75],  # fear
        [-0.45, 0.25],  # contempt
    ],
    np.float32,
)

#: The AUs the learned heads output: py-feat's 20 (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17,
#: 20, 23, 24, 25, 26, 28, 43) and AU45, less AU11, which no label source here carries (the
#: ARKit-to-FACS table has no nasolabial deepener): 20 AUs.
HEAD_AUS = (
    "AU01",
    "AU02",
    "AU04",
    "AU05",
    "AU06",
    "AU07",
    "AU09",
    "AU10",
    "AU12",
    "AU14",
    "AU15",
    "AU17",
    "AU20",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
    "AU28",
    "AU43",
    "AU45",
)

EMOTION_COLUMNS = tuple(EMOTIONS)
VA_COLUMNS = ("valence", "arousal")
AU_CLASS_COLUMNS = tuple(f"{au}_c" for au in HEAD_AUS)  # OpenFace: occurrence
AU_INTENSITY_COLUMNS = tuple(f"{au}_r" for au in HEAD_AUS)  # OpenFace: intensity 0-5


def emotion_index(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Returns, for each name of another emotion order, its index in :data:`EMOTIONS` (-1 for a
    name not in it, e.g. FER+'s 'unknown')."""
    alias = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}
    return np.array(
        [EMOTIONS.index(alias.get(n, n)) if alias.get(n, n) in EMOTIONS else -1 for n in names]
    )


def va_from_distribution(p: np.ndarray, intensity: np.ndarray | float = 1.0) -> np.ndarray:
    """Returns (..., 2) derived (valence, arousal) of (..., 8) emotion distributions in
    :data:`EMOTIONS` order, scaled by ``intensity`` in [0, 1]."""
    p = np.asarray(p, np.float32)
    s = p.sum(-1, keepdims=True)
    va = (p / np.where(s > 0, s, 1)) @ CIRCUMPLEX
    return va * np.asarray(intensity, np.float32)[..., None]

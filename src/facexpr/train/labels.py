"""Label vectors for the analysis heads, read from any dataset's fields.

Every head's target is built from a named field of a shard dataset, converted into the head's
own order and scale, with a mask where a value is missing (never a zero that means "absent"):

========== ======================== =====================================================
head       fields it reads          conversion
========== ======================== =====================================================
emotion    emotion_soft (FER+)      8 emotions, already FER+ order
           emotion_mix (synth)      the engine's order -> FER+ order
           emotion_teacher          FER2013's 7 classes -> FER+ order (contempt masked)
va         valence_arousal          (2,) as is
           any emotion field above  derived circumplex point (:mod:`facexpr.core.affect`);
                                    from emotion_mix scaled by the face's intensity
blendshapes arkit_weights, arkit    52 ARKit weights as is
           arkit_teacher            Blendshape V2's first 51 (tongueOut masked)
aus        aus                      the 31 table AUs -> :data:`~facexpr.core.affect.HEAD_AUS`
           arkit_weights, arkit,    through the ARKit-to-FACS table (teacher: tongueOut 0;
           arkit_teacher            no AU of the table reads it)
========== ======================== =====================================================
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from facexpr.core.affect import EMOTIONS, HEAD_AUS, emotion_index, va_from_distribution
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError

__all__ = ["HEAD_FIELDS", "WIDTHS", "check_labels", "head_target", "mirror_blendshapes"]

#: Output width of each head's target.
WIDTHS = {"emotion": len(EMOTIONS), "va": 2, "blendshapes": len(ARKIT_NAMES), "aus": len(HEAD_AUS)}

_FER2013 = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
_EMOTION_FIELDS = ("emotion_soft", "emotion_mix", "emotion_teacher")

#: The fields each head can be trained from.
HEAD_FIELDS: dict[str, tuple[str, ...]] = {
    "emotion": _EMOTION_FIELDS,
    "va": ("valence_arousal", *_EMOTION_FIELDS),
    "blendshapes": ("arkit_weights", "arkit", "arkit_teacher"),
    "aus": ("aus", "arkit_weights", "arkit", "arkit_teacher"),
}


def _synth_order() -> tuple[str, ...]:
    from facexpr.synth.expressions import EMOTION_LABELS

    return EMOTION_LABELS


def _emotion(field: str, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if field == "emotion_soft":
        return v.astype(np.float32), np.ones(len(EMOTIONS), bool)
    order = _synth_order() if field == "emotion_mix" else _FER2013
    idx = emotion_index(order)
    out = np.zeros(len(EMOTIONS), np.float32)
    ok = np.zeros(len(EMOTIONS), bool)
    for j, k in enumerate(idx):
        if k >= 0:
            out[k] += v[j]
            ok[k] = True
    # A class the source cannot name (FER2013 has no contempt) is masked; the loss renormalises
    # the predicted distribution over the classes the source names.
    return out, ok


def _aus_from_arkit(w: np.ndarray) -> np.ndarray:
    from facexpr.avatars.facs import AU_NAMES, arkit_to_au

    au = arkit_to_au(w)
    return au[[AU_NAMES.index(a) for a in HEAD_AUS]]


def head_target(
    head: str, field: str, value: np.ndarray, intensity: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(target, mask)`` for one sample: the head's (width,) float32 target from the
    field's value and the (width,) bool mask of entries that are labelled.

    Args:
        head: the head.
        field: the dataset field ``value`` comes from.
        value: the field's value.
        intensity: for ``va`` from ``emotion_mix``: the synthetic face's ``emotion_intensity``
            (the dominant emotion's, in [0, 1]); the derived point is scaled by the face's
            overall intensity, ``intensity / max share`` (a blend's dominant emotion carries
            ``alpha * u`` of it), so a faint smile sits near neutral. None: unscaled.

    Raises:
        ConfigError: the head cannot be trained from that field, or the value has the wrong size.
    """
    if head not in HEAD_FIELDS:
        raise ConfigError(f"unknown head '{head}' (known: {', '.join(HEAD_FIELDS)})")
    if field not in HEAD_FIELDS[head]:
        raise ConfigError(
            f"head '{head}' cannot be trained from field '{field}' "
            f"(it reads: {', '.join(HEAD_FIELDS[head])})"
        )
    v = np.asarray(value, np.float32).reshape(-1)
    want = {
        "emotion_soft": 8, "emotion_mix": len(_synth_order()), "emotion_teacher": 7,
        "valence_arousal": 2, "arkit_weights": 52, "arkit": 52, "arkit_teacher": 51, "aus": 31,
    }[field]  # fmt: skip
    if v.shape != (want,):
        raise ConfigError(f"field '{field}' must have {want} values, got {v.shape[0]}")
    if head == "emotion":
        return _emotion(field, v)
    if head == "va":
        if field == "valence_arousal":
            return v, np.ones(2, bool)
        p, _ = _emotion(field, v)
        scale = 1.0
        if field == "emotion_mix" and intensity is not None and v.max() > 0:
            scale = float(np.clip(float(intensity) / float(v.max()), 0.0, 1.0))
        return va_from_distribution(p, scale).astype(np.float32), np.ones(2, bool)
    if head == "blendshapes":
        if field == "arkit_teacher":
            full = np.zeros(52, np.float32)
            full[:51] = v
            ok = np.ones(52, bool)
            ok[51] = False  # tongueOut: Blendshape V2 has no score for it
            return full, ok
        return v, np.ones(52, bool)
    # aus
    if field == "aus":
        from facexpr.avatars.facs import AU_NAMES

        return v[[AU_NAMES.index(a) for a in HEAD_AUS]], np.ones(len(HEAD_AUS), bool)
    w = v if v.shape[0] == 52 else np.concatenate([v, np.zeros(1, np.float32)])
    return _aus_from_arkit(w), np.ones(len(HEAD_AUS), bool)


def _mirror_perm() -> np.ndarray:
    names = list(ARKIT_NAMES)
    perm = []
    for n in names:
        if n.endswith("Left"):
            perm.append(names.index(n[:-4] + "Right"))
        elif n.endswith("Right"):
            perm.append(names.index(n[:-5] + "Left"))
        else:
            perm.append(names.index(n))
    return np.array(perm)


_MIRROR = _mirror_perm()


def mirror_blendshapes(v: np.ndarray) -> np.ndarray:
    """Returns (..., 52) ARKit weights of the mirrored face (Left and Right swapped;
    ``mouthLeft`` and ``mouthRight`` too, since they move the mouth sideways)."""
    return np.asarray(v)[..., _MIRROR]


def check_labels(labels: Mapping[str, str], where: str) -> None:
    """Checks a source's ``labels`` mapping (head -> field).

    Raises:
        ConfigError: an unknown head or a field the head cannot read, naming ``where``.
    """
    for head, field in labels.items():
        if head not in HEAD_FIELDS:
            raise ConfigError(f"{where}: unknown head '{head}' (known: {', '.join(HEAD_FIELDS)})")
        if field not in HEAD_FIELDS[head]:
            raise ConfigError(
                f"{where}: head '{head}' cannot be trained from '{field}' "
                f"(it reads: {', '.join(HEAD_FIELDS[head])})"
            )

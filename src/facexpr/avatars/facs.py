"""ARKit blendshapes to FACS action units, and back.

The table lives in ``resources/arkit_to_facs.json`` with one sentence of FACS justification per AU
(FACS manual, Ekman, Friesen & Hager 2002). It started from ICT FaceKit's shape-to-FACS table and
corrects it where FACS disagrees (AU10 is the upper lip raiser, not the upper-lip shrug; AU26 jaw
drop and AU27 mouth stretch split the jaw opening instead of both being ``jawOpen``; AU25 lips part;
AU23 lip tightener vs AU24 lip pressor; AU43 eyes closed vs AU45 blink).

The mapping, per AU and per side of the face::

    s_side = bias + sum_k coef_k * w_k          (left-side shapes on the left, right on the right,
                                                 midline shapes such as jawOpen on both)
    intensity = 5 * clip(max(s_left, s_right), 0, 1)

so intensities are on the FACS scale 0-5 (A=1 trace ... E=5 maximum, 0 absent). Left and right are
combined with the **maximum**, not the mean: FACS scores a unilateral action (``R12``) at the
intensity of the side that acts, so a one-sided smile at full strength is AU12 E, as a FACS coder
would score it. :func:`au_to_arkit` inverts the table to draw ARKit weights from AU prototypes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError

__all__ = [
    "AU_DESCRIPTIONS",
    "AU_NAMES",
    "FacsTable",
    "arkit_to_au",
    "au_to_arkit",
    "facs_table",
]

_RESOURCE = "arkit_to_facs.json"


@dataclass(frozen=True, slots=True)
class FacsTable:
    """The ARKit-to-FACS table as matrices.

    Attributes:
        names: AU codes ('AU01', ...), in table order.
        descriptions: FACS names ('inner brow raiser', ...), same order.
        left: (n_aus, 52) float32 coefficients read on the subject's left side.
        right: (n_aus, 52) float32 coefficients read on the subject's right side.
        bias: (n_aus,) float32 added to each side's sum before clipping.
        why: one sentence of FACS justification per AU.
    """

    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    left: np.ndarray
    right: np.ndarray
    bias: np.ndarray
    why: tuple[str, ...]


@cache
def facs_table() -> FacsTable:
    """Returns the ARKit-to-FACS table loaded from the package resource (cached)."""
    text = resources.files("facexpr.avatars").joinpath("resources", _RESOURCE).read_text("utf-8")
    data = json.loads(text)
    index = {n: i for i, n in enumerate(ARKIT_NAMES)}
    entries = data["aus"]
    n = len(entries)
    left = np.zeros((n, len(ARKIT_NAMES)), np.float32)
    right = np.zeros_like(left)
    bias = np.zeros(n, np.float32)
    for i, e in enumerate(entries):
        bias[i] = float(e.get("bias", 0.0))
        for key, coef in e["shapes"].items():
            if key.endswith("*"):
                base = key[:-1]
                left[i, index[base + "Left"]] += coef
                right[i, index[base + "Right"]] += coef
            else:
                left[i, index[key]] += coef
                right[i, index[key]] += coef
    for m in (left, right, bias):
        m.setflags(write=False)
    return FacsTable(
        names=tuple(e["au"] for e in entries),
        descriptions=tuple(e["name"] for e in entries),
        left=left,
        right=right,
        bias=bias,
        why=tuple(e["why"] for e in entries),
    )


AU_NAMES: tuple[str, ...] = facs_table().names
AU_DESCRIPTIONS: dict[str, str] = dict(zip(AU_NAMES, facs_table().descriptions, strict=True))


def arkit_to_au(weights: np.ndarray) -> np.ndarray:
    """Returns FACS AU intensities for ARKit blendshape weights.

    Args:
        weights: (..., 52) ARKit weights in [0, 1], in :data:`facexpr.core.arkit.ARKIT_NAMES` order.

    Returns:
        (..., len(AU_NAMES)) float32 intensities on the FACS 0-5 scale (A=1 ... E=5, 0 = absent),
        in :data:`AU_NAMES` order.

    Raises:
        ConfigError: if the last axis is not 52.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.shape[-1:] != (len(ARKIT_NAMES),):
        raise ConfigError(f"arkit_to_au: weights must have shape (..., 52), got {w.shape}")
    t = facs_table()
    s = np.maximum(w @ t.left.T, w @ t.right.T) + t.bias
    return (5.0 * np.clip(s, 0.0, 1.0)).astype(np.float32)


def _parse_au_key(key: str) -> tuple[int, Literal["both", "L", "R"]]:
    t = facs_table()
    base, side = key, "both"
    if key.endswith(("_L", "_R")):
        base, side = key[:-2], key[-1]
    if base not in t.names:
        raise ConfigError(
            f"au_to_arkit: unknown AU '{key}'; expected one of {', '.join(t.names)}, "
            "optionally with a side suffix '_L' or '_R'"
        )
    return t.names.index(base), side  # type: ignore[return-value]


def au_to_arkit(aus: Mapping[str, float]) -> np.ndarray:
    """Returns ARKit weights that produce the given AU intensities (the table's inverse).

    Each AU at intensity ``i`` asks its side sum to reach ``i / 5 - bias``; its shapes with positive
    coefficients ``c_k`` get weights proportional to them, ``w_k = min(1, L * c_k / max(c))``,
    with ``L`` solved so the sum is reached (the minimum-norm split, clipped to [0, 1]). Where two
    AUs drive the same shape the larger weight wins; shapes with negative coefficients stay 0.
    Round trips are exact for one AU (AU12 at 3 -> mouthSmile 0.6 -> AU12 at 3).

    Args:
        aus: AU code -> intensity on the FACS 0-5 scale. A code may end in ``_L`` or ``_R`` for a
            unilateral action (FACS ``L12`` / ``R12``), which sets only that side's shapes.

    Returns:
        (52,) float32 ARKit weights in [0, 1].

    Raises:
        ConfigError: for an unknown AU code or an intensity outside [0, 5].
    """
    t = facs_table()
    out = np.zeros(len(ARKIT_NAMES), np.float32)
    for key, intensity in aus.items():
        i, side = _parse_au_key(key)
        if not 0.0 <= float(intensity) <= 5.0:
            raise ConfigError(f"au_to_arkit: intensity of {key} must be in [0, 5], got {intensity}")
        if intensity == 0:
            continue
        mats = {"both": (t.left, t.right), "L": (t.left,), "R": (t.right,)}[side]
        for m in mats:
            coef = np.where(m[i] > 0, m[i], 0.0).astype(np.float64)
            target = float(intensity) / 5.0 - float(t.bias[i])
            direction = coef / coef.max()
            lo, hi = 0.0, float(1.0 / direction[direction > 0].min())
            for _ in range(50):  # bisection: the clipped sum grows monotonically with L
                mid = 0.5 * (lo + hi)
                lo, hi = (
                    (mid, hi) if coef @ np.minimum(1.0, mid * direction) < target else (lo, mid)
                )
            w = np.minimum(1.0, hi * direction).astype(np.float32)
            out = np.maximum(out, w)
    return out

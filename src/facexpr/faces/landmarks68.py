"""The 68-point iBUG / Multi-PIE landmarks (OpenFace, dlib order) from the 468-point Face Mesh.

Each of the 68 points is one Face Mesh vertex; the table is ``resources/mesh_to_ibug68.json``
(where it comes from and how it was checked: ``resources/README.md``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from facexpr.core.errors import InputError, ModelError

_RESOURCE = Path(__file__).resolve().parent / "resources" / "mesh_to_ibug68.json"

JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)
LEFT_BROW = slice(22, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)


@cache
def mesh_to_ibug68() -> np.ndarray:
    """Returns the (68,) int64 Face Mesh vertex index of each iBUG landmark."""
    try:
        idx = np.asarray(json.loads(_RESOURCE.read_text())["indices"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{_RESOURCE}: cannot read the landmark map ({exc})") from exc
    if idx.shape != (68,) or idx.min() < 0 or idx.max() >= 468:
        raise ModelError(f"{_RESOURCE}: expected 68 indices in [0, 468), got {idx.shape}")
    return idx


def landmarks68(mesh: np.ndarray) -> np.ndarray:
    """Returns the (68, 2) float32 iBUG landmarks (px) of a (468, 2|3) Face Mesh."""
    if mesh.ndim != 2 or mesh.shape[0] != 468 or mesh.shape[1] < 2:
        raise InputError(None, f"mesh must be (468, 2) or (468, 3), got {mesh.shape}")
    return np.ascontiguousarray(mesh[mesh_to_ibug68(), :2], dtype=np.float32)


def eye_centres(lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns the subject's right and left eye centres, (2,) px: means of points 36-41, 42-47."""
    return lm68[RIGHT_EYE].mean(0), lm68[LEFT_EYE].mean(0)

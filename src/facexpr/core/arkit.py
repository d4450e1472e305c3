"""ARKit blendshape names and the ICT FaceKit rig channels that realise them.

The 52 ARKit names are an Enum (as MediaPipe's ``Blendshapes``), in MediaPipe's order (ARKit names
sorted by region) with ``tongueOut`` last. ICT FaceKit names its shapes ARKit-style with ``_L`` /
``_R`` suffixes, splits ``browInnerUp`` and ``cheekPuff`` into left and right, and has no
``tongueOut``: its 53 expression channels are :data:`ICT_CHANNELS`.
"""

from __future__ import annotations

import enum
import re

import numpy as np


class ARKit(enum.Enum):
    """The 52 ARKit face blendshapes (``ARFaceAnchor.BlendShapeLocation``), values in [0, 1]."""

    browDownLeft = "browDownLeft"
    browDownRight = "browDownRight"
    browInnerUp = "browInnerUp"
    browOuterUpLeft = "browOuterUpLeft"
    browOuterUpRight = "browOuterUpRight"
    cheekPuff = "cheekPuff"
    cheekSquintLeft = "cheekSquintLeft"
    cheekSquintRight = "cheekSquintRight"
    eyeBlinkLeft = "eyeBlinkLeft"
    eyeBlinkRight = "eyeBlinkRight"
    eyeLookDownLeft = "eyeLookDownLeft"
    eyeLookDownRight = "eyeLookDownRight"
    eyeLookInLeft = "eyeLookInLeft"
    eyeLookInRight = "eyeLookInRight"
    eyeLookOutLeft = "eyeLookOutLeft"
    eyeLookOutRight = "eyeLookOutRight"
    eyeLookUpLeft = "eyeLookUpLeft"
    eyeLookUpRight = "eyeLookUpRight"
    eyeSquintLeft = "eyeSquintLeft"
    eyeSquintRight = "eyeSquintRight"
    eyeWideLeft = "eyeWideLeft"
    eyeWideRight = "eyeWideRight"
    jawForward = "jawForward"
    jawLeft = "jawLeft"
    jawOpen = "jawOpen"
    jawRight = "jawRight"
    mouthClose = "mouthClose"
    mouthDimpleLeft = "mouthDimpleLeft"
    mouthDimpleRight = "mouthDimpleRight"
    mouthFrownLeft = "mouthFrownLeft"
    mouthFrownRight = "mouthFrownRight"
    mouthFunnel = "mouthFunnel"
    mouthLeft = "mouthLeft"
    mouthLowerDownLeft = "mouthLowerDownLeft"
    mouthLowerDownRight = "mouthLowerDownRight"
    mouthPressLeft = "mouthPressLeft"
    mouthPressRight = "mouthPressRight"
    mouthPucker = "mouthPucker"
    mouthRight = "mouthRight"
    mouthRollLower = "mouthRollLower"
    mouthRollUpper = "mouthRollUpper"
    mouthShrugLower = "mouthShrugLower"
    mouthShrugUpper = "mouthShrugUpper"
    mouthSmileLeft = "mouthSmileLeft"
    mouthSmileRight = "mouthSmileRight"
    mouthStretchLeft = "mouthStretchLeft"
    mouthStretchRight = "mouthStretchRight"
    mouthUpperUpLeft = "mouthUpperUpLeft"
    mouthUpperUpRight = "mouthUpperUpRight"
    noseSneerLeft = "noseSneerLeft"
    noseSneerRight = "noseSneerRight"
    tongueOut = "tongueOut"


ARKIT_NAMES: tuple[str, ...] = tuple(m.value for m in ARKit)

# The 53 ICT FaceKit expression shapes listed in its vertex_indices.json, in the order of the
# upstream model (and of shared/assets/ict-facekit/ict_facekit.npz).
ICT_CHANNELS: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip

_SUFFIX = re.compile(r"_(L|R)$")


def ict_to_arkit_name(name: str) -> str:
    """Returns the ARKit name an ICT channel drives ('mouthSmile_L' -> 'mouthSmileLeft').

    The split channels 'browInnerUp_L/_R' and 'cheekPuff_L/_R' map to 'browInnerUp' and
    'cheekPuff'.
    """
    base = _SUFFIX.sub("", name)
    if base in ("browInnerUp", "cheekPuff"):
        return base
    m = _SUFFIX.search(name)
    if m is None:
        return name
    return base + ("Left" if m.group(1) == "L" else "Right")


def ict_to_arkit_matrix() -> np.ndarray:
    """Returns the (52, 53) float32 matrix mapping ICT channel weights to ARKit weights.

    Split channels are averaged; ``tongueOut`` has no ICT source and stays 0.
    """
    m = np.zeros((len(ARKIT_NAMES), len(ICT_CHANNELS)), np.float32)
    index = {n: i for i, n in enumerate(ARKIT_NAMES)}
    for j, ch in enumerate(ICT_CHANNELS):
        m[index[ict_to_arkit_name(ch)], j] = 1.0
    m /= np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    return m


def arkit_to_ict_matrix() -> np.ndarray:
    """Returns the (53, 52) float32 matrix mapping ARKit weights to ICT channel weights.

    'browInnerUp' and 'cheekPuff' drive both their ICT halves equally.
    """
    m = np.zeros((len(ICT_CHANNELS), len(ARKIT_NAMES)), np.float32)
    index = {n: i for i, n in enumerate(ARKIT_NAMES)}
    for j, ch in enumerate(ICT_CHANNELS):
        m[j, index[ict_to_arkit_name(ch)]] = 1.0
    return m

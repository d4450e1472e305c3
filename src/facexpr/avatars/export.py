"""Export per-frame rig weights: Live Link Face CSV, JSON, glTF animation and a preview video.

Weights may come as 52 ARKit channels (:data:`facexpr.core.arkit.ARKIT_NAMES` order) or as the 53
ICT FaceKit channels (:data:`facexpr.core.arkit.ICT_CHANNELS`); each writer converts what it needs
with the matrices of :mod:`facexpr.core.arkit`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES, ICT_CHANNELS, arkit_to_ict_matrix, ict_to_arkit_matrix
from facexpr.core.errors import ConfigError, InputError
from facexpr.io._files import atomic_write

if TYPE_CHECKING:
    from facexpr.avatars.avatar import Avatar
    from facexpr.avatars.rig import Rig

log = logging.getLogger(__name__)

__all__ = [
    "LIVE_LINK_COLUMNS",
    "LIVE_LINK_SHAPES",
    "live_link_timecode",
    "read_live_link_csv",
    "to_arkit",
    "to_ict",
    "weights_for_channels",
    "write_gltf_animation",
    "write_json",
    "write_live_link_csv",
    "write_preview_video",
]

# Live Link Face's CSV columns after Timecode and BlendShapeCount: the 52 ARKit shapes,
# capitalised, in Apple's ARFaceAnchor.BlendShapeLocation order as Epic's
# ELiveLinkFaceBlendshape enum lists them, then 9 head and eye rotations (61 values).
LIVE_LINK_SHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)  # fmt: skip
LIVE_LINK_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
LIVE_LINK_COLUMNS: tuple[str, ...] = (
    "Timecode", "BlendShapeCount", *LIVE_LINK_SHAPES, *LIVE_LINK_ROTATIONS,
)  # fmt: skip
_ARKIT_INDEX = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
_LL_TO_ARKIT = np.array([_ARKIT_INDEX[n.lower()] for n in LIVE_LINK_SHAPES])


def _as_frames(weights: np.ndarray, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] not in (len(ARKIT_NAMES), len(ICT_CHANNELS)):
        raise ConfigError(f"{what}: weights must be (T, 52) ARKit or (T, 53) ICT, got {w.shape}")
    if w.shape[0] == 0:
        raise ConfigError(f"{what}: no frames")
    return w


def to_arkit(weights: np.ndarray) -> np.ndarray:
    """Returns (T, 52) float32 ARKit weights of (T, 52) ARKit or (T, 53) ICT weights."""
    w = _as_frames(weights, "to_arkit")
    return w if w.shape[1] == len(ARKIT_NAMES) else w @ ict_to_arkit_matrix().T


def to_ict(weights: np.ndarray) -> np.ndarray:
    """Returns (T, 53) float32 ICT weights of (T, 52) ARKit or (T, 53) ICT weights."""
    w = _as_frames(weights, "to_ict")
    return w if w.shape[1] == len(ICT_CHANNELS) else w @ arkit_to_ict_matrix().T


def live_link_timecode(t: float, fps: float) -> str:
    """Returns Live Link Face's timecode ``HH:MM:SS:FF.mmm`` of ``t`` seconds.

    ``FF`` counts frames at the nominal (rounded) rate within the second and ``.mmm`` is the
    fraction of a frame in thousandths, as Live Link Face writes its sub-frame.
    """
    nominal = max(1, round(fps))
    whole = math.floor(t + 1e-9)
    frames = (t - whole) * nominal
    ff = math.floor(frames + 1e-6)
    sub = min(999, round((frames - ff) * 1000))
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub:03d}"


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[IO[str]]:
    """Opens ``path`` for writing text atomically (a unique temp file renamed on success)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
            yield fh
    except OSError as e:
        raise InputError(path, f"cannot write ({e.strerror or e})") from None


def write_live_link_csv(
    path: str | Path,
    weights: np.ndarray,
    *,
    fps: float = 60.0,
    head_pose: np.ndarray | None = None,
    start_time: float = 0.0,
) -> Path:
    """Writes weights as a Live Link Face CSV (one row per frame), which Unreal imports.

    Args:
        path: output .csv.
        weights: (T, 52) ARKit or (T, 53) ICT weights in [0, 1].
        fps: frame rate, Hz.
        head_pose: optional (T, 3) pitch, yaw, roll in degrees (facexpr's convention); written
            as HeadPitch / HeadYaw / HeadRoll in radians. Eye rotations are written as 0.
        start_time: time of the first frame, seconds (sets the first timecode).

    Returns:
        The written path.

    Raises:
        ConfigError: bad shapes or fps.
    """
    w = to_arkit(weights)
    if fps <= 0:
        raise ConfigError(f"write_live_link_csv: fps must be > 0, got {fps}")
    rot = np.zeros((len(w), len(LIVE_LINK_ROTATIONS)), np.float32)
    if head_pose is not None:
        hp = np.asarray(head_pose, np.float32)
        if hp.shape != (len(w), 3):
            raise ConfigError(
                f"write_live_link_csv: head_pose must be ({len(w)}, 3) degrees, got {hp.shape}"
            )
        rad = np.deg2rad(hp)
        rot[:, 0], rot[:, 1], rot[:, 2] = rad[:, 1], rad[:, 0], rad[:, 2]
    path = Path(path)
    with _writing(path) as fh:
        out = csv.writer(fh)
        out.writerow(LIVE_LINK_COLUMNS)
        n_values = len(LIVE_LINK_SHAPES) + len(LIVE_LINK_ROTATIONS)
        for i in range(len(w)):
            values = [f"{v:.6f}" for v in w[i, _LL_TO_ARKIT]] + [f"{v:.6f}" for v in rot[i]]
            out.writerow([live_link_timecode(start_time + i / fps, fps), n_values, *values])
    return path


def read_live_link_csv(path: str | Path) -> np.ndarray:
    """Returns the (T, 52) float32 ARKit weights of a Live Link Face CSV.

    Raises:
        InputError: the file is missing, lacks a Live Link Face header or holds a value that is
            not a finite number (the message names the row and column).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot read as CSV ({e})") from None
    if not rows or rows[0][:2] != ["Timecode", "BlendShapeCount"]:
        raise InputError(
            path, "not a Live Link Face CSV (header must start Timecode,BlendShapeCount)"
        )
    header = {n.lower(): i for i, n in enumerate(rows[0])}
    missing = [n for n in ARKIT_NAMES if n.lower() not in header]
    if missing:
        raise InputError(path, f"Live Link Face CSV lacks columns {missing[:3]}...")
    cols = [header[n.lower()] for n in ARKIT_NAMES]
    out = np.zeros((len(rows) - 1, len(cols)), np.float32)
    for i, r in enumerate(rows[1:]):
        for j, c in enumerate(cols):
            cell = r[c] if c < len(r) else ""
            try:
                out[i, j] = v = float(cell)
            except ValueError:
                v = None
            if v is None or not math.isfinite(v):
                raise InputError(
                    path, f"row {i + 1}, column '{rows[0][c]}': {cell!r} is not a finite number"
                )
    return out


def write_json(
    path: str | Path,
    weights: np.ndarray,
    *,
    fps: float = 30.0,
    channels: Literal["arkit", "ict"] = "arkit",
) -> Path:
    """Writes weights as JSON ``{"format", "fps", "names", "frames": [[...], ...]}``.

    Args:
        path: output .json.
        weights: (T, 52) ARKit or (T, 53) ICT weights.
        fps: frame rate, Hz.
        channels: write ARKit names (52) or ICT channel names (53).

    Returns:
        The written path.
    """
    if fps <= 0:
        raise ConfigError(f"write_json: fps must be > 0, got {fps}")
    if channels not in ("arkit", "ict"):
        raise ConfigError(f"write_json: channels must be 'arkit' or 'ict', got {channels!r}")
    w = to_arkit(weights) if channels == "arkit" else to_ict(weights)
    names = ARKIT_NAMES if channels == "arkit" else ICT_CHANNELS
    data: dict[str, Any] = {
        "format": "facexpr-animation",
        "version": 1,
        "fps": float(fps),
        "names": list(names),
        "frames": np.round(w.astype(np.float64), 6).tolist(),
    }
    path = Path(path)
    with _writing(path) as fh:
        fh.write(json.dumps(data))
    return path


def weights_for_channels(channel_names: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """Returns (T, C) weights for a rig's channels of (T, 52) ARKit or (T, 53) ICT weights: ICT
    channels as they are, any other rig through ARKit names (channels without one get 0)."""
    if tuple(channel_names) == ICT_CHANNELS:
        return to_ict(weights)
    from facexpr.avatars.rig import arkit_index

    m = np.zeros((len(channel_names), len(ARKIT_NAMES)), np.float32)
    for c, name in enumerate(channel_names):
        j = arkit_index(name)
        if j is not None:
            m[c, j] = 1.0
    if not m.any():
        log.warning(
            "none of the rig's %d channels has an ARKit name: the animation leaves it still",
            len(channel_names),
        )
    return to_arkit(weights) @ m.T


def write_gltf_animation(
    path: str | Path,
    rig: Rig,
    weights: np.ndarray,
    *,
    fps: float = 30.0,
    avatar: Avatar | None = None,
) -> Path:
    """Writes the rig as glTF with the weights as a morph-target ``weights`` animation.

    Wraps :func:`facexpr.avatars.gltf.save_gltf`; one keyframe per frame.

    Args:
        path: output .glb or .gltf.
        rig: the rig whose morph targets the weights drive (ICT channels are used as they are;
            other rigs get the ARKit weights of their ARKit-named channels).
        weights: (T, 52) ARKit or (T, 53) ICT weights.
        fps: frame rate, Hz.
        avatar: the avatar ``rig`` belongs to, if any: its identity's neutral face is written,
            and its texture (a captured person) on its look's skin materials, hidden materials
            left out (as :func:`facexpr.avatars.gltf.save_avatar_gltf`).

    Returns:
        The written path.
    """
    from facexpr.avatars.gltf import save_gltf

    if fps <= 0:
        raise ConfigError(f"write_gltf_animation: fps must be > 0, got {fps}")
    anim = weights_for_channels(rig.channel_names, weights)
    if avatar is None or avatar.texture is None:
        save_gltf(rig, Path(path), animation=anim, fps=fps)
    else:
        save_gltf(
            rig.with_neutral(avatar.base), Path(path), animation=anim, fps=fps,
            texture=avatar.texture, textured=tuple(avatar.look.skin_materials),
            skip=tuple(avatar.look.hidden),
        )  # fmt: skip
    return Path(path)


def write_preview_video(
    path: str | Path,
    avatar: Avatar,
    weights: np.ndarray,
    *,
    fps: float = 30.0,
    size: int = 256,
    pose: np.ndarray | None = None,
    source_video: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Writes an H.264 mp4 of the avatar animated by the weights, beside the source video if given.

    Args:
        path: output .mp4.
        avatar: the avatar to render.
        weights: (T, 52) ARKit or (T, 53) ICT weights.
        fps: frame rate of the weights and the video, Hz.
        size: rendered avatar height and width, px.
        pose: optional (T, 3) head pitch, yaw, roll in degrees.
        source_video: a video to show on the left, resized to ``size`` px high; its frames are
            taken in order, one per weight frame (it should have the same frame rate).
        progress: show a tqdm bar on stderr.

    Returns:
        The written path.

    Raises:
        ConfigError: bad shapes or options.
        InputError: the source video cannot be read.
    """
    import cv2

    from facexpr.avatars.render import Renderer, RenderOptions
    from facexpr.io.video import VideoReader, VideoWriter

    w = weights_for_channels(avatar.channel_names, weights)
    if size < 16 or size % 2:
        raise ConfigError(f"write_preview_video: size must be an even number >= 16, got {size}")
    if pose is not None and np.asarray(pose).shape != (len(w), 3):
        raise ConfigError(f"write_preview_video: pose must be ({len(w)}, 3), got {np.shape(pose)}")
    reader = VideoReader(source_video) if source_video is not None else None
    src_frames = iter(reader) if reader is not None else None
    it: Sequence[int] | Any = range(len(w))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="preview", unit="frame")
    with (
        Renderer(RenderOptions(width=size, height=size)) as renderer,
        VideoWriter(path, fps) as out,
    ):
        try:
            for i in it:
                p = None if pose is None else np.asarray(pose[i], np.float32)
                img = renderer.render(avatar, w[i], pose=p).image
                if src_frames is not None:
                    frame = next(src_frames, None)
                    if frame is None:  # the source ran out: black on the left
                        left = np.zeros_like(img)
                    else:
                        arr = frame.image
                        width = round(arr.shape[1] * size / arr.shape[0] / 2) * 2
                        left = cv2.resize(arr, (width, size), interpolation=cv2.INTER_AREA)
                    img = np.concatenate([left, img], axis=1)
                out.write(img)
        finally:
            if reader is not None:
                reader.close()
    return Path(path)

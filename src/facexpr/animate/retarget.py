"""From an analysis table to avatar animation: per-frame ARKit weights and head pose of one face.

This is the geometric path (blendshapes fitted by ``facexpr analyze --blendshapes fit``, ARKit
weights applied to any avatar whose rig has ARKit-named channels). The learned animator of
FreeAvatar (expression embedding -> rig, with identity injection) will plug in here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facexpr.analyze.table import ExpressionTable
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError


@dataclass(frozen=True)
class Track:
    """The animation of one face.

    Attributes:
        weights: (T, 52) float32 ARKit weights in [0, 1]; frames without the face hold the last
            seen weights (neutral before the first).
        pose: (T, 3) float32 pitch, yaw, roll in degrees, held the same way.
        timestamps: (T,) float64 seconds of every frame of the source.
        fps: frame rate estimated from the timestamps.
        present: (T,) bool, the face was found in that frame.
    """

    weights: np.ndarray
    pose: np.ndarray
    timestamps: np.ndarray
    fps: float
    present: np.ndarray


def track_from_table(table: ExpressionTable, *, face_id: int | None = None) -> Track:
    """Returns the per-frame weights and pose of one face of an analysed video.

    Args:
        table: a table with blendshape columns (``analyze --blendshapes fit``) of one input.
        face_id: the face to follow (default: the one present in most frames).

    Raises:
        ConfigError: no blendshape columns, several inputs, or no such face.
    """
    df = table.data
    missing = [c for c in C.BLENDSHAPES if c not in df.columns]
    if missing:
        raise ConfigError(
            "the table has no blendshape columns: analyse with --blendshapes fit first"
        )
    if df[C.INPUT].nunique() > 1:
        raise ConfigError(f"the table holds {df[C.INPUT].nunique()} inputs; animate one at a time")
    faces = df[df[C.SUCCESS] == 1]
    if faces.empty:
        raise ConfigError("no face in the table to animate")
    if face_id is None:
        face_id = int(faces[C.FACE_ID].value_counts().idxmax())
    elif face_id not in set(faces[C.FACE_ID]):
        raise ConfigError(
            f"no face_id {face_id} in the table (has {sorted(set(faces[C.FACE_ID]))})"
        )
    frames = np.sort(df[C.FRAME].unique())
    ts = df.groupby(C.FRAME)[C.TIMESTAMP].first().reindex(frames).to_numpy(np.float64)
    mine = faces[faces[C.FACE_ID] == face_id].set_index(C.FRAME)
    w = np.zeros((len(frames), len(C.BLENDSHAPES)), np.float32)
    pose = np.zeros((len(frames), 3), np.float32)
    present = np.isin(frames, mine.index)
    last_w, last_p = w[0], pose[0]
    for i, f in enumerate(frames):
        if present[i]:
            last_w = mine.loc[f, list(C.BLENDSHAPES)].to_numpy(np.float32)
            last_p = np.nan_to_num(mine.loc[f, list(C.POSE_DEG)].to_numpy(np.float32))
        w[i], pose[i] = last_w, last_p
    fps = 1.0 / float(np.median(np.diff(ts))) if len(ts) > 1 else 30.0
    return Track(weights=w, pose=pose, timestamps=ts, fps=fps, present=present)

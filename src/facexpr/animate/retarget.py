"""From an analysis table to avatar animation: per-frame ARKit weights and head pose of one face.

This is the geometric path (blendshapes fitted by ``facexpr analyze --blendshapes fit``, ARKit
weights applied to any avatar whose rig has ARKit-named channels). The learned animator of
FreeAvatar (expression embedding -> rig, with identity injection) will plug in here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facexpr.analyze.table import ExpressionTable
from facexpr.core import columns as C
from facexpr.core.errors import InputError


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


# Frame rates outside this range come from broken timestamps, not from a camera.
FPS_RANGE = (1e-3, 10_000.0)
# Fitted weights lie in [0, 1]; a little beyond is rounding, clipped; further is an error.
_WEIGHT_SLACK = 1e-3


def _numeric(df: pd.DataFrame, col: str, fail) -> np.ndarray:
    """Returns a column as float64, failing on the first cell that is not a number."""
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() & raw.notna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fail(f"column '{col}', row {i + 1}: {raw.iloc[i]!r} is not a number")
    return values.to_numpy(np.float64)


def track_from_table(
    table: ExpressionTable, *, face_id: int | None = None, source: str | Path | None = None
) -> Track:
    """Returns the per-frame weights and pose of one face of an analysed video.

    Every value used is checked: rows are counted from 1 after the header (row ``r`` of a CSV
    is its line ``r + 1``).

    Args:
        table: a table with blendshape columns (``analyze --blendshapes fit``) of one input.
        face_id: the face to follow (default: the one present in most frames).
        source: the file the table was read from, named in errors.

    Raises:
        InputError: no blendshape columns, several inputs, no such face, a cell that is not a
            number, weights outside [0, 1], timestamps that are not finite or do not increase
            with the frame number, or two rows for one face in one frame.
    """

    def fail(problem: str):
        raise InputError(source, problem)

    df = table.data
    if any(c not in df.columns for c in C.BLENDSHAPES):
        fail("the table has no blendshape columns: analyse with --blendshapes fit first")
    missing = [c for c in (C.INPUT, C.FRAME, C.FACE_ID, C.TIMESTAMP, C.SUCCESS) if c not in df]
    if missing:
        fail(f"the table lacks the column(s) {', '.join(missing)}")
    if df[C.INPUT].nunique() > 1:
        fail(f"the table holds {df[C.INPUT].nunique()} inputs; animate one at a time")
    frame = _numeric(df, C.FRAME, fail)
    face = _numeric(df, C.FACE_ID, fail)
    ts_all = _numeric(df, C.TIMESTAMP, fail)
    success = _numeric(df, C.SUCCESS, fail)
    for col, v in ((C.FRAME, frame), (C.FACE_ID, face), (C.SUCCESS, success)):
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(f"column '{col}', row {i + 1}: {df[col].iloc[i]!r} is not a whole number")
    if not np.isfinite(ts_all).all():
        i = int(np.flatnonzero(~np.isfinite(ts_all))[0])
        fail(f"column '{C.TIMESTAMP}', row {i + 1}: {df[C.TIMESTAMP].iloc[i]!r} is not a finite "
             "time in seconds")  # fmt: skip
    rows = np.flatnonzero(success == 1)
    if rows.size == 0:
        fail("no face in the table to animate")
    ids = face[rows].astype(np.int64)
    if face_id is None:
        values, counts = np.unique(ids, return_counts=True)
        face_id = int(values[np.argmax(counts)])
    elif face_id not in set(ids.tolist()):
        fail(f"no face_id {face_id} in the table (has {sorted(set(ids.tolist()))})")
    rows = rows[ids == face_id]
    frames, first = np.unique(frame, return_index=True)
    ts = ts_all[first]
    step = np.diff(ts)
    if (step <= 0).any():
        k = int(np.flatnonzero(step <= 0)[0])
        fail(
            f"column '{C.TIMESTAMP}': frames {int(frames[k])} and {int(frames[k + 1])} are at "
            f"{ts[k]:g} and {ts[k + 1]:g} s; timestamps must increase with the frame number"
        )
    fps = 1.0 / float(np.median(step)) if len(ts) > 1 else 30.0
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        fail(f"column '{C.TIMESTAMP}': the timestamps give {fps:g} frames per second, outside "
             f"[{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}]")  # fmt: skip
    mine_frames = frame[rows]
    if len(np.unique(mine_frames)) != len(mine_frames):
        uniq, counts = np.unique(mine_frames, return_counts=True)
        fail(f"frame {int(uniq[counts > 1][0])} has several rows for face_id {face_id}")
    weights = np.stack([_numeric(df, c, fail)[rows] for c in C.BLENDSHAPES], axis=1)
    bad = ~np.isfinite(weights) | (weights < -_WEIGHT_SLACK) | (weights > 1 + _WEIGHT_SLACK)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        value = float(weights[r, c])
        fail(f"column '{C.BLENDSHAPES[c]}', row {int(rows[r]) + 1}: weight {value!r} is not in "
             "[0, 1]")  # fmt: skip
    pose_rows = np.zeros((len(rows), 3))
    for k, col in enumerate(C.POSE_DEG):
        if col in df.columns:
            v = _numeric(df, col, fail)[rows]
            if np.isinf(v).any():
                i = int(rows[np.flatnonzero(np.isinf(v))[0]])
                fail(f"column '{col}', row {i + 1}: {df[col].iloc[i]!r} is not a finite angle")
            pose_rows[:, k] = np.nan_to_num(v)  # no pose estimate: face the camera
    # Frames without the face hold the last seen values (neutral before the first).
    at = np.searchsorted(frames, mine_frames)
    present = np.zeros(len(frames), bool)
    present[at] = True
    last = np.full(len(frames), -1)
    last[at] = np.arange(len(rows))
    last = np.maximum.accumulate(last)
    seen = (last >= 0)[:, None]
    w = np.where(seen, np.clip(weights, 0.0, 1.0)[np.maximum(last, 0)], 0.0).astype(np.float32)
    pose = np.where(seen, pose_rows[np.maximum(last, 0)], 0.0).astype(np.float32)
    return Track(weights=w, pose=pose, timestamps=ts, fps=fps, present=present)


def track_from_file(path: str | Path, *, face_id: int | None = None) -> Track:
    """Returns the track of one face of a table file (.csv, .parquet or .jsonl).

    Raises:
        InputError: the file cannot be read as a table or its values cannot be animated (see
            :func:`track_from_table`); the message names the file.
        ConfigError: unknown table suffix.
    """
    path = Path(path)
    return track_from_table(ExpressionTable.from_file(path), face_id=face_id, source=path)

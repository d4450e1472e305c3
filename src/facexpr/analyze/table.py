"""The result table users get: one row per (input, frame, face).

:class:`ExpressionTable` wraps (does not subclass) a pandas DataFrame, so its metadata cannot be
lost by a pandas operation, and offers the column groups (``.landmarks``, ``.pose``, ...) by name.
A frame without a face is one row with ``success=0`` and NaN measurements, as in OpenFace, so time
series stay aligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from facexpr.core import columns as C
from facexpr.core.errors import ConfigError
from facexpr.core.types import FaceResult, FrameResult
from facexpr.io.sources import printable_path
from facexpr.io.tables import TableFormat, format_from_path, read_table, write_table


def frame_rows(result: FrameResult, groups: tuple[str, ...] = C.DEFAULT_GROUPS) -> np.ndarray:
    """Returns the numeric rows of one frame: (max(1, n_faces), n_columns - 1) float64.

    The ``input`` column (a string) is left out; :func:`frames_to_dataframe` adds it.
    """
    cols = C.columns_for(groups)[1:]
    pos = {c: i for i, c in enumerate(cols)}
    n = max(1, len(result.faces))
    out = np.full((n, len(cols)), np.nan)
    out[:, pos[C.FRAME]] = result.index + 1
    out[:, pos[C.TIMESTAMP]] = result.timestamp
    if "face" in groups:
        out[:, pos[C.FRAME_SIZE[0]]] = result.width
        out[:, pos[C.FRAME_SIZE[1]]] = result.height
    if not result.faces:
        out[0, pos[C.SUCCESS]] = 0
        out[0, pos[C.CONFIDENCE]] = 0.0
        out[0, pos[C.FACE_ID]] = -1
        return out
    for r, face in enumerate(result.faces):
        _fill_face(out[r], pos, face, groups)
    return out


def _fill_face(row: np.ndarray, pos: dict[str, int], face: FaceResult, groups) -> None:
    row[pos[C.FACE_ID]] = face.face_id
    row[pos[C.CONFIDENCE]] = face.confidence
    row[pos[C.SUCCESS]] = 1
    if "landmarks" in groups:
        i = pos[C.LANDMARK_X[0]]
        row[i : i + C.N_LANDMARKS] = face.landmarks[:, 0]
        i = pos[C.LANDMARK_Y[0]]
        row[i : i + C.N_LANDMARKS] = face.landmarks[:, 1]
    if "gaze" in groups and face.gaze is not None:
        i = pos[C.GAZE[0]]
        g = face.gaze
        row[i : i + 8] = (*g.eye0, *g.eye1, *g.angle)
    if "pose" in groups and face.pose is not None:
        i = pos[C.POSE_T[0]]
        row[i : i + 3] = face.pose.translation
        row[i + 3 : i + 6] = face.pose.rotation
    if "face" in groups:
        x0, y0, x1, y1 = (float(v) for v in face.box)
        i = pos[C.FACE_BOX[0]]
        row[i : i + 4] = (x0, y0, x1 - x0, y1 - y0)
        row[pos[C.FACE_SCORE]] = face.score
        if face.pose is not None:
            i = pos[C.POSE_DEG[0]]
            row[i : i + 3] = (face.pose.pitch, face.pose.yaw, face.pose.roll)
            row[pos[C.POSE_ERROR]] = face.pose.reprojection_error
    if "blendshapes" in groups and face.blendshapes is not None:
        i = pos[C.BLENDSHAPES[0]]
        row[i : i + len(C.BLENDSHAPES)] = face.blendshapes
        row[pos[C.FIT_RESIDUAL]] = face.fit_residual
    if "aus" in groups and face.aus is not None:
        i = pos[C.GROUPS["aus"][0]]
        row[i : i + len(face.aus)] = face.aus
    if "expr" in groups and face.embedding is not None:
        i = pos[C.EXPR[0]]
        row[i : i + C.N_EXPR] = face.embedding
    if "emotions" in groups and face.emotions is not None:
        i = pos[C.GROUPS["emotions"][0]]
        row[i : i + len(face.emotions)] = face.emotions
    if "va" in groups and face.valence_arousal is not None:
        i = pos[C.GROUPS["va"][0]]
        row[i : i + 2] = face.valence_arousal
    if "au_heads" in groups and face.au_intensity is not None:
        i = pos[C.GROUPS["au_heads"][0]]
        n = len(face.au_intensity)
        row[i : i + n] = face.au_intensity
        if face.au_occurrence is not None:
            row[i + n : i + 2 * n] = face.au_occurrence
    if "mesh" in groups and face.mesh is not None:
        for axis, names in enumerate((C.MESH_X, C.MESH_Y, C.MESH_Z)):
            i = pos[names[0]]
            row[i : i + C.N_MESH] = face.mesh[:, axis]


def frames_to_dataframe(
    results: Iterable[FrameResult], groups: tuple[str, ...] = C.DEFAULT_GROUPS
) -> pd.DataFrame:
    """Returns the rows of several frames as a DataFrame with the table's columns and dtypes."""
    results = list(results)
    cols = C.columns_for(groups)
    blocks = [frame_rows(r, groups) for r in results]
    # A non-UTF-8 file name is written with \xNN escapes: every table format needs valid text.
    inputs = [
        printable_path(r.source)
        for r, b in zip(results, blocks, strict=True)
        for _ in range(len(b))
    ]
    data = np.concatenate(blocks) if blocks else np.zeros((0, len(cols) - 1))
    df = pd.DataFrame(data, columns=cols[1:])
    df.insert(0, C.INPUT, pd.Series(inputs, dtype=object))
    for c in C.INT_COLUMNS & set(cols):
        df[c] = df[c].astype("int64")
    return df


class ExpressionTable:
    """Results of an analysis: a DataFrame with one row per (input, frame, face).

    Args:
        data: the rows, with the columns of :mod:`facexpr.core.columns`.
    """

    def __init__(self, data: pd.DataFrame) -> None:
        self._df = data

    @classmethod
    def from_frames(
        cls, results: Iterable[FrameResult], groups: tuple[str, ...] = C.DEFAULT_GROUPS
    ) -> ExpressionTable:
        """Returns the table of the given frame results."""
        return cls(frames_to_dataframe(results, groups))

    @property
    def data(self) -> pd.DataFrame:
        """The whole table (a DataFrame; modify a copy)."""
        return self._df

    def __len__(self) -> int:
        return len(self._df)

    def __repr__(self) -> str:
        n_in = self._df[C.INPUT].nunique() if len(self._df) else 0
        n_faces = int(self._df[C.SUCCESS].sum()) if len(self._df) else 0
        return f"ExpressionTable({len(self._df)} rows, {n_faces} faces, {n_in} inputs)"

    def _group(self, name: str) -> pd.DataFrame:
        cols = [c for c in C.GROUPS[name] if c in self._df.columns]
        return self._df[cols]

    @property
    def faces(self) -> pd.DataFrame:
        """Rows with a face (``success == 1``)."""
        return self._df[self._df[C.SUCCESS] == 1]

    @property
    def landmarks(self) -> pd.DataFrame:
        """x_0..x_67, y_0..y_67 in px."""
        return self._group("landmarks")

    @property
    def pose(self) -> pd.DataFrame:
        """pitch, yaw, roll (degrees), and pose_T* (mm), pose_R* (radians) as OpenFace."""
        cols = [c for c in (*C.POSE_DEG, *C.POSE_T, *C.POSE_R) if c in self._df.columns]
        return self._df[cols]

    @property
    def blendshapes(self) -> pd.DataFrame:
        """The 52 ARKit blendshape weights in [0, 1] (empty if not computed)."""
        return self._df[[c for c in C.BLENDSHAPES if c in self._df.columns]]

    @property
    def aus(self) -> pd.DataFrame:
        """AU intensity columns ``AUxx_r`` on the FACS 0-5 scale (empty if not computed)."""
        return self._df[[c for c in self._df.columns if c.startswith("AU") and c.endswith("_r")]]

    @property
    def gaze(self) -> pd.DataFrame:
        """OpenFace's gaze_0_*, gaze_1_* (unit vectors, camera axes) and gaze_angle_x/y (radians);
        empty unless Face Mesh V2 ran."""
        return self._df[[c for c in C.GAZE if c in self._df.columns]]

    @property
    def embedding(self) -> pd.DataFrame:
        """expr_00..expr_15, the unit-length expression embedding (empty if not computed)."""
        return self._df[[c for c in C.EXPR if c in self._df.columns]]

    def embedding_array(self) -> np.ndarray:
        """Returns the expression embedding as (rows, 16) float32 (NaN where no face).

        Raises:
            ConfigError: the table has no ``expr_*`` columns (the embedding was not computed).
        """
        if any(c not in self._df.columns for c in C.EXPR):
            raise ConfigError(
                "the table has no expr_* columns: the expression embedding was not computed"
            )
        return self._df[list(C.EXPR)].to_numpy(np.float32)

    @property
    def boxes(self) -> pd.DataFrame:
        """face_x, face_y, face_width, face_height in px, and face_score."""
        return self._df[[*C.FACE_BOX, C.FACE_SCORE]]

    def landmarks_array(self) -> np.ndarray:
        """Returns the landmarks as (rows, 68, 2) float64 px (NaN where no face)."""
        x = self._df[list(C.LANDMARK_X)].to_numpy()
        y = self._df[list(C.LANDMARK_Y)].to_numpy()
        return np.stack([x, y], axis=-1)

    def to_file(self, path: str | Path, fmt: TableFormat | None = None) -> Path:
        """Writes the table atomically as CSV, Parquet or JSON Lines (by suffix by default)."""
        return write_table(self._df, path, fmt)

    def to_csv(self, path: str | Path) -> Path:
        return self.to_file(path, "csv")

    def to_parquet(self, path: str | Path) -> Path:
        return self.to_file(path, "parquet")

    def to_jsonl(self, path: str | Path) -> Path:
        return self.to_file(path, "jsonl")

    @classmethod
    def from_file(cls, path: str | Path) -> ExpressionTable:
        """Reads a table written by :meth:`to_file` (format by suffix)."""
        return cls(read_table(path, format_from_path(path)))

    @classmethod
    def concat(cls, tables: Iterable[ExpressionTable]) -> ExpressionTable:
        """Returns the rows of several tables, in order."""
        dfs = [t.data for t in tables]
        return cls(pd.concat(dfs, ignore_index=True) if dfs else frames_to_dataframe([]))

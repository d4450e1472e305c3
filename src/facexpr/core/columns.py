"""Column names of the result table, in one place.

The table has one row per (input, frame, face). Where a column means what an OpenFace 2.0 column
means, it has OpenFace's name and comes in OpenFace's order (``frame, face_id, timestamp,
confidence, success, pose_T*, pose_R*, x_0..x_67, y_0..y_67``); facexpr's own columns follow.
Later stages add groups (AUs, emotions, valence-arousal, blendshapes) by registering them here, so
every writer and reader agrees on names and order.
"""

from __future__ import annotations

from facexpr.core.affect import (
    AU_CLASS_COLUMNS,
    AU_INTENSITY_COLUMNS,
    EMOTION_COLUMNS,
    VA_COLUMNS,
)
from facexpr.core.arkit import ARKIT_NAMES

N_LANDMARKS = 68
N_MESH = 468

INPUT = "input"
FRAME = "frame"  # 1-based, as OpenFace
FACE_ID = "face_id"
TIMESTAMP = "timestamp"  # seconds
CONFIDENCE = "confidence"
SUCCESS = "success"

POSE_T = ("pose_Tx", "pose_Ty", "pose_Tz")  # mm, camera frame
POSE_R = ("pose_Rx", "pose_Ry", "pose_Rz")  # radians, R = Rx Ry Rz
LANDMARK_X = tuple(f"x_{i}" for i in range(N_LANDMARKS))
LANDMARK_Y = tuple(f"y_{i}" for i in range(N_LANDMARKS))

# OpenFace 2.0's gaze columns: unit vectors in camera coordinates, angles in radians.
GAZE = (
    "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
    "gaze_angle_x", "gaze_angle_y",
)  # fmt: skip

FACE_BOX = ("face_x", "face_y", "face_width", "face_height")  # px, top-left + size
FACE_SCORE = "face_score"
POSE_DEG = ("pitch", "yaw", "roll")  # degrees
POSE_ERROR = "pose_error"  # px, mean reprojection error of the 68 landmarks
FRAME_SIZE = ("frame_width", "frame_height")

MESH_X = tuple(f"mesh_x_{i}" for i in range(N_MESH))
MESH_Y = tuple(f"mesh_y_{i}" for i in range(N_MESH))
MESH_Z = tuple(f"mesh_z_{i}" for i in range(N_MESH))

BLENDSHAPES = tuple(ARKIT_NAMES)
FIT_RESIDUAL = "fit_residual"  # mean landmark error / inter-ocular distance of the model fit

N_EXPR = 16  # width of the expression embedding (facexpr.nn.expression)
EXPR = tuple(f"expr_{i:02d}" for i in range(N_EXPR))  # unit-length expression embedding


def au_intensity_column(au: str) -> str:
    """Returns the column of an AU's 0-5 intensity, OpenFace style ('AU12' -> 'AU12_r')."""
    return f"{au}_r"


# Groups, in table order. `mesh` is opt-in (1,404 columns); `expr` is on when expression weights
# are available (shipped, or given by path); `gaze` when Face Mesh V2 (with iris) runs.
GROUPS: dict[str, tuple[str, ...]] = {
    "meta": (INPUT, FRAME, FACE_ID, TIMESTAMP, CONFIDENCE, SUCCESS),
    "gaze": GAZE,  # after meta, before pose: OpenFace's order
    "pose": (*POSE_T, *POSE_R),
    "landmarks": (*LANDMARK_X, *LANDMARK_Y),
    "face": (*FACE_BOX, FACE_SCORE, *POSE_DEG, POSE_ERROR, *FRAME_SIZE),
    "mesh": (*MESH_X, *MESH_Y, *MESH_Z),
    "blendshapes": (*BLENDSHAPES, FIT_RESIDUAL),
    "expr": EXPR,
    # The learned heads (facexpr.analyze.heads): emotion probabilities, valence-arousal, and AU
    # intensities then occurrences, OpenFace's names and order (AUxx_r ..., AUxx_c ...).
    "emotions": EMOTION_COLUMNS,
    "va": VA_COLUMNS,
    "au_heads": (*AU_INTENSITY_COLUMNS, *AU_CLASS_COLUMNS),
}

DEFAULT_GROUPS = ("meta", "pose", "landmarks", "face")

INT_COLUMNS = frozenset({FRAME, FACE_ID, SUCCESS, *FRAME_SIZE})


def register_group(name: str, columns: tuple[str, ...]) -> None:
    """Adds a column group (a later stage's outputs); re-registering the same columns is a no-op.

    Raises:
        ValueError: the name is taken by other columns.
    """
    if name in GROUPS and GROUPS[name] != tuple(columns):
        raise ValueError(f"column group {name!r} is already registered with other columns")
    GROUPS[name] = tuple(columns)


def columns_for(groups: tuple[str, ...] = DEFAULT_GROUPS) -> list[str]:
    """Returns the ordered column names of the given groups (see :data:`GROUPS`)."""
    cols: list[str] = []
    for g in groups:
        cols.extend(GROUPS[g])
    return cols

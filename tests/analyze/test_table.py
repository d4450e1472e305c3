"""ExpressionTable: rows per face, no-face rows, OpenFace column compatibility."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.analyze.table import ExpressionTable, frames_to_dataframe
from facexpr.core import columns as C
from facexpr.core.types import FaceResult, FrameResult, HeadPose
from facexpr.io.tables import read_table


def _face(face_id: int, offset: float) -> FaceResult:
    lm = np.stack([np.linspace(10, 80, 68), np.linspace(20, 90, 68)], axis=1) + offset
    pose = HeadPose(
        pitch=5.0,
        yaw=-10.0,
        roll=2.0,
        rotation=np.radians([5.0, -10.0, 2.0]).astype(np.float32),
        translation=np.array([1.0, 2.0, 600.0], np.float32),
        reprojection_error=1.5,
    )
    return FaceResult(
        box=np.array([10, 20, 80, 90], np.float32) + offset,
        score=0.9,
        landmarks=lm.astype(np.float32),
        confidence=0.95,
        face_id=face_id,
        mesh=np.zeros((468, 3), np.float32) + offset,
        pose=pose,
    )


def _frames() -> list[FrameResult]:
    return [
        FrameResult("a.mp4", 0, 0.0, 640, 360, (_face(0, 0.0), _face(1, 100.0))),
        FrameResult("a.mp4", 1, 0.04, 640, 360, ()),
        FrameResult("a.mp4", 2, 0.08, 640, 360, (_face(0, 1.0),)),
    ]


def test_one_row_per_face_and_one_for_an_empty_frame():
    df = frames_to_dataframe(_frames())
    assert len(df) == 4
    assert df["frame"].tolist() == [1, 1, 2, 3]  # 1-based, as OpenFace
    assert df["success"].tolist() == [1, 1, 0, 1]
    assert df["face_id"].tolist() == [0, 1, -1, 0]
    empty = df.iloc[2]
    assert np.isnan(empty["x_0"])
    assert np.isnan(empty["pose_Tz"])
    assert empty["timestamp"] == pytest.approx(0.04)


def test_values_land_in_their_columns():
    df = frames_to_dataframe(_frames())
    row = df.iloc[1]
    assert row["x_0"] == pytest.approx(110.0)
    assert row["y_67"] == pytest.approx(190.0)
    assert row["face_x"] == pytest.approx(110.0)
    assert row["face_width"] == pytest.approx(70.0)
    assert row["yaw"] == pytest.approx(-10.0)
    assert row["pose_Ry"] == pytest.approx(np.radians(-10.0), abs=1e-6)
    assert row["pose_Tz"] == pytest.approx(600.0)


def test_openface_columns_keep_openface_order(media_dir):
    openface = list(read_table(media_dir / "OpenFace_Test.csv").columns)
    ours = C.columns_for()
    shared = [c for c in ours if c in openface]
    assert len(shared) >= 4 + 6 + 136  # frame..success, pose, 68 x and y
    assert shared == [c for c in openface if c in shared]


def test_mesh_group_is_opt_in():
    plain = frames_to_dataframe(_frames())
    meshed = frames_to_dataframe(_frames(), (*C.DEFAULT_GROUPS, "mesh"))
    assert "mesh_x_0" not in plain.columns
    assert meshed["mesh_z_467"].iloc[1] == pytest.approx(100.0)


def test_groups_and_round_trip(tmp_path):
    table = ExpressionTable.from_frames(_frames())
    assert table.landmarks.shape == (4, 136)
    assert list(table.pose.columns[:3]) == ["pitch", "yaw", "roll"]
    assert len(table.faces) == 3
    lm = table.landmarks_array()
    assert lm.shape == (4, 68, 2)
    back = ExpressionTable.from_file(table.to_parquet(tmp_path / "t.parquet"))
    np.testing.assert_allclose(back.landmarks_array(), lm, equal_nan=True)
    assert "3 faces" in repr(back)


def test_output_names_are_unique_and_readable():
    from facexpr.analyze.batch import output_names
    from facexpr.io import MediaSource

    names = output_names(
        [
            MediaSource("in/clip.mp4", "video"),
            MediaSource("in/clip.jpg", "image"),
            MediaSource("in/photo.png", "image"),
            MediaSource("a/face.jpg", "image"),
            MediaSource("b/face.jpg", "image"),
            MediaSource("c/a/face.jpg", "image"),
        ]
    )
    assert names == ["clip_mp4", "clip_jpg", "photo", "a__face_jpg", "b__face_jpg", "a__face_jpg_2"]

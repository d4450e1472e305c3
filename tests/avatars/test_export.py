"""Tests of animation export: Live Link Face CSV, JSON, glTF, preview video."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from facexpr.avatars.export import (
    LIVE_LINK_COLUMNS,
    live_link_timecode,
    read_live_link_csv,
    to_arkit,
    write_json,
    write_live_link_csv,
)
from facexpr.core.arkit import ARKIT_NAMES, ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError


@pytest.fixture
def weights() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (12, 53)).astype(np.float32)


def test_live_link_header_and_rows(tmp_path: Path, weights: np.ndarray) -> None:
    p = write_live_link_csv(tmp_path / "take.csv", weights, fps=30)
    rows = list(csv.reader(p.open()))
    assert rows[0][:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert rows[0][-10:] == [
        "TongueOut", "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
        "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
    ]  # fmt: skip
    assert len(rows[0]) == 2 + 61
    assert len(rows) == 1 + 12
    assert all(r[1] == "61" and len(r) == 63 for r in rows[1:])
    assert rows[2][0] == "00:00:00:01.000"
    a = to_arkit(weights)
    jaw = rows[0].index("JawOpen")
    assert float(rows[5][jaw]) == pytest.approx(a[4, ARKIT_NAMES.index("jawOpen")], abs=1e-6)


def test_live_link_round_trip(tmp_path: Path, weights: np.ndarray) -> None:
    p = write_live_link_csv(tmp_path / "t.csv", weights, fps=60)
    np.testing.assert_allclose(read_live_link_csv(p), to_arkit(weights), atol=1e-6)


def test_live_link_head_pose_in_radians(tmp_path: Path, weights: np.ndarray) -> None:
    pose = np.zeros((12, 3), np.float32)
    pose[:, 1] = 30.0  # yaw
    p = write_live_link_csv(tmp_path / "t.csv", weights, fps=60, head_pose=pose)
    rows = list(csv.reader(p.open()))
    assert float(rows[1][rows[0].index("HeadYaw")]) == pytest.approx(np.pi / 6, abs=1e-5)
    assert float(rows[1][rows[0].index("HeadPitch")]) == 0.0


@pytest.mark.parametrize(
    ("t", "fps", "tc"),
    [(0.0, 60, "00:00:00:00.000"), (1.5, 60, "00:00:01:30.000"),
     (3725.25, 30, "01:02:05:07.500"), (2 / 29.97, 29.97, "00:00:00:02.002")],
)  # fmt: skip
def test_timecode(t: float, fps: float, tc: str) -> None:
    assert live_link_timecode(t, fps) == tc


def test_columns_are_61_values() -> None:
    assert len(LIVE_LINK_COLUMNS) == 63
    assert (
        len({c.lower() for c in LIVE_LINK_COLUMNS[2:54]} & {n.lower() for n in ARKIT_NAMES}) == 52
    )


def test_json(tmp_path: Path, weights: np.ndarray) -> None:
    p = write_json(tmp_path / "a.json", weights, fps=25, channels="ict")
    d = json.loads(p.read_text())
    assert d["fps"] == 25.0
    assert d["names"] == list(ICT_CHANNELS)
    np.testing.assert_allclose(np.array(d["frames"]), weights, atol=1e-6)
    d2 = json.loads(write_json(tmp_path / "b.json", weights).read_text())
    assert len(d2["names"]) == 52
    assert len(d2["frames"]) == 12


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(T, 52\) ARKit or \(T, 53\) ICT"):
        write_live_link_csv(tmp_path / "x.csv", np.zeros((3, 50)))
    with pytest.raises(ConfigError, match="fps must be > 0"):
        write_live_link_csv(tmp_path / "x.csv", np.zeros((3, 52)), fps=0)
    with pytest.raises(ConfigError, match=r"head_pose must be \(3, 3\)"):
        write_live_link_csv(tmp_path / "x.csv", np.zeros((3, 52)), head_pose=np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="channels must be 'arkit' or 'ict'"):
        write_json(tmp_path / "x.json", np.zeros((3, 52)), channels="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no frames"):
        write_json(tmp_path / "x.json", np.zeros((0, 52)))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a Live Link Face CSV"):
        read_live_link_csv(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="file not found"):
        read_live_link_csv(tmp_path / "nope.csv")


def test_live_link_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "short.csv").write_text(
        "Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,1,0\n"
    )
    with pytest.raises(InputError, match="lacks columns"):
        read_live_link_csv(tmp_path / "short.csv")


def _have_renderer() -> bool:
    try:
        import moderngl  # noqa: F401

        import facexpr.avatars.render  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _have_renderer(), reason="facexpr.avatars.render is not available")
def test_preview_video_side_by_side(tmp_path: Path, media_dir: Path) -> None:
    import av

    from facexpr.avatars.avatar import get_avatar
    from facexpr.avatars.export import write_preview_video

    src = media_dir / "single_face.mp4"
    w = np.zeros((6, 53), np.float32)
    w[:, ICT_CHANNELS.index("jawOpen")] = np.linspace(0, 1, 6)
    p = write_preview_video(
        tmp_path / "p.mp4", get_avatar("ict"), w, fps=30, size=64, source_video=src
    )
    with av.open(str(p)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 6
    # 640x360 source scaled to 64 px high is 114 px wide, beside the 64 px avatar.
    assert frames[0].shape == (64, 114 + 64, 3)
    # the avatar's mouth opens: the lower half of the avatar panel changes over the clip
    diff = np.abs(frames[-1][32:, 114:].astype(int) - frames[0][32:, 114:].astype(int)).mean()
    assert diff > 1.0


@pytest.mark.skipif(not _have_renderer(), reason="facexpr.avatars.render is not available")
def test_preview_video_errors(tmp_path: Path) -> None:
    from facexpr.avatars.avatar import get_avatar
    from facexpr.avatars.export import write_preview_video

    with pytest.raises(ConfigError, match="size must be an even number"):
        write_preview_video(tmp_path / "x.mp4", get_avatar("ict"), np.zeros((2, 52)), size=15)
    with pytest.raises(ConfigError, match=r"pose must be \(2, 3\)"):
        write_preview_video(
            tmp_path / "x.mp4", get_avatar("ict"), np.zeros((2, 52)), pose=np.zeros((3, 3))
        )
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match=r"bad\.mp4: not a video FFmpeg can read"):
        write_preview_video(
            tmp_path / "x.mp4",
            get_avatar("ict"),
            np.zeros((2, 52)),
            source_video=tmp_path / "bad.mp4",
        )


def _tiny_rig(names: tuple[str, ...]):
    from facexpr.avatars.rig import Rig

    rng = np.random.default_rng(0)
    neutral = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    deltas = rng.normal(0, 0.1, (len(names), 4, 3)).astype(np.float32)
    return Rig(neutral, faces, names, deltas, name="tiny")


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_gltf_animation_has_weights_channel(
    tmp_path: Path, weights: np.ndarray, suffix: str
) -> None:
    pygltflib = pytest.importorskip("pygltflib")
    from facexpr.avatars.export import write_gltf_animation

    p = write_gltf_animation(tmp_path / f"a{suffix}", _tiny_rig(ICT_CHANNELS), weights, fps=24)
    g = pygltflib.GLTF2().load(str(p))
    assert len(g.animations) == 1
    channels = g.animations[0].channels
    assert [c.target.path for c in channels] == ["weights"]
    sampler = g.animations[0].samplers[channels[0].sampler]
    times = g.accessors[sampler.input]
    assert times.count == 12
    assert times.max[0] == pytest.approx(11 / 24)
    assert g.accessors[sampler.output].count == 12 * 53


def test_gltf_animation_maps_arkit_named_rig(tmp_path: Path) -> None:
    pygltflib = pytest.importorskip("pygltflib")
    from facexpr.avatars.export import write_gltf_animation

    rig = _tiny_rig(("jawOpen", "mouthSmileLeft", "custom"))
    w = np.zeros((3, 52), np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = [0.0, 0.5, 1.0]
    p = write_gltf_animation(tmp_path / "b.glb", rig, w, fps=30)
    g = pygltflib.GLTF2().load(str(p))
    out = g.accessors[g.animations[0].samplers[0].output]
    assert out.count == 3 * 3
    view = g.bufferViews[out.bufferView]
    start = (view.byteOffset or 0) + (out.byteOffset or 0)
    data = np.frombuffer(g.binary_blob(), np.float32, count=out.count, offset=start)
    # channels (jawOpen, mouthSmileLeft, custom) per frame: jawOpen follows the ARKit weight
    np.testing.assert_allclose(data.reshape(3, 3), [[0, 0, 0], [0.5, 0, 0], [1, 0, 0]])


def test_gltf_animation_bad_fps(tmp_path: Path, weights: np.ndarray) -> None:
    from facexpr.avatars.export import write_gltf_animation

    with pytest.raises(ConfigError, match="fps must be > 0"):
        write_gltf_animation(tmp_path / "c.glb", _tiny_rig(ICT_CHANNELS), weights, fps=0)


def test_json_bad_fps(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="write_json: fps must be > 0"):
        write_json(tmp_path / "x.json", np.zeros((2, 52)), fps=-1)


def test_live_link_reader_names_bad_cells(tmp_path: Path, weights: np.ndarray) -> None:
    p = write_live_link_csv(tmp_path / "t.csv", weights, fps=30)
    rows = list(csv.reader(p.open()))
    rows[3][rows[0].index("JawOpen")] = "open"
    with p.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(InputError, match=r"t\.csv: row 3, column 'JawOpen': 'open' is not a"):
        read_live_link_csv(p)
    rows[3] = rows[3][:10]  # a short row
    with p.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(InputError, match=r"row 3, column '\w+': '' is not a finite number"):
        read_live_link_csv(p)


def test_gltf_animation_of_a_custom_rig_maps_arkit_once(tmp_path: Path, caplog) -> None:
    import pygltflib

    from facexpr.avatars.export import write_gltf_animation
    from facexpr.avatars.rig import Rig

    rng = np.random.default_rng(0)
    names = ("jawOpen", "BS_eyeBlinkLeft", "ears", "mouthSmile_R", "browInnerUp", "x", "y")
    rig = Rig(neutral=rng.normal(size=(3, 3)), faces=[[0, 1, 2]], channel_names=names,
              deltas=rng.normal(size=(7, 3, 3)))  # fmt: skip
    arkit = rng.uniform(0, 1, (5, 52)).astype(np.float32)
    p = write_gltf_animation(tmp_path / "a.glb", rig, arkit, fps=10)
    g = pygltflib.GLTF2().load(str(p))
    acc = g.accessors[g.animations[0].samplers[0].output]
    view = g.bufferViews[acc.bufferView]
    w = np.frombuffer(g.binary_blob(), np.float32, acc.count, view.byteOffset).reshape(5, 7)
    for c, arkit_name in [(0, "jawOpen"), (1, "eyeBlinkLeft"), (3, "mouthSmileRight")]:
        np.testing.assert_allclose(w[:, c], arkit[:, ARKIT_NAMES.index(arkit_name)], atol=1e-6)
    assert np.abs(w[:, [2, 5, 6]]).max() == 0.0
    still = Rig(neutral=rig.neutral, faces=rig.faces, channel_names=("a", "b"),
                deltas=np.zeros((2, 3, 3)))  # fmt: skip
    with caplog.at_level("WARNING"):
        write_gltf_animation(tmp_path / "b.glb", still, arkit, fps=10)
    assert "none of the rig's 2 channels has an ARKit name" in caplog.text


def test_writers_name_an_unwritable_path(tmp_path: Path, weights: np.ndarray) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file/t\.json: cannot write"):
        write_json(tmp_path / "file" / "t.json", weights)
    with pytest.raises(InputError, match=r"file/t\.csv: cannot write"):
        write_live_link_csv(tmp_path / "file" / "t.csv", weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]

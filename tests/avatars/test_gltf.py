"""glTF round trip of the ICT rig, animation, and reading other exporters' conventions."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest

from facexpr.avatars.gltf import load_gltf, save_gltf
from facexpr.avatars.ict import load_ict
from facexpr.avatars.rig import Rig
from facexpr.core.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def rig():
    return load_ict()


@pytest.fixture(scope="module")
def glb(rig, tmp_path_factory):
    anim = np.random.default_rng(0).uniform(0, 1, (12, rig.n_channels)).astype(np.float32)
    path = tmp_path_factory.mktemp("gltf") / "ict.glb"
    save_gltf(rig, path, animation=anim, fps=24.0)
    return path, anim


def test_round_trip_gives_same_vertices_and_channels(rig, glb):
    back = load_gltf(glb[0])
    assert back.channel_names == rig.channel_names
    assert back.n_vertices == rig.n_vertices
    np.testing.assert_array_equal(back.faces, rig.faces)  # ICT faces are sorted by material
    assert back.material_names == rig.material_names
    w = np.random.default_rng(1).uniform(0, 1, rig.n_channels).astype(np.float32)
    np.testing.assert_allclose(back.evaluate(w), rig.evaluate(w), atol=1e-5)


def test_written_file_is_valid_gltf(rig, glb):
    path, anim = glb
    g = pygltflib.GLTF2().load(str(path))
    assert g.asset.version == "2.0"
    mesh = g.meshes[0]
    assert mesh.extras["targetNames"] == list(rig.channel_names)
    assert len(mesh.weights) == rig.n_channels
    prim = mesh.primitives[0]
    pos = g.accessors[prim.attributes.POSITION]
    np.testing.assert_allclose(pos.min, rig.neutral.min(axis=0), atol=1e-6)
    np.testing.assert_allclose(pos.max, rig.neutral.max(axis=0), atol=1e-6)
    for t in prim.targets:  # the spec requires min/max on morph target POSITION too
        acc = g.accessors[t["POSITION"]]
        assert len(acc.min) == 3
        assert len(acc.max) == 3
    assert len(mesh.primitives) == len(rig.material_names)
    (a,) = g.animations
    assert a.channels[0].target.path == "weights"
    assert a.samplers[0].interpolation == "LINEAR"
    times = g.accessors[a.samplers[0].input]
    assert times.count == len(anim)
    assert times.max[0] == pytest.approx((len(anim) - 1) / 24.0)
    assert g.accessors[a.samplers[0].output].count == anim.size


def test_gltf_json_with_prefixed_names(tmp_path):
    rng = np.random.default_rng(0)
    tiny = Rig(
        neutral=rng.normal(size=(4, 3)), faces=[[0, 1, 2], [0, 2, 3]],
        channel_names=("blendShape1.jawOpen", "blendShape1.mouthSmile_L", "custom"),
        deltas=rng.normal(size=(3, 4, 3)), uv=rng.uniform(size=(4, 2)),
    )  # fmt: skip
    path = save_gltf(tiny, tmp_path / "tiny.gltf")
    assert path.read_text().startswith("{")
    back = load_gltf(path)
    assert back.channel_names == ("jawOpen", "mouthSmile_L", "custom")
    np.testing.assert_allclose(back.uv, tiny.uv, atol=1e-6)
    arkit = load_gltf(path, names="arkit")
    assert arkit.channel_names == ("jawOpen", "mouthSmileLeft", "custom")
    kept = load_gltf(path, names="keep")
    assert kept.channel_names == tiny.channel_names
    np.testing.assert_allclose(back.deltas, tiny.deltas, atol=1e-6)


def test_node_transform_is_applied(tmp_path, rig):
    rng = np.random.default_rng(0)
    tiny = Rig(neutral=rng.normal(size=(3, 3)), faces=[[0, 1, 2]], channel_names=("a",),
               deltas=np.ones((1, 3, 3)))  # fmt: skip
    path = save_gltf(tiny, tmp_path / "t.glb")
    g = pygltflib.GLTF2().load(str(path))
    g.nodes[0].translation = [1.0, 2.0, 3.0]
    g.nodes[0].scale = [2.0, 2.0, 2.0]
    g.save(str(tmp_path / "moved.glb"))
    back = load_gltf(tmp_path / "moved.glb")
    np.testing.assert_allclose(back.neutral, tiny.neutral * 2 + [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(back.deltas, 2.0, atol=1e-6)


def test_errors(tmp_path, rig):
    with pytest.raises(ConfigError, match=r"use a \.glb or \.gltf suffix"):
        save_gltf(rig, tmp_path / "x.obj")
    with pytest.raises(ConfigError, match=r"animation must be \(T, 53\)"):
        save_gltf(rig, tmp_path / "x.glb", animation=np.zeros((3, 52)))
    with pytest.raises(ConfigError, match="fps must be > 0"):
        save_gltf(rig, tmp_path / "x.glb", animation=np.zeros((3, 53)), fps=0)
    with pytest.raises(InputError, match="glTF file not found"):
        load_gltf(tmp_path / "missing.glb")
    (tmp_path / "bad.glb").write_bytes(b"not a glb at all")
    with pytest.raises(InputError, match="cannot parse glTF"):
        load_gltf(tmp_path / "bad.glb")
    with pytest.raises(ConfigError, match="names must be"):
        load_gltf(tmp_path / "bad.glb", names="upper")


def test_names_from_accessors_when_no_extras(tmp_path):
    rng = np.random.default_rng(0)
    tiny = Rig(neutral=rng.normal(size=(3, 3)), faces=[[0, 1, 2]], channel_names=("a", "b"),
               deltas=rng.normal(size=(2, 3, 3)))  # fmt: skip
    save_gltf(tiny, tmp_path / "t.glb")
    g = pygltflib.GLTF2().load(str(tmp_path / "t.glb"))
    g.meshes[0].extras = {}
    targets = g.meshes[0].primitives[0].targets
    g.accessors[targets[0]["POSITION"]].name = "blendShape1.jawOpen"
    g.save(str(tmp_path / "n.glb"))
    back = load_gltf(tmp_path / "n.glb")
    assert back.channel_names == ("jawOpen", "rig_target1")  # mesh name + index

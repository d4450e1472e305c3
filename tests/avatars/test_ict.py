"""The shipped ICT FaceKit asset and the upstream folder loader."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from facexpr.avatars.ict import (
    ICT_LANDMARKS68,
    default_asset_path,
    load_ict,
    load_ict_folder,
    triangulate,
)
from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def rig():
    return load_ict()


def test_shipped_asset_counts(rig):
    assert rig.n_vertices == 26719
    # 26384 faces, 548 of them triangles: 2 * 26384 - 548 triangles.
    assert rig.faces.shape == (2 * 26384 - 548, 3)
    assert rig.channel_names == ICT_CHANNELS
    assert rig.deltas.shape == (53, 26719, 3)
    assert rig.n_identity == 50
    assert rig.landmark_vertices.tolist() == list(ICT_LANDMARKS68)
    assert rig.face_material.shape == (len(rig.faces),)
    assert rig.uv.shape == (len(rig.faces), 3, 2)
    assert default_asset_path().stat().st_size < 15_000_000
    assert (default_asset_path().parent / "LICENSE-ict-facekit.txt").is_file()


def test_shipped_asset_matches_full_model(rig, ict_dir):
    full = load_ict(ict_dir / "ict_facekit.npz")
    assert full.n_identity == 100
    np.testing.assert_array_equal(full.neutral, rig.neutral)
    np.testing.assert_array_equal(full.faces, rig.faces)
    err = np.abs(full.deltas - rig.deltas.astype(np.float32)).max()
    assert err < 1.5e-3  # cm, float16
    ierr = np.abs(full.identity_basis[:50] - rig.identity_basis.astype(np.float32)).max()
    assert ierr < 1e-3


def test_geometry_facts(rig):
    # Nose tip toward +z at 13.07 cm; landmark 36 (subject's right eye corner) at x < 0.
    assert rig.neutral[:, 2].max() == pytest.approx(13.088, abs=0.01)
    lm = rig.landmarks(rig.neutral)
    assert lm[36, 0] < 0 < lm[45, 0]
    assert lm[8, 1] < lm[30, 1] < lm[27, 1]  # chin below nose tip below nose bridge
    jaw = rig.evaluate(rig.weights(jawOpen=1.0))
    assert jaw[rig.landmark_vertices[8], 1] < lm[8, 1] - 1.0  # the chin drops > 1 cm


def test_triangulate_splits_quads_in_order():
    tri, src = triangulate(np.array([[0, 1, 2, 3], [4, 5, 6, -1]]))
    assert tri.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6]]
    assert src.tolist() == [0, 0, 1]


def test_folder_loader_on_the_shared_subset(ict_dir, rig, caplog):
    with caplog.at_level(logging.WARNING):
        sub = load_ict(ict_dir / "FaceXModel")
    assert "50 of 53 listed expression OBJs are missing" in caplog.text
    assert sub.channel_names == ("eyeBlink_L", "jawOpen", "mouthSmile_L")
    assert sub.n_identity == 1
    np.testing.assert_array_equal(sub.faces, rig.faces)
    np.testing.assert_array_equal(sub.face_material, rig.face_material)
    for name in sub.channel_names:
        d = sub.deltas[sub.channel_index(name)] - rig.deltas[rig.channel_index(name)]
        assert np.abs(d).max() < 1.5e-3
    np.testing.assert_array_equal(sub.landmark_vertices, rig.landmark_vertices)


def test_folder_loader_missing_policies(ict_dir):
    with pytest.raises(InputError, match="50 of 53 listed expression OBJs are missing"):
        load_ict_folder(ict_dir / "FaceXModel", on_missing="raise", n_identity=0)
    zero = load_ict_folder(ict_dir / "FaceXModel", on_missing="zero", n_identity=0)
    assert zero.channel_names == ICT_CHANNELS
    assert np.abs(zero.deltas[zero.channel_index("browDown_L")]).max() == 0.0
    assert np.abs(zero.deltas[zero.channel_index("jawOpen")]).max() > 1.0
    with pytest.raises(ConfigError, match="on_missing must be"):
        load_ict_folder(ict_dir / "FaceXModel", on_missing="skip")
    with pytest.raises(ConfigError, match="asked for 5 identity modes, found 1"):
        load_ict_folder(ict_dir / "FaceXModel", n_identity=5)


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match=r"no generic_neutral_mesh\.obj"):
        load_ict(tmp_path)
    with pytest.raises(InputError, match="npz not found"):
        load_ict(tmp_path / "x.npz")
    (tmp_path / "x.obj").write_text("v 0 0 0\n")
    with pytest.raises(InputError, match=r"expected an ICT FaceKit \.npz"):
        load_ict(tmp_path / "x.obj")
    np.savez(tmp_path / "y.npz", neutral=np.zeros((3, 3)))
    with pytest.raises(InputError, match="missing arrays"):
        load_ict(tmp_path / "y.npz")
    with pytest.raises(ConfigError, match="asked for 60 identity modes"):
        load_ict(n_identity=60)

"""(rig weights, render) pairs for the neural renderer: determinism, the view, boxes, the cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError
from facexpr.synth.rig_renders import (
    RigRenderOptions,
    RigRenderSet,
    build_cache,
    load_avatar,
    load_cache,
    sample_weights,
)

_spec = importlib.util.spec_from_file_location(
    "gltf_cases", Path(__file__).resolve().parents[1] / "avatars" / "gltf_cases.py"
)
gltf_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gltf_cases)

OPTS = RigRenderOptions(size=64, seed=3)


@pytest.fixture(scope="module")
def ict_set():
    try:
        rs = RigRenderSet(load_avatar("ict_000"), OPTS)
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL (moderngl + EGL): {e}")
    yield rs
    rs.close()


def test_pairs_are_deterministic_per_split_and_index(ict_set):
    w1, img1 = ict_set.sample("train", 5)
    w2, img2 = ict_set.sample("train", 5)
    assert np.array_equal(w1, w2)
    assert np.array_equal(img1, img2)
    assert img1.shape == (64, 64, 3)
    assert img1.dtype == np.uint8
    assert w1.shape == (53,)
    assert not np.array_equal(ict_set.weights("train", 6), w1)
    assert not np.array_equal(ict_set.weights("val", 5), w1)  # held-out weights differ


def test_boxes_cover_the_eyes_and_the_moving_mouth(ict_set):
    eyes, mouth = ict_set.boxes
    assert 0 <= eyes[0] < eyes[2] <= 64
    assert eyes[3] < mouth[3]  # the eye box is above the mouth box
    assert mouth[1] > 64 * 0.45  # the mouth is in the lower half of the aligned frame
    neutral = ict_set.render(None).astype(np.float32)
    w = np.zeros(53, np.float32)
    w[ICT_CHANNELS.index("jawOpen")] = 1.0
    open_jaw = ict_set.render(w).astype(np.float32)
    diff = np.abs(open_jaw - neutral).mean(2)

    def mean_in(box: np.ndarray) -> float:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        return float(diff[y0:y1, x0:x1].mean())

    assert mean_in(mouth) > 5.0
    assert mean_in(mouth) > 5 * mean_in(eyes)
    # The frame is fixed by the neutral face: the background corner does not move.
    assert np.abs(open_jaw[:4, :4] - neutral[:4, :4]).max() == 0


def test_sample_weights_mixture():
    names = list(ICT_CHANNELS)
    single = RigRenderOptions(p_single=1.0, p_neutral=0.0)
    for i in range(20):
        w = sample_weights(np.random.default_rng(i), names, None, single)
        assert np.count_nonzero(w) == 1
        assert 0.3 <= w.max() <= 1.0
    neutral = RigRenderOptions(p_single=0.0, p_neutral=1.0)
    assert not sample_weights(np.random.default_rng(0), names, None, neutral).any()
    other = ["a", "b", "c", "d"]  # a user's rig without ARKit names
    draws = np.stack([
        sample_weights(np.random.default_rng(i), other, None, RigRenderOptions())
        for i in range(50)
    ])  # fmt: skip
    assert draws.shape == (50, 4)
    assert draws.min() >= 0
    assert draws.max() <= 1
    assert (draws > 0).any(axis=0).all()  # every channel gets used


def test_cache_round_trip_and_reuse(tmp_path, ict_set):
    opts = RigRenderOptions(size=32, seed=1)
    path = build_cache(tmp_path, "ict_000", "val", 3, opts)
    mtime = path.stat().st_mtime_ns
    assert build_cache(tmp_path, "ict_000", "val", 3, opts) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not rendered again
    c = load_cache(path)
    assert c.images.shape == (3, 32, 32, 3)
    assert c.channels == tuple(ICT_CHANNELS)
    with RigRenderSet(load_avatar("ict_000"), opts) as rs:
        w, img = rs.sample("val", 2)
    assert np.array_equal(c.weights[2], w)
    assert np.array_equal(c.images[2], img)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"bad\.npz: not a readable rig-render cache"):
        load_cache(bad)


def test_avatar_specs_and_their_errors(tmp_path):
    doc, blob = gltf_cases.rig_doc(0)
    flat = tmp_path / "flat.glb"
    flat.write_bytes(gltf_cases.glb_bytes(doc, blob))
    with pytest.raises(InputError, match=r"flat\.glb: has no morph targets"):
        load_avatar(str(flat))
    with pytest.raises(InputError, match=r"missing\.glb: glTF file not found"):
        load_avatar(str(tmp_path / "missing.glb"))
    with pytest.raises(ConfigError, match=r"unknown avatar 'ict_0000'"):
        load_avatar("ict_0000")
    doc, blob = gltf_cases.rig_doc(3)
    tri = tmp_path / "tri.glb"
    tri.write_bytes(gltf_cases.glb_bytes(doc, blob))
    av = load_avatar(str(tri))
    assert av.name == "tri"
    assert av.rig.n_channels == 3
    with pytest.raises(ConfigError, match=r"size must be in \[16, 1024\]"):
        RigRenderOptions(size=8)


def test_a_rig_without_landmarks_is_aligned_from_the_front_end(ict_set):
    from dataclasses import replace

    ict = load_avatar("ict_000")
    bare = replace(ict, rig=replace(ict.rig, landmark_vertices=None))
    with RigRenderSet(bare, OPTS, name="bare") as rs:
        assert rs.landmarks68 is not None  # found by the face front-end on the neutral render
        # The same frame as from the rig's own landmark vertices, within a few pixels.
        assert np.abs(rs.boxes - ict_set.boxes).max() < 4.0
        assert np.abs(rs.landmarks68 - ict_set.landmarks68).mean() < 2.0


def test_option_and_argument_errors(tmp_path, ict_set):
    with pytest.raises(ConfigError, match=r"p_single and p_neutral must be in \[0, 1\] and sum"):
        RigRenderOptions(p_single=0.7, p_neutral=0.5)
    with pytest.raises(ConfigError, match=r"split must be 'train', 'val' or 'test', got 'dev'"):
        ict_set.weights("dev", 0)
    with pytest.raises(ConfigError, match=r"n and workers must be >= 1, got 0, 1"):
        build_cache(tmp_path, "ict_000", "val", 0, OPTS)
    from facexpr.avatars.avatar import avatar_from_gltf

    doc, blob = gltf_cases.rig_doc(0)
    flat = tmp_path / "flat.glb"
    flat.write_bytes(gltf_cases.glb_bytes(doc, blob))
    with pytest.raises(InputError, match=r"avatar 'flat' has no rig channels"):
        RigRenderSet(avatar_from_gltf(flat, name="flat"), OPTS)
    good = build_cache(tmp_path, "ict_000", "val", 1, RigRenderOptions(size=16))
    z = dict(np.load(good))
    np.savez(tmp_path / "other.npz", **{**z, "meta": np.array('{"format": "x"}')})
    with pytest.raises(InputError, match=r"other\.npz: not a facexpr rig-render cache"):
        load_cache(tmp_path / "other.npz")
    np.savez(tmp_path / "odd.npz", **{**z, "weights": z["weights"][:, :5]})
    with pytest.raises(InputError, match=r"odd\.npz: inconsistent rig-render cache arrays"):
        load_cache(tmp_path / "odd.npz")

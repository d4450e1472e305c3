"""Norface pairs (facexpr.synth.pairs): deterministic, the target depends on the weights only,
identity folders of captured .glb avatars, the eye/mouth boxes on the canonical crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.faces.align import ALIGN_TEMPLATE
from facexpr.faces.landmarks68 import MOUTH, eye_centres
from facexpr.nn.normalizer import region_boxes
from facexpr.synth.pairs import (
    PairOptions,
    PairScene,
    generate_pairs,
    list_identity_files,
    render_pair,
    render_target,
)

moderngl = pytest.importorskip("moderngl", reason="the renderer (moderngl) is not available")

S = 64
OPTS = PairOptions(n=4, size=S, render_size=96, n_identities=5, antialias=0)


@pytest.fixture(scope="module")
def scene():
    try:
        s = PairScene(OPTS)
    except ImportError as e:  # MissingDependencyError: no EGL
        pytest.skip(f"no headless OpenGL: {e}")
    yield s
    s.close()


def test_a_pair_depends_only_on_seed_and_index(scene) -> None:
    a = render_pair(scene, 2)
    render_pair(scene, 0)  # other renders in between change nothing
    with PairScene(OPTS) as other:
        b = render_pair(other, 2)
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(a.ict_weights, b.ict_weights)
    assert a.input.shape == a.target.shape == (S, S, 3)
    c = render_pair(scene, 3)
    assert not np.array_equal(a.ict_weights, c.ict_weights)


def test_the_same_weights_on_two_identities_give_the_same_target(scene) -> None:
    # Another identity seed: other people, the same expression draws for the same index.
    with PairScene(PairOptions(**{**OPTS.__dict__, "identity_seed": 7})) as other:
        for i in (0, 1):
            a, b = render_pair(scene, i), render_pair(other, i)
            np.testing.assert_array_equal(a.ict_weights, b.ict_weights)
            assert np.abs(a.input.astype(int) - b.input.astype(int)).mean() > 5  # other faces
            np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(render_target(scene, a.ict_weights)[0], a.target)


def test_the_target_is_aligned_like_a_real_crop_and_regions_hold_eyes_and_mouth(scene) -> None:
    for i in range(3):
        p = render_pair(scene, i)
        for lm in (p.input_landmarks, p.target_landmarks):
            er, el = eye_centres(lm.astype(np.float64))
            assert np.abs(er - ALIGN_TEMPLATE[0] * S).max() < 2.5
            assert np.abs(el - ALIGN_TEMPLATE[1] * S).max() < 2.5
        eyes_r, eyes_l, mouth = region_boxes(S)
        lm = p.target_landmarks
        for box, pts in ((eyes_r, lm[36:42]), (eyes_l, lm[42:48]), (mouth, lm[MOUTH])):
            x0, y0, x1, y1 = box
            inside = (pts[:, 0] > x0) & (pts[:, 0] < x1) & (pts[:, 1] > y0) & (pts[:, 1] < y1)
            assert inside.all(), (i, box, pts)


def test_generate_pairs_writes_inputs_and_targets_with_the_same_keys(tmp_path: Path) -> None:
    from facexpr.io.shards import ShardReader

    try:
        generate_pairs(PairOptions(n=3, size=32, render_size=48, n_identities=2, antialias=0),
                       tmp_path / "p")  # fmt: skip
    except ImportError as e:
        pytest.skip(f"no headless OpenGL: {e}")
    ins = {s.key: s for s in ShardReader(tmp_path / "p" / "inputs", shuffle_buffer=0)}
    tgs = {s.key: s for s in ShardReader(tmp_path / "p" / "targets", shuffle_buffer=0)}
    assert sorted(ins) == sorted(tgs) == ["000000000", "000000001", "000000002"]
    for k in ins:
        np.testing.assert_array_equal(ins[k].labels["ict_weights"], tgs[k].labels["ict_weights"])
        assert np.asarray(ins[k].image).shape == (32, 32, 3)
    with pytest.raises(ConfigError, match="already"):
        generate_pairs(PairOptions(n=1, size=32, render_size=48, n_identities=1), tmp_path / "p")


def test_a_folder_of_captured_glb_avatars_is_an_identity_source(media_dir, tmp_path) -> None:
    from facexpr.avatars.gltf import save_avatar_gltf
    from facexpr.avatars.texture import TextureOptions
    from facexpr.synth.capture import CaptureOptions, capture

    try:
        cap = capture(media_dir / "single_face.jpg", CaptureOptions(texture=TextureOptions(64)))
    except ImportError as e:
        pytest.skip(f"no headless OpenGL: {e}")
    bank = tmp_path / "bank"  # never committed: a captured person
    bank.mkdir()
    save_avatar_gltf(cap.avatar, bank / "person.glb")
    (bank / "notes.txt").write_text("not an avatar")
    assert list_identity_files(bank) == (bank / "person.glb",)
    with PairScene(PairOptions(n=2, size=S, render_size=96, identities=str(bank),
                               antialias=0)) as sc:  # fmt: skip
        p = render_pair(sc, 0)
        ref = render_target(sc, p.ict_weights)[0]
    assert p.subject_id == "person"
    np.testing.assert_array_equal(p.target, ref)
    er, _el = eye_centres(p.input_landmarks.astype(np.float64))
    assert np.abs(er - ALIGN_TEMPLATE[0] * S).max() < 2.5  # the 68 points map onto the atlas rig
    # Textured: the face's colours come from the photo, not one flat skin albedo.
    face = p.input[S // 3 : 2 * S // 3, S // 3 : 2 * S // 3].reshape(-1, 3).astype(float)
    assert face.std(axis=0).mean() > 3


def test_bad_identity_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="identity folder not found"):
        list_identity_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no \.glb avatars"):
        list_identity_files(tmp_path / "empty")
    (tmp_path / "f.glb").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        list_identity_files(tmp_path / "f.glb")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"size": 8}, "16 <= size <= render_size"),
        ({"size": 96, "render_size": 64}, "16 <= size <= render_size"),
        ({"yaw_range": (10.0, -10.0)}, "yaw_range"),
        ({"backgrounds": ("photos",)}, "unknown kind"),
        ({"canonical_skin": (2.0, 0.5, 0.5)}, "canonical_skin"),
        ({"antialias": 3}, "antialias"),
        ({"n_identities": 0}, "n_identities"),
        ({"identities": ""}, "identities"),
    ],
)
def test_pair_options_are_checked(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PairOptions(**kw)

"""Headless rendering of the ICT avatars (moderngl on EGL; skipped where EGL is missing)."""

from __future__ import annotations

import builtins
import sys

import cv2
import numpy as np
import pytest

from facexpr.avatars.avatar import get_avatar
from facexpr.avatars.render import (
    Light,
    OpenGLUnavailableError,
    Renderer,
    RenderOptions,
    make_background,
    pose_matrix,
)
from facexpr.core.errors import ConfigError, MissingDependencyError


@pytest.fixture(scope="module")
def renderer():
    try:
        r = Renderer(RenderOptions(width=256, height=256))
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL (moderngl + EGL): {e}")
    yield r
    r.close()


@pytest.fixture(scope="module")
def ict():
    return get_avatar("ict")


@pytest.fixture(scope="module")
def neutral(renderer, ict):
    return renderer.render(ict)


def _box(points: np.ndarray, pad: int, size: int = 256) -> tuple[slice, slice]:
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + pad
    return slice(max(y0, 0), min(y1, size)), slice(max(x0, 0), min(x1, size))


def _diff(a: np.ndarray, b: np.ndarray, region: tuple[slice, slice]) -> float:
    return float(np.abs(a[region].astype(int) - b[region].astype(int)).mean())


def test_result_shapes_and_mask(neutral):
    assert neutral.image.shape == (256, 256, 3)
    assert neutral.image.dtype == np.uint8
    assert neutral.alpha.shape == (256, 256)
    assert neutral.alpha.dtype == np.uint8
    covered = (neutral.alpha > 0).mean()
    assert 0.15 < covered < 0.8
    # Background (default grey) where the head is not.
    np.testing.assert_array_equal(neutral.image[neutral.alpha == 0][:5], 128)


def test_landmarks_fall_inside_the_mask_and_are_visible(neutral):
    lm = neutral.landmarks68
    assert lm.shape == (68, 2)
    xi, yi = lm[:, 0].astype(int), lm[:, 1].astype(int)
    assert (neutral.alpha[yi, xi] == 255).all()
    assert neutral.landmarks_visible.all()
    # Image geometry: x right, y down; the subject's right eye (36-41) on the image left.
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    assert lm[19, 1] < lm[30, 1] < lm[8, 1]
    np.testing.assert_allclose(neutral.project(np.array([1225, 0])), lm[[0, 51]], atol=1e-4)


def test_turned_head_hides_far_contour(renderer, ict):
    res = renderer.render(ict, pose=(0, 60, 0))
    vis = res.landmarks_visible
    # + yaw turns toward the subject's left: the nose tip moves to the image right, the
    # subject's left jaw contour (13-16, image right) turns away and the right one faces us.
    assert res.landmarks68[30, 0] > 128
    assert not vis[13:17].any()
    assert vis[0:4].all()


def test_jaw_open_changes_mouth_not_forehead(renderer, ict, neutral):
    res = renderer.render(ict, ict.rig.weights(jawOpen=1.0))
    mouth = _box(np.concatenate([neutral.landmarks68[48:68], res.landmarks68[48:68]]), 2)
    brows = neutral.landmarks68[17:27]
    forehead = (slice(int(brows[:, 1].min()) - 30, int(brows[:, 1].min()) - 6),
                slice(int(brows[:, 0].min()), int(brows[:, 0].max())))  # fmt: skip
    assert _diff(res.image, neutral.image, mouth) > 20
    assert _diff(res.image, neutral.image, forehead) < 0.5
    # The mouth opens: lower lip (57) moves down by > 10 px.
    assert res.landmarks68[57, 1] - neutral.landmarks68[57, 1] > 10


def test_teeth_visible_when_lips_part(renderer, ict, neutral):
    w = ict.rig.weights(jawOpen=0.5, mouthUpperUp_L=1, mouthUpperUp_R=1, mouthLowerDown_L=1,
                        mouthLowerDown_R=1)  # fmt: skip

    def bright_in_mouth(res):
        mask = np.zeros((256, 256), np.uint8)
        cv2.fillPoly(mask, [np.round(res.landmarks68[60:68]).astype(np.int32)], 1)
        cv2.fillPoly(mask, [np.round(res.landmarks68[48:60]).astype(np.int32)], 1)
        im = res.image.astype(int)
        white = (im.min(axis=2) > 170) & (np.ptp(im, axis=2) < 45)
        return int((white & (mask > 0)).sum())

    # Closed lips show at most a glimpse of teeth through their seam.
    assert bright_in_mouth(renderer.render(ict, w)) > 150
    assert bright_in_mouth(neutral) < 40


def test_blink_left_changes_only_the_left_eye(renderer, ict, neutral):
    res = renderer.render(ict, ict.rig.weights(eyeBlink_L=1.0))
    left = _box(neutral.landmarks68[42:48], 4)  # subject's left eye: image right
    right = _box(neutral.landmarks68[36:42], 4)
    assert _diff(res.image, neutral.image, left) > 15
    assert _diff(res.image, neutral.image, right) < 0.5
    # The closed lid covers the iris: no dark iris pixels left in the left eye box.
    dark = lambda im, r: int((im[r].max(axis=2) < 90).sum())  # noqa: E731
    assert dark(neutral.image, left) > 20
    assert dark(res.image, left) < 0.2 * dark(neutral.image, left)


def test_rendering_is_deterministic(renderer, ict):
    w = np.random.default_rng(3).uniform(0, 0.6, ict.rig.n_channels).astype(np.float32)
    kw = dict(pose=(10, -20, 5), light={"direction": (-1, 1, 1), "intensity": 0.9},
              background="noise", seed=4)  # fmt: skip
    a = renderer.render(ict, w, **kw)
    b = renderer.render(ict, w, **kw)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.alpha.tobytes() == b.alpha.tobytes()
    other = Renderer(RenderOptions(width=256, height=256))
    try:
        c = other.render(ict, w, **kw)
    finally:
        other.close()
    assert c.image.tobytes() == a.image.tobytes()


def test_toon_and_identities_render(renderer, neutral):
    toon = renderer.render(get_avatar("ict_toon"))
    assert (toon.alpha > 0).mean() > 0.15
    # Toon shading: few distinct skin colours on the face compared with Lambert.
    cheek = _box(toon.landmarks68[[1, 2, 3, 31, 48]], 0)
    n_toon = len(np.unique(toon.image[cheek].reshape(-1, 3), axis=0))
    n_lam = len(np.unique(neutral.image[_box(neutral.landmarks68[[1, 2, 3, 31, 48]], 0)]
                          .reshape(-1, 3), axis=0))  # fmt: skip
    assert n_toon < n_lam / 2
    a = renderer.render(get_avatar("ict_000"))
    b = renderer.render(get_avatar("ict_001"))
    assert np.abs(a.landmarks68 - b.landmarks68).max() > 2.0


def test_skin_light_and_background(renderer, ict, neutral):
    dark = renderer.render(ict, skin=(0.35, 0.22, 0.15))
    face = neutral.alpha == 255
    assert dark.image[face].mean() < neutral.image[face].mean() - 30
    dim = renderer.render(ict, light=Light(intensity=0.2, ambient=0.1))
    assert dim.image[face].mean() < neutral.image[face].mean() - 40
    photo = np.zeros((100, 50, 3), np.uint8)
    photo[..., 2] = 200
    res = renderer.render(ict, background=photo)
    assert (res.image[res.alpha == 0] == [0, 0, 200]).all()
    bg = make_background("shapes", 64, 32, seed=1)
    assert bg.shape == (32, 64, 3)
    np.testing.assert_array_equal(bg, make_background("shapes", 64, 32, seed=1))
    assert not np.array_equal(bg, make_background("shapes", 64, 32, seed=2))
    assert make_background("gradient", 16, 16, seed=1).std() > 0


def test_pose_matrix_conventions():
    nose = np.array([0.0, 0.0, 1.0])
    assert (pose_matrix((20, 0, 0))[:3, :3] @ nose)[1] < 0  # + pitch looks down
    assert (pose_matrix((0, 20, 0))[:3, :3] @ nose)[0] > 0  # + yaw toward the subject's left
    np.testing.assert_allclose(pose_matrix((0, 0, 0, 1, 2, 3))[:3, 3], [1, 2, 3])
    with pytest.raises(ConfigError, match="pose must be"):
        pose_matrix((1, 2))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"width": 4}, "width and height"),
        ({"fov_deg": 0.5}, "fov_deg"),
        ({"distance": -1.0}, "distance must be"),
        ({"samples": 3}, "samples must be"),
        ({"background": "clouds"}, "unknown kind 'clouds'"),
        ({"background": (2, 0, 0)}, "RGB triple"),
    ],
)
def test_bad_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        RenderOptions(**kw)


def test_bad_render_arguments(renderer, ict):
    with pytest.raises(ConfigError, match=r"weights must be \(53,\)"):
        renderer.render(ict, np.zeros(52))
    with pytest.raises(ConfigError, match="expected an Avatar or a Rig"):
        renderer.render("ict")
    with pytest.raises(ConfigError, match="skin must be RGB"):
        renderer.render(ict, skin=(2, 0, 0))
    with pytest.raises(ConfigError, match="unknown keys"):
        renderer.render(ict, light={"colour": (1, 1, 1)})
    with pytest.raises(ConfigError, match=r"Light\.direction"):
        Light(direction=(0, 0, 0))
    with pytest.raises(ConfigError, match=r"images must be \(H, W, 3\) uint8"):
        renderer.render(ict, background=np.zeros((8, 8, 3), np.float32))


def test_render_after_close_fails():
    try:
        r = Renderer(RenderOptions(width=32, height=32))
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL: {e}")
    r.close()
    with pytest.raises(ConfigError, match="after close"):
        r.render(get_avatar("ict"))


def test_missing_moderngl_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "moderngl":
            raise ImportError("No module named 'moderngl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "moderngl", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=r"pip install 'facexpr\[render\]'"):
        Renderer()


def test_missing_egl_driver_is_explained(monkeypatch):
    moderngl = pytest.importorskip("moderngl")

    def no_egl(**kwargs):
        raise Exception("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(OpenGLUnavailableError, match=r"EGL driver.*eglGetDisplay failed"):
        Renderer()

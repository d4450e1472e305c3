"""Texture capture (facexpr.avatars.texture): unwrap a render of a known texture, fill, glTF."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.avatars.avatar import Avatar, Look, avatar_from_gltf
from facexpr.avatars.gltf import load_gltf, load_gltf_texture, save_avatar_gltf
from facexpr.avatars.ict import load_ict
from facexpr.avatars.render import Light, Renderer, RenderOptions
from facexpr.avatars.rig import Rig
from facexpr.avatars.texture import (
    MOUTH_SOCKET,
    Camera,
    TextureOptions,
    TextureSample,
    atlas_rig,
    fill_texture,
    merge,
    unwrap,
)
from facexpr.core.errors import ConfigError, MissingDependencyError

S = 96  # texture height (the atlas is S x 2S): small, the test textures are smooth


@pytest.fixture(scope="module")
def renderer():
    try:
        r = Renderer(RenderOptions(width=192, height=192))
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL (moderngl + EGL): {e}")
    yield r
    r.close()


@pytest.fixture(scope="module")
def rig():
    return atlas_rig(load_ict())


def known_texture(shift: float = 0.0) -> np.ndarray:
    """A smooth colour pattern over the atlas (periods of a third of a tile and more)."""
    yy, xx = np.mgrid[0:S, 0 : 2 * S] / S
    xx = xx + shift
    return np.stack(
        [150 + 80 * np.sin(2 * np.pi * 3 * xx), 120 + 70 * np.cos(2 * np.pi * 4 * yy),
         100 + 60 * np.sin(2 * np.pi * (2 * xx + yy))], axis=-1,
    ).astype(np.uint8)  # fmt: skip


FLAT = Light(intensity=0.0, ambient=1.0, specular=0.0)  # rendered colour = albedo


@pytest.fixture(scope="module")
def captured(renderer, rig):
    """The render of the known texture (yaw 20 degrees) and what unwrap recovers from it."""
    tex = known_texture()
    avatar = Avatar("known", rig, identity=np.full(10, 0.5, np.float32), look=Look(specular=0.0),
                    texture=tex)  # fmt: skip
    res = renderer.render(avatar, light=FLAT, pose=(5.0, 20.0, 0.0))
    cam, verts = Camera.from_render(res)
    return tex, res, unwrap(res.image, verts, cam, rig, TextureOptions(size=S))


def test_atlas_rig_keeps_geometry_and_separates_the_mouth_socket(rig):
    ict = load_ict()
    np.testing.assert_array_equal(rig.neutral[rig.faces], ict.neutral[ict.faces])
    np.testing.assert_allclose(rig.uv[rig.faces] * [2.0, 1.0], ict.uv, atol=1e-6)
    np.testing.assert_array_equal(
        rig.neutral[rig.landmark_vertices], ict.neutral[ict.landmark_vertices]
    )
    socket = rig.face_material == rig.material_names.index(MOUTH_SOCKET)
    assert int(socket.sum()) == 4016  # ICT's mouth socket: 2008 quads


def test_unwrap_recovers_a_known_texture_in_the_visible_region(captured):
    tex, _, smp = captured
    seen = smp.weight > 0.5  # facing the camera within 60 degrees, not hidden
    assert 0.2 < smp.seen_fraction < 0.6  # one view: the face and one side, not the back
    assert seen.sum() > 2000
    err = np.abs(smp.color * 255.0 - tex.astype(np.float32))[seen]
    # Measured 0.3 / 255 mean: the error is the render's and the unwrap's resampling only.
    assert err.mean() < 3.0
    assert np.percentile(err, 99) < 20.0
    # The comparison is sharp enough to tell a texture shifted by a twelfth of a tile.
    wrong = np.abs(smp.color * 255.0 - known_texture(1 / 12).astype(np.float32))[seen]
    assert wrong.mean() > 10 * err.mean()


def test_unwrap_hides_what_the_head_occludes(captured, rig):
    _, _, smp = captured
    # Turned 20 degrees to the subject's left (+yaw), the head shows its right cheek and hides
    # part of its left: the subject's right half of the face tile (u < 0.25 in the atlas, as
    # +x, the subject's left, has the larger u) is seen more.
    face = smp.weight[:, :S]
    right, left = face[:, : S // 2], face[:, S // 2 :]
    assert (right > 0).sum() > 1.5 * (left > 0).sum()
    # The back of the head (the atlas's right half, mostly the scalp) is barely seen.
    assert (smp.weight[:, S:] > 0).mean() < 0.2


def test_mask_zero_sees_nothing(renderer, rig, captured):
    _, res, _ = captured
    cam, verts = Camera.from_render(res)
    smp = unwrap(res.image, verts, cam, rig, TextureOptions(size=S),
                 mask=np.zeros((res.height, res.width), np.float32))  # fmt: skip
    assert smp.seen_fraction == 0.0


def test_fill_completes_keeps_seen_texels_and_mirrors(captured, rig):
    tex, _, smp = captured
    filled, tone = fill_texture(smp, rig, TextureOptions(size=S))
    assert filled.shape == (S, 2 * S, 3)
    assert filled.dtype == np.uint8
    core = smp.weight > 0.6
    err = np.abs(filled.astype(np.float32) - tex.astype(np.float32))[core]
    assert err.mean() < 4.0
    assert tone.shape == (3,)
    assert (tone > 0).all()
    assert (tone < 1).all()
    # Hide the subject's right half of the face: it comes back as the mirror of the left.
    w = smp.weight.copy()
    w[:, : S // 2] = 0.0
    half = TextureSample(smp.color, w, smp.covered)
    mirrored, _ = fill_texture(half, rig, TextureOptions(size=S))
    left = smp.weight[:, S // 2 : S] > 0.6
    src = tex[:, S // 2 : S][left].astype(np.float32)
    got = mirrored[:, : S // 2][:, ::-1][left].astype(np.float32)
    # The known texture is not symmetric: compare with the mirrored source, not the original.
    assert np.abs(got - src).mean() < 6.0
    off, _ = fill_texture(half, rig, TextureOptions(size=S, mirror=False))
    assert np.abs(off[:, : S // 2][:, ::-1][left].astype(np.float32) - src).mean() > 15.0


def test_merge_weights_by_visibility():
    c1 = np.zeros((4, 8, 3), np.float32)
    c2 = np.ones((4, 8, 3), np.float32)
    w1 = np.full((4, 8), 3.0, np.float32)
    w2 = np.full((4, 8), 1.0, np.float32)
    cov = np.ones((4, 8), bool)
    m = merge([TextureSample(c1, w1, cov), TextureSample(c2, w2, cov)])
    np.testing.assert_allclose(m.color, 0.25)
    np.testing.assert_allclose(m.weight, 4.0)
    with pytest.raises(ConfigError, match="no texture samples"):
        merge([])
    with pytest.raises(ConfigError, match="different sizes"):
        merge([TextureSample(c1, w1, cov), TextureSample(c1[:2], w1[:2], cov[:2])])


def test_bad_arguments_are_refused(captured, rig):
    _, res, _ = captured
    cam, verts = Camera.from_render(res)
    with pytest.raises(ConfigError, match="uint8"):
        unwrap(res.image.astype(np.float32), verts, cam, rig)
    with pytest.raises(ConfigError, match="the camera"):
        unwrap(res.image[:100], verts, cam, rig)
    with pytest.raises(ConfigError, match="vertices must be"):
        unwrap(res.image, verts[:10], cam, rig)
    with pytest.raises(ConfigError, match="per-vertex UVs"):
        unwrap(res.image, load_ict().neutral, cam, load_ict())
    with pytest.raises(ConfigError, match="mask must be"):
        unwrap(res.image, verts, cam, rig, mask=np.ones((3, 3)))
    with pytest.raises(ConfigError, match="size must be in"):
        TextureOptions(size=8)
    with pytest.raises(ConfigError, match="min_cos"):
        TextureOptions(min_cos=1.5)
    with pytest.raises(ConfigError, match="focal lengths"):
        Camera(0.0, 1.0, 0.0, 0.0, 10, 10)
    with pytest.raises(ConfigError, match="texture must be"):
        Avatar("x", rig, texture=np.zeros((8, 8), np.uint8))
    bare = Rig(neutral=rig.neutral, faces=rig.faces, channel_names=(),
               deltas=np.zeros((0, rig.n_vertices, 3)))  # fmt: skip
    with pytest.raises(ConfigError, match="needs UVs"):
        Avatar("x", bare, texture=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="no UVs or materials"):
        atlas_rig(bare)


def test_textured_avatar_round_trips_through_gltf(tmp_path, rig, renderer):
    tex = known_texture()
    avatar = Avatar("person", rig, identity=np.full(5, -0.5, np.float32), look=Look(lips=None),
                    texture=tex)  # fmt: skip
    path = save_avatar_gltf(avatar, tmp_path / "person.glb")
    back = load_gltf_texture(path)
    assert back is not None
    np.testing.assert_array_equal(back.image, tex)  # PNG: lossless
    assert set(back.materials) == {"M_Face", "M_BackHead"}
    loaded = avatar_from_gltf(path)
    assert loaded.texture is not None
    assert loaded.texture.shape == tex.shape
    np.testing.assert_allclose(loaded.rig.neutral, avatar.base, atol=1e-5)
    assert loaded.rig.n_channels == 53
    # Hidden overlays are not written; the mouth socket is its own (untextured) material.
    assert "M_EyeOcclusion" not in loaded.rig.material_names
    assert MOUTH_SOCKET in loaded.rig.material_names
    # The loaded avatar renders with its texture (same albedo as the original, flat light).
    a = renderer.render(avatar, light=FLAT).image.astype(np.float32)
    b = renderer.render(loaded, light=FLAT).image.astype(np.float32)
    assert a.std() > 20  # the texture shows
    assert b.std() > 20


def test_gltf_without_texture_reads_none(tmp_path):
    from facexpr.avatars.gltf import save_gltf

    path = save_gltf(load_ict(), tmp_path / "plain.glb")
    assert load_gltf_texture(path) is None
    assert avatar_from_gltf(path).texture is None
    assert load_gltf(path).n_vertices == 26719


def _textured_gltf(tmp_path, rig):
    """A small textured .gltf (JSON, buffer as a data URI) and its parsed JSON."""
    import json

    tex = known_texture()
    avatar = Avatar("p", rig, look=Look(lips=None), texture=tex)
    path = save_avatar_gltf(avatar, tmp_path / "p.gltf")
    return path, json.loads(path.read_text())


def test_gltf_textures_are_read_as_untrusted(tmp_path, rig):
    import json

    from facexpr.core.errors import InputError

    path, doc = _textured_gltf(tmp_path, rig)
    assert load_gltf_texture(path).image.shape == (S, 2 * S, 3)
    with pytest.raises(InputError, match=r"p\.gltf: images\[0\] is 192x96, larger than 64"):
        load_gltf_texture(path, max_side=64)
    bad = dict(doc)
    bad["images"] = [{"uri": "../secret.png"}]
    (tmp_path / "up.gltf").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"up\.gltf: images\[0\]\.uri .* goes up a folder"):
        load_gltf_texture(tmp_path / "up.gltf")
    bad["images"] = [{"uri": "data:image/png;base64,bm90IGFuIGltYWdl"}]  # "not an image"
    (tmp_path / "junk.gltf").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"junk\.gltf: images\[0\] cannot be decoded"):
        load_gltf_texture(tmp_path / "junk.gltf")
    bad["images"] = [{}]
    (tmp_path / "none.gltf").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"neither a bufferView nor a uri"):
        load_gltf_texture(tmp_path / "none.gltf")
    bad["textures"] = [{"source": 7}]
    (tmp_path / "idx.gltf").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"images\[7\] does not exist"):
        load_gltf_texture(tmp_path / "idx.gltf")


def test_delight_evens_a_one_sided_light(renderer, rig):
    from facexpr.avatars.texture import delight, shading

    tex = np.empty((S, 2 * S, 3), np.uint8)
    tex[:] = (200, 150, 130)  # one albedo everywhere
    avatar = Avatar("flat", rig, look=Look(specular=0.0), texture=tex)
    side = Light(direction=(1.0, 0.2, 0.6), intensity=0.8, ambient=0.25, specular=0.0)
    res = renderer.render(avatar, light=side)
    cam, verts = Camera.from_render(res)
    smp = unwrap(res.image, verts, cam, rig, TextureOptions(size=S))
    seen = smp.weight > 0.5
    lit, light = delight(smp)
    before = smp.color[seen].mean(axis=1).std()
    after = lit.color[seen].mean(axis=1).std()
    assert after < 0.5 * before  # the gradient of the side light is mostly gone
    # The light found points the way the renderer's did: brighter for normals toward +x.
    assert float(shading(np.array([[1.0, 0.0, 0.0]], np.float32), light)[0, 0]) > float(
        shading(np.array([[-1.0, 0.0, 0.0]], np.float32), light)[0, 0]
    )
    # Colour kept: the albedo's channel order (R > G > B) survives.
    mean = lit.color[seen].mean(axis=0)
    assert mean[0] > mean[1] > mean[2]
    with pytest.raises(ConfigError, match="no normals"):
        delight(merge([smp]))


def test_renders_after_a_capture_use_their_own_context(renderer, rig, captured):
    # unwrap makes (and releases) its own OpenGL context; the renderer must draw in its own.
    _, res, _ = captured
    avatar = Avatar("c", rig, look=Look(specular=0.0), texture=known_texture())
    cam, verts = Camera.from_render(res)
    unwrap(res.image, verts, cam, rig, TextureOptions(size=S))
    side = Light(direction=(1.0, 0.2, 0.6), intensity=0.8, ambient=0.25, specular=0.0)
    after = renderer.render(avatar, light=side).image
    with Renderer(RenderOptions(width=192, height=192)) as fresh:
        expected = fresh.render(avatar, light=side).image
    np.testing.assert_array_equal(after, expected)

"""Avatar registry, looks, identities and the stylised avatar."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.avatars.avatar import (
    Avatar,
    Look,
    get_avatar,
    list_avatars,
    register_avatar,
    register_gltf_avatar,
    stylise,
    unregister_avatar,
)
from facexpr.avatars.gltf import save_gltf
from facexpr.avatars.ict import ICT_PARTS, load_ict
from facexpr.core.arkit import arkit_to_ict_matrix
from facexpr.core.errors import ConfigError


def test_builtins_are_listed():
    names = list_avatars()
    assert {"ict", "ict_toon", *(f"ict_{k:03d}" for k in range(8))} <= set(names)
    assert list_avatars("ict_00*") == [f"ict_{k:03d}" for k in range(8)]


def test_sampled_identities_differ_and_are_seeded():
    a, b = get_avatar("ict_000"), get_avatar("ict_001")
    assert a.identity.shape == (50,)
    rms = np.sqrt(((a.base - b.base) ** 2).sum(axis=1).mean())
    assert rms > 0.3  # cm: clearly different heads
    np.testing.assert_array_equal(
        a.identity, np.random.default_rng(0).standard_normal(50).astype(np.float32)
    )
    assert a.channel_names == get_avatar("ict").channel_names


def test_identity_override_and_limits():
    z = np.zeros(50, np.float32)
    z[0] = 2.0
    av = get_avatar("ict", identity=z)
    rig = av.rig
    np.testing.assert_allclose(av.base, rig.neutral + 2.0 * rig.identity_basis[0], atol=1e-4)
    w = rig.weights(jawOpen=1.0)
    np.testing.assert_allclose(av.evaluate(w), rig.evaluate(w, z), atol=1e-4)
    with pytest.raises(ConfigError, match="has 50 identity modes"):
        get_avatar("ict", identity=np.zeros(100))


def test_unknown_name_lists_close_matches():
    with pytest.raises(ConfigError, match="unknown avatar 'ict_tooon'; did you mean 'ict_toon'"):
        get_avatar("ict_tooon")


def test_register_and_duplicates(tmp_path):
    rig = load_ict()
    av = Avatar("mine_test", rig, look=Look(skin=(0.4, 0.3, 0.2)))
    register_avatar(av)
    try:
        assert get_avatar("mine_test") is av
        with pytest.raises(ConfigError, match="already registered"):
            register_avatar(av)
    finally:
        unregister_avatar("mine_test")
    assert "mine_test" not in list_avatars()
    with pytest.raises(ConfigError, match="give a name"):
        register_avatar(lambda: av)
    with pytest.raises(ConfigError, match="no avatar named"):
        unregister_avatar("mine_test")


def test_gltf_avatar_keeps_its_channels(tmp_path):
    rng = np.random.default_rng(0)
    from facexpr.avatars.rig import Rig

    tiny = Rig(neutral=rng.normal(size=(3, 3)), faces=[[0, 1, 2]],
               channel_names=("blendShape1.jawOpen", "eyeBlinkLeft"),
               deltas=rng.normal(size=(2, 3, 3)))  # fmt: skip
    path = save_gltf(tiny, tmp_path / "t.glb")
    register_gltf_avatar("gltf_test", path)
    try:
        av = get_avatar("gltf_test")
        assert av.channel_names == ("jawOpen", "eyeBlinkLeft")
        m = av.arkit_matrix()
        assert m.shape == (2, 52)
        assert m.sum() == 2.0
    finally:
        unregister_avatar("gltf_test")


def test_ict_arkit_matrix_matches_core():
    np.testing.assert_array_equal(get_avatar("ict").arkit_matrix(), arkit_to_ict_matrix())


def test_toon_has_bigger_eyes_and_smaller_jaw():
    ict, toon = get_avatar("ict"), get_avatar("ict_toon")
    assert toon.look.shading == "toon"
    a, b = ICT_PARTS["sclera_left"]

    def size(v):
        return np.ptp(v[a:b], axis=0).mean()

    assert size(toon.base) / size(ict.base) == pytest.approx(1.35, abs=0.05)
    lm0, lm1 = ict.rig.landmarks(ict.base), toon.rig.landmarks(toon.base)
    jaw0 = np.ptp(lm0[4:13, 0])
    jaw1 = np.ptp(lm1[4:13, 0])
    assert jaw1 < 0.95 * jaw0
    w = toon.rig.weights(jawOpen=1.0)
    assert np.abs(toon.evaluate(w) - toon.base).max() > 1.0


def test_stylise_needs_ict_topology():
    from facexpr.avatars.rig import Rig

    tiny = Rig(neutral=np.zeros((3, 3)), faces=[[0, 1, 2]], channel_names=(),
               deltas=np.zeros((0, 3, 3)))  # fmt: skip
    with pytest.raises(ConfigError, match="does not have the ICT FaceKit topology"):
        stylise(tiny)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"skin": (1.2, 0, 0)}, r"Look.skin: expected an RGB triple"),
        ({"shading": "phong"}, "shading must be"),
        ({"toon_bands": 1}, "toon_bands must be"),
        ({"outline": 2.0}, "outline must be"),
        ({"colors": {"M_Teeth": (1, 1)}}, r"colors\['M_Teeth'\]"),
    ],
)
def test_bad_looks(kw, match):
    with pytest.raises(ConfigError, match=match):
        Look(**kw)


def test_avatar_needs_a_name():
    with pytest.raises(ConfigError, match="name must not be empty"):
        Avatar("", load_ict())


def test_from_arkit_and_with_look():
    av = get_avatar("ict")
    from facexpr.core.arkit import ARKIT_NAMES

    arkit = np.zeros(52, np.float32)
    arkit[ARKIT_NAMES.index("browInnerUp")] = 0.8
    w = av.from_arkit(arkit)
    assert w[av.rig.channel_index("browInnerUp_L")] == pytest.approx(0.8)
    assert w[av.rig.channel_index("browInnerUp_R")] == pytest.approx(0.8)
    assert w.sum() == pytest.approx(1.6)
    dark = av.with_look(skin=(0.3, 0.2, 0.1))
    assert dark.look.skin == (0.3, 0.2, 0.1)
    assert av.look.skin != dark.look.skin


def test_avatar_from_gltf_loads_now_and_registers_nothing(tmp_path):
    from facexpr.avatars.avatar import avatar_from_gltf
    from facexpr.avatars.rig import Rig
    from facexpr.core.errors import InputError

    rng = np.random.default_rng(0)
    tiny = Rig(neutral=rng.normal(size=(3, 3)), faces=[[0, 1, 2]], channel_names=("jawOpen",),
               deltas=rng.normal(size=(1, 3, 3)))  # fmt: skip
    path = save_gltf(tiny, tmp_path / "t.glb")
    before = list_avatars()
    a, b = avatar_from_gltf(path), avatar_from_gltf(path)  # twice: no "already registered"
    assert list_avatars() == before
    assert a.name == f"file:{path.resolve()}"
    np.testing.assert_array_equal(a.rig.neutral, b.rig.neutral)
    with pytest.raises(InputError, match="glTF file not found"):
        avatar_from_gltf(tmp_path / "missing.glb")

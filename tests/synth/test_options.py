"""Tests of SynthOptions validation (no rendering)."""

from __future__ import annotations

import pytest

from facexpr.core.errors import ConfigError
from facexpr.synth import SynthOptions


def test_options_errors() -> None:
    with pytest.raises(ConfigError, match="n must be >= 1"):
        SynthOptions(n=0)
    with pytest.raises(ConfigError, match="size <= render_size"):
        SynthOptions(size=300, render_size=256)
    with pytest.raises(ConfigError, match="needs background_dir"):
        SynthOptions(background="photos")
    with pytest.raises(ConfigError, match="yaw_range"):
        SynthOptions(yaw_range=(30, -30))
    with pytest.raises(ConfigError, match="unknown kind"):
        SynthOptions(background="sky")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        SynthOptions(workers=0)
    with pytest.raises(ConfigError, match="light must be"):
        SynthOptions(light="dark")


def test_more_options_errors() -> None:
    with pytest.raises(ConfigError, match="at least one avatar"):
        SynthOptions(avatars=())
    with pytest.raises(ConfigError, match="n_identities must be >= 1"):
        SynthOptions(n_identities=0)
    with pytest.raises(ConfigError, match="skin_tones"):
        SynthOptions(skin_tones=((1.5, 0.5, 0.5),))
    with pytest.raises(ConfigError, match="png_compression"):
        SynthOptions(png_compression=11)
    with pytest.raises(ConfigError, match="antialias must be 0, 2, 4 or 8"):
        SynthOptions(antialias=3)


def test_identities_default_and_backgrounds() -> None:
    assert SynthOptions(n=10_000).identities == 200
    assert SynthOptions(n=10).identities == 1
    assert SynthOptions(background="noise").backgrounds == ("noise",)


def test_background_dir_without_the_photos_kind_is_an_error() -> None:
    with pytest.raises(ConfigError, match="background_dir is given but 'photos' is not one of"):
        SynthOptions(background_dir="photos/")
    assert SynthOptions(background=("noise", "photos"), background_dir="p").backgrounds == (
        "noise",
        "photos",
    )

"""Tests of synthetic backgrounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.synth.compose import draw_background, list_photos


@pytest.mark.parametrize("kind", ["solid", "gradient", "noise"])
def test_backgrounds(kind: str) -> None:
    a = draw_background(np.random.default_rng(3), kind, 40, 50)  # type: ignore[arg-type]
    b = draw_background(np.random.default_rng(3), kind, 40, 50)  # type: ignore[arg-type]
    assert a.shape == (40, 50, 3)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    if kind != "solid":
        assert a.reshape(-1, 3).std(0).max() > 1


def test_photo_backgrounds(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((60, 80, 3), 200, np.uint8))
    photos = list_photos(tmp_path)
    img = draw_background(np.random.default_rng(0), "photos", 32, 32, photos)
    assert img.shape == (32, 32, 3)
    assert int(img[0, 0, 0]) == 200


def test_background_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="background photo folder not found"):
        list_photos(tmp_path / "nope")
    with pytest.raises(InputError, match="no images"):
        list_photos(tmp_path)
    with pytest.raises(ConfigError, match="unknown background kind 'x'"):
        draw_background(np.random.default_rng(0), "x", 8, 8)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a folder with images"):
        draw_background(np.random.default_rng(0), "photos", 8, 8)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"bad\.png: not a readable image.*background folder"):
        list_photos(tmp_path)
    with pytest.raises(InputError, match=r"bad\.png: cannot read background image: not a"):
        draw_background(np.random.default_rng(0), "photos", 8, 8, (tmp_path / "bad.png",))


def test_list_photos_checks_every_image_header(tmp_path: Path) -> None:
    import os

    from facexpr.io.images import write_image

    write_image(tmp_path / "b" / "ok.PNG", np.full((30, 40, 3), 7, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image, not picked up\n")
    assert list_photos(tmp_path) == (tmp_path / "b" / "ok.PNG",)
    write_image(tmp_path / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match=r"tiny\.png: image is 10x10 px; at least 20"):
        list_photos(tmp_path)
    (tmp_path / "tiny.png").unlink()
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(InputError, match=r"pipe\.jpg: not a regular file \(a FIFO\)"):
        list_photos(tmp_path)


def test_photo_background_is_a_crop_of_the_rgb_photo(tmp_path: Path) -> None:
    from facexpr.io.images import write_image

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 250  # pure red: a BGR/RGB swap would show as blue
    write_image(tmp_path / "red.png", rgb)
    img = draw_background(np.random.default_rng(1), "photos", 16, 16, list_photos(tmp_path))
    assert img.dtype == np.uint8
    assert img.shape == (16, 16, 3)
    assert int(img[..., 0].min()) == 250
    assert int(img[..., 2].max()) == 0

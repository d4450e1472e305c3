"""Tests of backgrounds and landmark alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.synth.compose import (
    ALIGN_POINTS,
    align_face,
    draw_background,
    list_photos,
    similarity_transform,
    template68,
)


def test_similarity_recovers_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (20, 2))
    a = np.deg2rad(17.0)
    r = 1.7 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ r.T + [5.0, -3.0]
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], r, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], [5.0, -3.0], atol=1e-9)


def test_template_is_a_frontal_face() -> None:
    t = template68(224)
    assert t.shape == (68, 2)
    assert t[36, 0] < t[45, 0]  # subject's right eye on the image left
    assert t[8, 1] > t[30, 1] > t[27, 1]  # chin below nose tip below nose bridge
    assert t.min() > 0
    assert t.max() < 224


def test_align_maps_template_placed_face_to_itself() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    a = np.deg2rad(-12)
    r = 1.2 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = template68(224) @ r.T + [30, 20]
    crop, pts, _ = align_face(img, lm, 224)
    assert crop.shape == (224, 224, 3)
    np.testing.assert_allclose(pts, template68(224), atol=1e-3)
    assert len(ALIGN_POINTS) >= 8


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
    with pytest.raises(InputError, match="cannot read background image"):
        draw_background(np.random.default_rng(0), "photos", 8, 8, (tmp_path / "bad.png",))

"""Tests of facexpr.io.images on the real photos and on tiny files made here."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import InputError
from facexpr.io.images import IMAGE_EXTENSIONS, is_image_path, read_image, write_image


def _pattern(h: int = 40, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("single_face.jpg", (562, 572, 3)),
        ("multi_face.jpg", (667, 1000, 3)),
        ("BWPictureHuman.jpg", (1912, 2560, 3)),
        ("Image_with_alpha.png", (1036, 1524, 3)),
        ("0-f1-su-ph.jpg", (512, 512, 3)),
    ],
)
def test_real_photos_read_as_rgb8(media_dir: Path, name: str, shape: tuple[int, ...]) -> None:
    rgb = read_image(media_dir / name)
    assert rgb.shape == shape
    assert rgb.dtype == np.uint8


def test_greyscale_photo_has_equal_channels(media_dir: Path) -> None:
    rgb = read_image(media_dir / "BWPictureHuman.jpg")
    assert np.array_equal(rgb[..., 0], rgb[..., 1])
    assert np.array_equal(rgb[..., 1], rgb[..., 2])
    assert rgb.std() > 10  # a real picture, not a flat fill


def test_opaque_rgba_photo_keeps_its_colours(media_dir: Path) -> None:
    src = media_dir / "Image_with_alpha.png"
    rgba = np.asarray(Image.open(src))
    assert rgba.shape[2] == 4  # the fixture is RGBA (with every pixel opaque)
    assert np.array_equal(read_image(src), rgba[..., :3])


def test_alpha_is_composited_onto_white(tmp_path: Path) -> None:
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:10, :, 3] = 255  # opaque red band
    rgba[10:20, :, 3] = 128  # half-transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png").astype(int)
    assert rgb[0, 0].tolist() == [200, 0, 0]
    assert np.abs(rgb[15, 0] - [228, 127, 127]).max() <= 1
    assert rgb[25, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("ext", sorted(IMAGE_EXTENSIONS))
def test_write_read_round_trip_every_format(tmp_path: Path, ext: str) -> None:
    rgb = _pattern()
    path = tmp_path / f"x{ext}"
    write_image(path, rgb)
    back = read_image(path)
    assert back.shape == rgb.shape
    lossy = ext in (".jpg", ".jpeg", ".webp")
    err = np.abs(back.astype(int) - rgb.astype(int)).mean()
    assert err < (60 if lossy else 1e-9)  # noise is hard for JPEG; lossless must be exact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_extension_match_is_case_insensitive() -> None:
    assert is_image_path("A/B.JPG")
    assert is_image_path("x.TiFf")
    assert not is_image_path("x.mp4")


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = read_image(path)
    expected = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert np.abs(rgb[..., 0].astype(float) - expected).max() <= 1
    assert rgb.max() == 255
    assert rgb.min() == 0


def test_16bit_rgb_tiff_and_float_and_cmyk_and_palette(tmp_path: Path) -> None:
    grey = np.full((30, 30), 0.5, np.float32)
    Image.fromarray(grey, mode="F").save(tmp_path / "f.tif")
    assert abs(int(read_image(tmp_path / "f.tif")[0, 0, 0]) - 128) <= 1
    Image.new("CMYK", (30, 30), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    r, g, b = read_image(tmp_path / "c.jpg")[15, 15].astype(int)
    assert r > 200  # CMYK (0, 255, 255, 0) is red
    assert max(g, b) < 60
    p = Image.new("P", (30, 30), 0)
    p.putpalette([0, 0, 255] + [0] * 765)
    p.info["transparency"] = 1
    p.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0, 0].tolist() == [0, 0, 255]


def test_greyscale_png_with_la_alpha(tmp_path: Path) -> None:
    la = np.zeros((24, 24, 2), np.uint8)
    la[..., 0] = 10
    la[:12, :, 1] = 255  # top half opaque dark grey, bottom half transparent
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    rgb = read_image(tmp_path / "la.png")
    assert rgb[0, 0].tolist() == [10, 10, 10]
    assert rgb[-1, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.fromarray(_pattern(40, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert Image.open(tmp_path / "rot.jpg").size == (60, 40)
    assert read_image(tmp_path / "rot.jpg").shape == (60, 40, 3)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (30, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    rgb = read_image(tmp_path / "a.gif")
    assert rgb.shape == (30, 30, 3)
    assert rgb[5, 5].tolist() == [255, 0, 0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        read_image(tmp_path / "e.png")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "t.jpg").write_text("this is not a picture\n")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "t.jpg")


def test_truncated_jpeg(media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / "single_face.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt image"):
        read_image(tmp_path / "half.jpg")


def test_truncated_png(tmp_path: Path) -> None:
    write_image(tmp_path / "full.png", _pattern(200, 200))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt image"):
        read_image(tmp_path / "half.png")


def _png(path: Path, w: int, h: int, idat: bytes, color: int = 0, interlace: int = 0) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, interlace)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_png_with_fewer_rows_than_its_header_is_truncated(tmp_path: Path) -> None:
    # A complete zlib stream holding 1 of 300 rows: Pillow itself fills the rest silently.
    _png(tmp_path / "short.png", 400, 300, zlib.compress(b"\0" + b"\x80" * 1200), color=2)
    with pytest.raises(
        InputError, match=r"short\.png: truncated or corrupt image: .*holds 1201 of the 360300 "
    ):
        read_image(tmp_path / "short.png")


@pytest.mark.parametrize("interlace", [0, 1])
def test_png_row_count_is_exact_also_when_interlaced(tmp_path: Path, interlace: int) -> None:
    # 37 x 29 RGB: Adam7 passes are 5x4, 5x4, 10x4, 9x8, 19x7, 18x15, 37x14 px.
    w, h = 37, 29
    if interlace:
        passes = [(5, 4), (5, 4), (10, 4), (9, 8), (19, 7), (18, 15), (37, 14)]
        raw = b"".join(b"\0" + b"\x40" * (3 * pw) for pw, ph in passes for _ in range(ph))
    else:
        raw = b"".join(b"\0" + b"\x40" * (3 * w) for _ in range(h))
    _png(tmp_path / "full.png", w, h, zlib.compress(raw), color=2, interlace=interlace)
    rgb = read_image(tmp_path / "full.png")
    assert rgb.shape == (h, w, 3)
    assert int(rgb.min()) == int(rgb.max()) == 0x40
    _png(tmp_path / "cut.png", w, h, zlib.compress(raw[:-1]), color=2, interlace=interlace)
    with pytest.raises(InputError, match=r"cut\.png: truncated or corrupt image"):
        read_image(tmp_path / "cut.png")


def test_too_small(tmp_path: Path) -> None:
    write_image(tmp_path / "small.png", _pattern(15, 12))
    with pytest.raises(InputError, match="image is 12x15 px; at least 20 px per side is needed"):
        read_image(tmp_path / "small.png")


def _png_header_only(path: Path, w: int, h: int) -> None:
    """Writes a PNG whose header claims w x h with one tiny compressed stream (a cheap bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_too_large_9000x10(tmp_path: Path) -> None:
    Image.new("L", (9000, 10)).save(tmp_path / "wide.png")
    with pytest.raises(InputError, match="image is 9000x10 px; at most 8000 px per side"):
        read_image(tmp_path / "wide.png")


def test_mid_size_header_rejected_before_decoding(tmp_path: Path) -> None:
    _png_header_only(tmp_path / "big.png", 9000, 9000)  # under Pillow's own bomb limit
    with pytest.raises(InputError, match="image is 9000x9000 px; at most 8000 px per side"):
        read_image(tmp_path / "big.png")


def test_decompression_bomb_rejected_from_header(tmp_path: Path) -> None:
    _png_header_only(tmp_path / "bomb.png", 60000, 60000)
    t = time.perf_counter()
    with pytest.raises(
        InputError, match=r"image too large: at most 8000 px per side.*3600000000 pixels"
    ):
        read_image(tmp_path / "bomb.png")
    assert time.perf_counter() - t < 1.0  # nothing was decoded


def test_write_image_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown image extension '\.xyz'"):
        write_image(tmp_path / "a.xyz", _pattern())
    with pytest.raises(InputError, match=r"expected \(H, W, 3\) uint8 RGB"):
        write_image(tmp_path / "a.png", _pattern().astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_write_image_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    write_image(path, np.zeros((20, 20, 3), np.uint8))
    write_image(path, np.full((20, 20, 3), 7, np.uint8))
    assert read_image(path)[0, 0].tolist() == [7, 7, 7]
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_written_images_get_the_usual_file_mode(tmp_path) -> None:
    import os
    import stat

    from facexpr.io.images import write_image

    out = tmp_path / "x.png"
    write_image(out, np.zeros((30, 30, 3), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe\.jpg: not a regular file \(a FIFO\)"):
        read_image(fifo)  # returns at once: a FIFO is never opened


def test_write_image_with_a_long_name_and_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    name = "x" * 240 + ".png"  # 244 bytes: the old ".NAME.XXXXXXXX.tmp" temp name passed 255
    (tmp_path / f".{name}.tmp").symlink_to(victim)  # where the old writer put its temp file
    write_image(tmp_path / name, _pattern())
    assert np.array_equal(read_image(tmp_path / name), _pattern())
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".{name}.tmp", name, "victim.txt"]
    )

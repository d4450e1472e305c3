"""Hostile photos for ``facexpr analyze``: empty, truncated, mislabelled, headers that lie about
their size, decompression bombs, polyglots, too small and too large."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

from corpus import (
    MEDIA,
    Case,
    CaseDirs,
    Setup,
    expect_tables,
    good_face,
    jpeg_bytes,
    jpeg_claiming,
    png_bomb,
    png_bytes,
    tiff_claiming,
)


def analyze(dirs: CaseDirs, *inputs: Path | str, extra: tuple[str, ...] = ()) -> list[str]:
    """Returns the ``facexpr analyze`` arguments for ``inputs`` into ``out/``."""
    return ["analyze", *map(str, inputs), "-o", str(dirs.out), "--no-progress", *extra]


def file_case(
    name: str, filename: str, data: bytes | Callable[[], bytes], problem: str, note: str = "", **kw
) -> Case:
    """A case analysing one file holding ``data`` (or what ``data()`` returns, made when the case
    runs)."""

    def build(dirs: CaseDirs) -> Setup:
        p = dirs.inp / filename
        p.write_bytes(data() if callable(data) else data)
        return Setup(analyze(dirs, p), p)

    return Case(name=name, family="media", build=build, problem=problem, note=note, **kw)


_REAL_JPEG = (MEDIA / "single_face.jpg").read_bytes() if MEDIA.is_dir() else jpeg_bytes(256, 256)
_REAL_PNG = png_bytes(128, 128)
_TOO_BIG = r"too (large|big)|at most \d[\d,]* ?px|exceeds|bomb"
_CORRUPT = r"truncated|corrupt|broken|incomplete|not a readable image|cannot (read|decode)"
_NOT_IMAGE = r"not (a|an) (readable )?image|not an image|unidentified|cannot identify|neither"


def _bmp_claiming(w: int, h: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 14 + 40 + 16, 0, 0, 14 + 40)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + dib + b"\0" * 16


def _bad_crc_png() -> bytes:
    data = bytearray(png_bytes(64, 64))
    data[29] ^= 0xFF  # the IHDR CRC
    return bytes(data)


def _png_short_idat() -> bytes:
    # 4000 x 4000 RGB claimed, one row of data: 48 MB to decode from a few bytes.
    import zlib

    return png_bytes(4000, 4000, idat=zlib.compress(b"\0" + b"\x80" * 12000))


def _batch_build(dirs: CaseDirs) -> Setup:
    good = good_face(dirs.inp / "good.jpg")
    bad = dirs.inp / "cut.jpg"
    bad.write_bytes(_REAL_JPEG[: len(_REAL_JPEG) // 3])
    return Setup(analyze(dirs, good, bad), bad)


def _dir_named_jpg(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "folder.jpg"
    d.mkdir()
    return Setup(analyze(dirs, d), d)


def _missing(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "missing.jpg"
    return Setup(analyze(dirs, p), p)


def _dev_zero_link(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "zero.jpg"
    os.symlink("/dev/zero", p)
    return Setup(analyze(dirs, p), p)


def _dev_urandom_link(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "noise.png"
    os.symlink("/dev/urandom", p)
    return Setup(analyze(dirs, p), p)


def _dev_null_arg(dirs: CaseDirs) -> Setup:
    return Setup(analyze(dirs, "/dev/null"), "/dev/null", names="/dev/null")


def _control(dirs: CaseDirs) -> Setup:
    good = good_face(dirs.inp / "good.jpg")
    return Setup(analyze(dirs, good), good)


CASES: list[Case] = [
    Case(
        "media-control-good-photo",
        "media",
        _control,
        r".",
        expect_rc=(0,),
        post=expect_tables(1),
        note="control: a good photo is analysed (exit 0)",
    ),
    file_case("media-zero-byte-jpg", "empty.jpg", b"", r"empty|0 bytes"),
    file_case("media-zero-byte-png", "empty.png", b"", r"empty|0 bytes"),
    file_case("media-truncated-jpg", "cut.jpg", _REAL_JPEG[: len(_REAL_JPEG) // 2], _CORRUPT),
    file_case(
        "media-truncated-jpg-header", "head.jpg", _REAL_JPEG[:300], _CORRUPT + "|" + _NOT_IMAGE
    ),
    file_case("media-truncated-png", "cut.png", _REAL_PNG[: len(_REAL_PNG) - 30], _CORRUPT),
    file_case(
        "media-png-short-idat",
        "short.png",
        _png_short_idat,
        _CORRUPT,
        note="4000x4000 claimed, one row of pixel data",
    ),
    file_case("media-png-bad-crc", "crc.png", _bad_crc_png(), _CORRUPT + "|" + _NOT_IMAGE),
    file_case("media-text-named-png", "notes.png", b"just some text\n" * 20, _NOT_IMAGE),
    file_case("media-html-named-jpg", "page.jpg", b"<html><body>hi</body></html>\n", _NOT_IMAGE),
    file_case("media-random-named-webp", "noise.webp", os.urandom(4096), _NOT_IMAGE),
    file_case(
        "media-webp-riff-junk",
        "junk.webp",
        b"RIFF\x00\x10\x00\x00WEBPVP8 " + b"\xff" * 200,
        _CORRUPT + "|" + _NOT_IMAGE,
    ),
    file_case(
        "media-png-claims-100k",
        "huge.png",
        png_bytes(100_000, 100_000, idat=b"x\x9c\x03\x00"),
        _TOO_BIG,
        note="IHDR says 100,000 x 100,000; 60 bytes of file",
    ),
    file_case("media-jpeg-claims-65k", "huge.jpg", jpeg_claiming(65_000, 65_000), _TOO_BIG),
    file_case("media-tiff-claims-100k", "huge.tif", tiff_claiming(100_000, 100_000), _TOO_BIG),
    file_case(
        "media-bmp-claims-100k",
        "huge.bmp",
        _bmp_claiming(100_000, 100_000),
        _TOO_BIG + "|" + _CORRUPT + "|" + _NOT_IMAGE,
    ),
    file_case(
        "media-png-bomb",
        "bomb.png",
        lambda: png_bomb(16_000),
        _TOO_BIG,
        note="16,000² grey zeros: 256 KB of file, 256 MB decoded",
    ),
    file_case(
        "media-polyglot-png-zip",
        "poly.png",
        b"\x89PNG\r\n\x1a\nPK\x03\x04" + b"\0" * 26 + b"payload.txt" + b"A" * 100,
        _CORRUPT + "|" + _NOT_IMAGE,
    ),
    file_case(
        "media-polyglot-jpeg-html",
        "poly.jpg",
        b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>" + b"\0" * 64,
        _CORRUPT + "|" + _NOT_IMAGE,
    ),
    file_case("media-16px", "tiny.png", png_bytes(16, 16), r"at least \d+ ?px|too small"),
    file_case("media-8200px", "wide.png", png_bytes(8200, 24), _TOO_BIG + r"|at least \d+ ?px"),
    file_case(
        "media-1x100k", "thin.png", png_bytes(1, 100_000, color=0), _TOO_BIG + r"|at least \d+ ?px"
    ),
    Case("media-dir-named-jpg", "media", _dir_named_jpg, r"directory|folder|no image"),
    Case("media-missing-file", "media", _missing, r"not found|no such file|does not exist"),
    Case(
        "media-dev-zero-link",
        "media",
        _dev_zero_link,
        r"not a (regular|plain) file|device|special|" + _NOT_IMAGE,
        note="a .jpg that is a link to /dev/zero: endless zeros",
    ),
    Case(
        "media-dev-urandom-link",
        "media",
        _dev_urandom_link,
        r"not a (regular|plain) file|device|special|" + _NOT_IMAGE,
    ),
    Case(
        "media-dev-null-arg",
        "media",
        _dev_null_arg,
        r"not a (regular|plain) file|device|special|empty|not (a|an) (image|video)",
    ),
    Case(
        "media-batch-good-and-bad",
        "media",
        _batch_build,
        _CORRUPT,
        post=expect_tables(1),
        note="a batch writes the good photo's table and exits 2",
    ),
]

"""Reading photos into (H, W, 3) uint8 RGB arrays and writing them back, atomically.

Everything Pillow opens is normalised the same way: EXIF orientation applied, greyscale and 16-bit
images scaled to 8 bits (not clipped), CMYK converted, transparency composited onto white, and the
first frame taken of animated files. Bad inputs raise :class:`InputError` naming the file.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facexpr.core.errors import InputError
from facexpr.io._files import atomic_write

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
)
"""Lower-case suffixes (with the dot) of the photo files we pick up from folders."""

MIN_SIDE = 20
"""Smallest accepted side in px: a face detector cannot use anything smaller."""

MAX_SIDE = 8000
"""Largest accepted side in px, checked from the header before any pixel is decoded."""

# Transparent pixels are composited onto white: photos with an alpha channel are mostly cut-outs
# on a light page, and white keeps them looking as viewers show them.
BACKGROUND_RGB = (255, 255, 255)

# Pillow's globals are left at their defaults (importing facexpr changes nothing for others):
# ImageFile.LOAD_TRUNCATED_IMAGES is False, so truncated files raise and are reported; files over
# Image.MAX_IMAGE_PIXELS are caught as decompression bombs, and the sides of smaller ones are
# checked against MAX_SIDE from the header before any pixel is decoded.


def is_image_path(path: str | Path) -> bool:
    """Returns True if the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def check_input_file(path: str | Path, what: str = "media") -> os.stat_result:
    """Returns the stat of ``path`` (links followed) if it is a non-empty regular file.

    Nothing is opened, so a FIFO or device never blocks the caller.

    Raises:
        InputError: missing, unreadable, a folder, not a regular file (FIFO, socket, device), or
            empty.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from e
    if stat.S_ISDIR(st.st_mode):
        raise InputError(
            path, f"is a directory, not {'an' if what[0] in 'aeiou' else 'a'} {what} file"
        )
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket or device"
        raise InputError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    return st


def _check_file(path: Path) -> None:
    check_input_file(path, "image")


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Returns (H, W, 3) uint8 RGB of a loaded Pillow image of any mode."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im)
        if mode == "F":
            a = a.astype(np.float32)
            lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
            # Float images in [0, 1] are scaled as such; others by their range.
            if lo >= 0.0 and hi <= 1.0:
                g = np.clip(a * 255.0 + 0.5, 0, 255)
            else:
                g = (a - lo) * (255.0 / max(hi - lo, 1e-12)) + 0.5
        else:
            a = a.astype(np.int64)
            # 16-bit files store 0..65535; mode I from 16-bit PNGs does too. Values above 65535
            # only occur in true 32-bit data, which we scale by its own maximum.
            peak = 65535 if a.max(initial=0) <= 65535 else int(a.max())
            g = np.clip(a, 0, None) * (255.0 / peak) + 0.5
        g8 = np.clip(g, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g8[:, :, None], 3, axis=2))
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("L", "RGB") and "transparency" in im.info
    ):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (*BACKGROUND_RGB, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX ...
    return np.asarray(im, dtype=np.uint8)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _png_data_bytes(w: int, h: int, depth: int, color: int, interlace: int) -> int:
    """Returns the size of a PNG's decompressed IDAT stream (filter bytes included)."""
    bits = _PNG_CHANNELS.get(color, 4) * depth

    def rows(pw: int, ph: int) -> int:
        return 0 if pw == 0 or ph == 0 else ph * (1 + (pw * bits + 7) // 8)

    if interlace != 1:
        return rows(w, h)
    return sum(
        rows((w - x0 + dx - 1) // dx if w > x0 else 0, (h - y0 + dy - 1) // dy if h > y0 else 0)
        for x0, y0, dx, dy in _ADAM7
    )


def _check_png_complete(path: Path) -> None:
    """Checks that a PNG's IDAT data decompresses to every row its header declares.

    Pillow accepts a zlib stream that ends early and leaves the missing rows blank (no error,
    whatever ``LOAD_TRUNCATED_IMAGES`` says), so a 4000 x 4000 header with one row of data would
    be analysed as a blank photo. The stream is inflated in 1 MiB steps and only counted, so this
    costs no memory.

    Raises:
        InputError: the pixel data is shorter than the header says, or the chunks are cut off.
    """
    with open(path, "rb") as fh:
        if fh.read(8) != _PNG_SIGNATURE:
            return  # not a PNG after all; Pillow's own checks apply
        expected: int | None = None
        inflater = zlib.decompressobj()
        got = 0
        while True:
            head = fh.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IHDR" and expected is None:
                ihdr = fh.read(length)
                if len(ihdr) < 13:
                    break
                w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
                expected = _png_data_bytes(w, h, depth, color, interlace)
                fh.seek(4, os.SEEK_CUR)
                continue
            if ctype == b"IDAT":
                left = length
                while left > 0 and got < (expected or 0):
                    data = fh.read(min(left, 1 << 20))
                    if not data:
                        break
                    left -= len(data)
                    try:
                        while data and got < (expected or 0):
                            got += len(inflater.decompress(data, 1 << 20))
                            data = inflater.unconsumed_tail
                    except zlib.error as e:
                        raise InputError(path, f"truncated or corrupt image: {e}") from e
                    if inflater.eof:
                        break
                if expected is not None and got >= expected:
                    return
                fh.seek(left + 4, os.SEEK_CUR)
                continue
            if ctype == b"IEND":
                break
            fh.seek(length + 4, os.SEEK_CUR)
    if expected is not None and got < expected:
        raise InputError(
            path,
            f"truncated or corrupt image: the PNG's pixel data holds {got} of the {expected} "
            "bytes its header declares",
        )


def _open_checked(p: Path) -> Image.Image:
    """Returns the Pillow image of ``p`` opened (header only) with its sides checked."""
    _check_file(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sides checked below
            im = Image.open(p)
    except UnidentifiedImageError as e:
        raise InputError(p, f"not a readable image: {e}") from e
    except Image.DecompressionBombError as e:
        raise InputError(
            p, f"image too large: at most {MAX_SIDE} px per side is supported ({e})"
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(p, f"not a readable image: {e}") from e
    w, h = im.size  # from the header: nothing decoded yet
    if max(w, h) > MAX_SIDE or min(w, h) < MIN_SIDE:
        im.close()
        if max(w, h) > MAX_SIDE:
            raise InputError(p, f"image is {w}x{h} px; at most {MAX_SIDE} px per side is supported")
        raise InputError(p, f"image is {w}x{h} px; at least {MIN_SIDE} px per side is needed")
    return im


def check_image(path: str | Path) -> tuple[int, int]:
    """Returns (width, height) of the photo at ``path`` from its header, decoding no pixel.

    Raises:
        InputError: as :func:`read_image` for everything its header shows (missing, not a
            regular file, empty, not an image, too small or too large).
    """
    with _open_checked(Path(path)) as im:
        return im.size


def read_image(path: str | Path) -> np.ndarray:
    """Returns the photo at ``path`` as (H, W, 3) uint8 RGB, upright.

    EXIF orientation is applied; greyscale becomes three equal channels; 16-bit data is scaled
    (65535 -> 255); alpha is composited onto white; CMYK is converted; of an animated file the
    first frame is taken.

    Raises:
        InputError: the file is missing, a folder, empty, not an image, truncated or corrupt,
            smaller than 20 px or larger than 8000 px on a side.
    """
    p = Path(path)
    with _open_checked(p) as im:
        if im.format == "PNG":
            _check_png_complete(p)
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb8(im)
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise InputError(p, f"truncated or corrupt image: {e}") from e
    return rgb


def write_image(path: str | Path, rgb: np.ndarray, *, quality: int = 95) -> None:
    """Writes (H, W, 3) uint8 RGB (or (H, W) uint8 grey) to ``path``, format by extension.

    The file appears whole or not at all: the data goes to a unique temp file in the same folder
    (:func:`facexpr.io._files.atomic_write`), which is then renamed over ``path``.

    Args:
        path: destination; its suffix (.png, .jpg, ...) picks the format.
        rgb: (H, W, 3) or (H, W) uint8.
        quality: JPEG/WebP quality, 1-95.

    Raises:
        InputError: unknown extension or the array is not uint8 (H, W[, 3]).
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise InputError(
            p, f"unknown image extension {ext!r}; use one of {sorted(IMAGE_EXTENSIONS)}"
        )
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise InputError(p, f"expected (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
    fmt = Image.registered_extensions()[ext]
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(p, "wb") as f:
        Image.fromarray(np.ascontiguousarray(a)).save(f, format=fmt, **kwargs)

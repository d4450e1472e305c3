"""Compact identity bank entries: ``<key>.npz`` (fitted identity coefficients) + ``<key>.png``.

A captured avatar is the ICT FaceKit atlas rig (:func:`facexpr.avatars.texture.atlas_rig`) at the
fitted identity ``z`` with a texture: its neutral face is the rig's mean plus ``z`` times the
identity modes, and its 53 morph targets are the rig's own (ICT's expression deltas do not depend
on the identity). So ``z`` (float32, one per identity mode) and the texture are the whole avatar;
the rig rebuilds the rest, bit for bit what the capture made.

The ``.npz`` holds ``format`` (``"facexpr.bank_entry"``), ``version`` (1), ``rig`` (the rig's
name) and ``identity`` ((K,) float32); the ``.png`` is the (S, 2S) RGB texture.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.core.errors import InputError

ENTRY_FORMAT = "facexpr.bank_entry"
ENTRY_VERSION = 1
_WHY = "capture it again ('facexpr synth identities' into the bank skips what is there)"


def save_compact_entry(avatar: Any, folder: Path, key: str) -> tuple[Path, Path]:
    """Writes ``avatar`` (a capture: atlas rig, identity, texture) as ``key.npz`` + ``key.png``.

    The texture is written first and the ``.npz`` last, each atomically, so an entry whose
    ``.npz`` exists is whole.

    Returns:
        (npz path, png path).
    """
    from PIL import Image

    from facexpr.io._files import write_bytes_atomic

    if avatar.texture is None or avatar.identity is None:
        raise ValueError(f"avatar '{avatar.name}' has no texture or identity: not a capture")
    npz, png = folder / f"{key}.npz", folder / f"{key}.png"
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(avatar.texture)).save(buf, format="PNG", compress_level=6)
    write_bytes_atomic(png, buf.getvalue())
    buf = io.BytesIO()
    np.savez(
        buf,
        format=np.array(ENTRY_FORMAT),
        version=np.array(ENTRY_VERSION, np.int32),
        rig=np.array(avatar.rig.name),
        identity=np.asarray(avatar.identity, np.float32),
    )
    write_bytes_atomic(npz, buf.getvalue())
    return npz, png


def load_identity(path: Path, n_identity: int) -> np.ndarray:
    """Returns the (n_identity,) float32 identity coefficients of a compact entry's ``.npz``.

    Raises:
        InputError: the file is missing, not an ``.npz`` of a bank entry, of another version, or
            its coefficients are not ``n_identity`` finite numbers.
    """
    if not path.is_file():
        raise InputError(path, f"listed in the identity bank but missing; {_WHY}")
    try:
        with np.load(path, allow_pickle=False) as z:
            fmt = str(z["format"]) if "format" in z.files else None
            version = int(z["version"]) if "version" in z.files else None
            ident = np.asarray(z["identity"]) if "identity" in z.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise InputError(path, f"not a readable .npz bank entry ({e}); {_WHY}") from None
    if fmt != ENTRY_FORMAT or ident is None:
        raise InputError(path, f'not a compact bank entry (no "format": "{ENTRY_FORMAT}" and '
                         f'"identity"); {_WHY}')  # fmt: skip
    if version != ENTRY_VERSION:
        raise InputError(path, f"bank entry version {version}; this facexpr reads {ENTRY_VERSION}")
    if ident.ndim != 1 or ident.shape[0] != n_identity:
        raise InputError(
            path, f"{ident.size} identity coefficients of shape {ident.shape}; the ICT FaceKit "
            f"rig has {n_identity} identity modes; {_WHY}",
        )  # fmt: skip
    if not np.issubdtype(ident.dtype, np.floating) or not np.isfinite(ident).all():
        raise InputError(path, f"its identity coefficients are not finite numbers; {_WHY}")
    return ident.astype(np.float32)


def load_texture(path: Path, max_side: int = 8192) -> np.ndarray:
    """Returns the (S, 2S, 3) uint8 RGB texture of a compact entry's ``.png``.

    Raises:
        InputError: the file is missing, not a decodable PNG, larger than ``max_side`` or not
            twice as wide as high.
    """
    from PIL import Image

    if not path.is_file():
        raise InputError(path, f"listed in the identity bank but missing; {_WHY}")
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise InputError(path, f"not a PNG image ({im.format}); {_WHY}")
            w, h = im.size
            if max(w, h) > max_side:
                raise InputError(path, f"the texture is {w}x{h}, over {max_side} px a side")
            rgb = np.asarray(im.convert("RGB"), np.uint8)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(path, f"not a decodable PNG texture ({e}); {_WHY}") from None
    if rgb.shape[1] != 2 * rgb.shape[0] or rgb.shape[0] < 4:
        raise InputError(
            path, f"the texture is {rgb.shape[1]}x{rgb.shape[0]}; a capture's is S x 2S "
            f"(twice as wide as high); {_WHY}",
        )  # fmt: skip
    return np.ascontiguousarray(rgb)


def load_compact_avatar(npz: Path, name: str | None = None, rig: Any = None) -> Any:
    """Returns the textured avatar of a compact entry (``npz`` and the ``.png`` beside it).

    Args:
        npz: the entry's ``.npz``.
        name: the avatar's name (default: the file's stem).
        rig: the ICT FaceKit atlas rig (built when None; pass it to load many entries).

    Raises:
        InputError: a file is missing or damaged (see :func:`load_identity`, :func:`load_texture`).
    """
    from facexpr.avatars.avatar import Avatar, Look

    if rig is None:
        from facexpr.avatars.ict import load_ict
        from facexpr.avatars.texture import atlas_rig

        rig = atlas_rig(load_ict())
    z = load_identity(npz, rig.n_identity)
    tex = load_texture(npz.with_suffix(".png"))
    return Avatar(name or npz.stem, rig, identity=z, look=Look(lips=None), texture=tex)

"""Checks shared by the readers of dataset folders, which are treated as untrusted input.

Opening only regular files (never blocking on a FIFO, optionally never following a link), bounded
JSON reads, and small type checks whose messages name the key that is wrong.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any

from facexpr.core.errors import InputError

MAX_JSON_FILE_BYTES = 64 << 20
"""Largest ``manifest.json`` (or progress record) read, bytes."""


def kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else f"a {type(value).__name__}"
    )


class BadJSON(ValueError):
    """Text that :func:`loads_json` cannot parse; ``str()`` says why in user words."""


def loads_json(raw: bytes | str, **options: Any) -> Any:
    """Returns ``json.loads(raw)`` for untrusted text, every failure raised as :class:`BadJSON`.

    Besides syntax errors this covers what ``json.loads`` raises on hostile input but not as a
    ``JSONDecodeError``: bytes that are not UTF-8, nesting deep enough to exhaust the stack
    (``RecursionError``), and integers longer than Python's int-conversion digit limit
    (``ValueError``). ``options`` go to ``json.loads`` (e.g. ``parse_constant``).
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text, **options)
    except UnicodeDecodeError as e:
        raise BadJSON(f"not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise BadJSON(str(e)) from None
    except RecursionError:
        raise BadJSON("nested too deeply") from None
    except ValueError as e:
        if "digits" in str(e):
            raise BadJSON(f"a number has more than {sys.get_int_max_str_digits()} digits") from None
        raise BadJSON(str(e)) from None


def read_json_file(path: Path, what: str) -> Any:
    """Returns the parsed JSON of a regular file of at most MAX_JSON_FILE_BYTES."""
    try:
        with open_regular(path, what) as fh:
            raw = fh.read(MAX_JSON_FILE_BYTES + 1)
    except InputError:
        raise
    if len(raw) > MAX_JSON_FILE_BYTES:
        raise InputError(path, f"{what} is larger than {MAX_JSON_FILE_BYTES} bytes; refused")
    try:
        return loads_json(raw)
    except BadJSON as e:
        raise InputError(path, f"corrupt {what}, not valid JSON ({e})") from None


def open_regular(path: Path, what: str = "file", follow: bool = True) -> IO[bytes]:
    """Opens a regular file for reading without blocking on FIFOs or devices.

    Raises:
        InputError: missing, a directory, FIFO, device or socket, or (``follow=False``) a link.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(path, f"{what} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(path, f"{what} is a symbolic link (never followed)") from None
        if e.errno == errno.EISDIR:
            raise InputError(path, f"{what} is a directory, not a file") from None
        raise InputError(path, f"cannot open the {what} ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InputError(path, f"{what} is {kind} (a FIFO, device or socket is never read)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class Problem(Exception):
    """An entry of a manifest does not match the schema (message names its key)."""


def check_int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Problem(f"{where} must be an integer, got {kind(value)}")
    if value < minimum:
        raise Problem(f"{where} must be >= {minimum}, got {value}")
    return value


def check_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Problem(f"{where} must be a string, got {kind(value)}")
    return value


def check_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Problem(f"{where} must be a list, got {kind(value)}")
    return value


def check_obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Problem(f"{where} must be an object, got {kind(value)}")
    return value

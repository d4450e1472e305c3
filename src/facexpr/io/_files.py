"""Small helpers for writing files atomically."""

from __future__ import annotations

import os
from pathlib import Path


def make_public(path: str | Path) -> None:
    """Gives a temp file (``mkstemp`` creates them 0600) the mode a plain ``open`` would: 0666
    less the process umask, so atomically written outputs are readable like any other."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)

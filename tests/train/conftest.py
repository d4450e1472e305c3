"""Puts this folder on sys.path so the tiny recipe imports by path, as in a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

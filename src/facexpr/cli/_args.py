"""argparse value types shared by the ``facexpr`` commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """Returns ``text`` as an int >= 1, or raises argparse's error (exit 2, usage shown)."""
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {v}")
    return v


def positive_float(text: str) -> float:
    """Returns ``text`` as a float > 0, or raises argparse's error (exit 2, usage shown)."""
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {v}")
    return v

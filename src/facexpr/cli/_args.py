"""Pieces shared by the ``facexpr`` commands: argparse value types, the failed-inputs report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


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


def report_failures(failures: Sequence[Any]) -> int:
    """Prints one stderr line per failed input (``.line``: file and problem); returns the exit
    code: 2 when any input failed (every good input was still written), else 0."""
    if not failures:
        return 0
    print(f"facexpr: {len(failures)} input(s) failed:", file=sys.stderr)
    for f in failures:
        print(f"  {f.line}", file=sys.stderr)
    return 2

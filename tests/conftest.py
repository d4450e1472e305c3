"""Session-wide fixtures: where ../shared is, and its real media.

Tests that need ../shared skip with a clear reason when it is absent (a clone without it beside).
Collection builds and loads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("FACEXPR_SHARED")
    return Path(env) if env else (REPO.parent / "shared")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    d = _shared_dir()
    if not (d / "README.md").is_file():
        pytest.skip(f"shared material not found at {d} (set FACEXPR_SHARED to its path)")
    return d


@pytest.fixture(scope="session")
def media_dir(shared_dir: Path) -> Path:
    d = shared_dir / "fixtures" / "media"
    if not d.is_dir():
        pytest.skip(f"real media fixtures not found at {d}")
    return d


@pytest.fixture(scope="session")
def ict_dir(shared_dir: Path) -> Path:
    d = shared_dir / "assets" / "ict-facekit"
    if not (d / "ict_facekit.npz").is_file():
        pytest.skip(f"ICT FaceKit asset not found at {d}")
    return d

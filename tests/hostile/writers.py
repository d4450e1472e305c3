"""Helpers of the concurrent-writer tests (tests/analyze, tests/synth): start the CLI from this
checkout, wait until a run holds its output folder, plant links at temporary names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
LOCK = ".facexpr.lock"


def cli(*args: str) -> list[str]:
    """Returns the command line of ``facexpr ARGS`` run from this checkout."""
    return [sys.executable, "-m", "facexpr.cli.main", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli(*args), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until_writing(proc: subprocess.Popen[str], folder: Path, limit_s: float = 60.0) -> None:
    """Returns once ``proc`` holds the folder's lock (its pid in the lock file), or, for a writer
    without a lock, once it has run 3 s; fails if it ended first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.poll() is not None:
            pytest.fail(f"the first run ended before the second started: {proc.communicate()}")
        lock = folder / LOCK
        try:
            if lock.read_text().strip() == str(proc.pid):
                return
        except OSError:
            pass
        if time.monotonic() - t0 > 3.0 and any(folder.iterdir()):
            return
        time.sleep(0.05)
    pytest.fail("the first run did not start writing within the limit")


def plant_links(folder: Path, names: list[str], target: Path) -> None:
    for name in names:
        os.symlink(target, folder / name)

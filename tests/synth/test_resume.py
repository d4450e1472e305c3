"""`facexpr synth` killed mid-run and resumed, and two runs into one folder (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facexpr.cli.main import main
from facexpr.io.shards import ShardReader, read_manifest


def _have_renderer() -> bool:
    try:
        import moderngl  # noqa: F401

        import facexpr.avatars.render  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _have_renderer(), reason="facexpr.avatars.render (moderngl) is not available"
)

SRC = Path(__file__).resolve().parents[2] / "src"


def _args(out: Path, n: int) -> list[str]:
    return ["synth", "--n", str(n), "--size", "64", "--seed", "7", "--identities", "4",
            "--samples-per-shard", "3", "--out", str(out)]  # fmt: skip


def _spawn(out: Path, n: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "facexpr.cli.main", "-q", *_args(out, n), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished_shards(out: Path) -> int:
    try:
        return len(json.loads((out / ".progress.json").read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return 0


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_killed_run_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path: Path, capsys) -> None:
    n = 18
    out = tmp_path / "killed"
    proc = _spawn(out, n)
    deadline = time.monotonic() + 240
    while _finished_shards(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists(), "the run finished before it was killed"
    kept = _finished_shards(out)
    assert 2 <= kept < n // 3
    capsys.readouterr()
    assert main(["-q", *_args(out, n)]) == 2  # neither --resume nor --overwrite
    err = capsys.readouterr().err
    assert "holds an unfinished dataset" in err
    assert "--resume" in err
    assert main(["-q", *_args(out, n), "--resume"]) == 0
    assert main(["-q", *_args(tmp_path / "ref", n)]) == 0
    assert _files(out) == _files(tmp_path / "ref")
    assert len(list(ShardReader(out, shuffle_buffer=0))) == n
    # a finished dataset resumed again is kept as it is
    assert main(["-q", *_args(out, n), "--resume"]) == 0
    assert _files(out) == _files(tmp_path / "ref")
    # other options cannot resume it
    assert main(["-q", *_args(out, n + 3), "--resume"]) == 2
    assert "options.n: 18 -> 21" in capsys.readouterr().err


def test_two_runs_into_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = _spawn(out, 30)
    deadline = time.monotonic() + 240
    lock = out / ".facexpr.lock"
    while time.monotonic() < deadline and first.poll() is None:
        if lock.is_file() and lock.read_text().strip():
            break
        time.sleep(0.02)
    second = _spawn(out, 30, "--overwrite")
    _, err2 = second.communicate(timeout=240)
    assert first.poll() is None, "the first run ended before the second tried"
    _, err1 = first.communicate(timeout=240)
    assert first.returncode == 0, err1
    assert second.returncode == 2
    assert "another run (pid" in err2
    assert "is writing into this folder" in err2
    assert "Traceback" not in err2
    m = read_manifest(out)
    assert m.n_samples == 30
    assert len(list(ShardReader(out, shuffle_buffer=0, verify=True))) == 30

"""Two ``facexpr synth`` runs writing into one folder: exactly one wins, the other exits 2 with a
clear message, the finished manifest verifies against its shards, and links planted at the old
fixed temporary names (``manifest.json.tmp``, ``shard-N.tar.tmp``) are never followed (issue 16,
section 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))

from writers import cli, cli_env, plant_links, start, wait_until_writing


def _have_renderer() -> bool:
    try:
        import moderngl  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _have_renderer(), reason="moderngl is not available")

BUSY = re.compile(r"another run.*(writing|using)|being written|locked", re.IGNORECASE)
SMALL = ["--size", "64", "--seed"]


def test_two_synth_runs_into_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me\n")
    plant_links(out, ["manifest.json.tmp", "shard-000000.tar.tmp", "shard-000001.tar.tmp"], canary)
    first = start(["synth", "--n", "120", "--out", str(out), *SMALL, "0"])
    wait_until_writing(first, out)
    second = start(["synth", "--n", "30", "--out", str(out), *SMALL, "1"])
    _, err_a = first.communicate(timeout=900)
    _, err_b = second.communicate(timeout=900)

    assert "Traceback" not in err_a + err_b
    assert sorted([first.returncode, second.returncode]) == [0, 2], (err_a, err_b)
    n_winner, loser_err = (120, err_b) if first.returncode == 0 else (30, err_a)
    assert BUSY.search(loser_err), loser_err
    assert canary.read_text() == "keep me\n"
    info = subprocess.run(cli("dataset", "info", str(out)), env=cli_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert info.returncode == 0, info.stderr  # reads every shard and checks its sha256
    assert json.loads(info.stdout)["n_samples"] == n_winner

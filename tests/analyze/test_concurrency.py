"""Two ``facexpr analyze`` runs writing into one folder: exactly one wins, the other exits 2 with
a clear message, the finished tables parse and hold only the winner's rows, and links planted at
the temporary names are never followed (issue 16, section 2)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))

from writers import cli, cli_env, plant_links, start, wait_until_writing

BUSY = re.compile(r"another run.*(writing|using)|being written|locked", re.IGNORECASE)


def test_two_analyze_runs_into_one_folder(tmp_path: Path, media_dir: Path) -> None:
    a_in, b_in, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    for d in (a_in, b_in, out):
        d.mkdir()
    for k in range(8):  # about 8 x 72 frames: long enough for the second run to start meanwhile
        shutil.copyfile(media_dir / "single_face.mp4", a_in / f"a{k}.mp4")
    shutil.copyfile(media_dir / "single_face.jpg", b_in / "b.jpg")
    shutil.copyfile(media_dir / "single_face.mp4", b_in / "a0.mp4")  # same output name as A's
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me\n")
    plant_links(out, ["a0.csv.partial", "a1.csv.partial", "b.csv.partial", "a0.csv.tmp"], canary)

    first = start(["analyze", str(a_in), "-o", str(out), "--no-progress"])
    wait_until_writing(first, out)
    second = start(["analyze", str(b_in), "-o", str(out), "--no-progress"])
    _, err_a = first.communicate(timeout=600)
    _, err_b = second.communicate(timeout=600)

    assert "Traceback" not in err_a + err_b
    assert sorted([first.returncode, second.returncode]) == [0, 2], (err_a, err_b)
    winner_in, loser_err = (a_in, err_b) if first.returncode == 0 else (b_in, err_a)
    assert BUSY.search(loser_err), loser_err
    assert str(out) in loser_err
    assert canary.read_text() == "keep me\n"
    tables = sorted(p for p in out.glob("*.csv") if not p.is_symlink())
    expected = sorted(p.stem for p in winner_in.iterdir())
    assert [p.stem for p in tables] == expected
    for p in tables:
        df = pd.read_csv(p)
        assert set(df["input"].map(lambda s: Path(s).parent)) == {winner_in}
        n_frames = 1 if p.stem == "b" else 72
        assert sorted(df["frame"].unique()) == list(range(1, n_frames + 1))
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_second_run_after_the_first_resumes(tmp_path: Path, media_dir: Path) -> None:
    # The lock is the kernel's: once the first run has exited, the next one may write at once.
    out = tmp_path / "out"
    img = tmp_path / "face.jpg"
    shutil.copyfile(media_dir / "single_face.jpg", img)
    first = subprocess.run(cli("analyze", str(img), "-o", str(out), "--no-progress"),
                           env=cli_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    again = subprocess.run(
        cli("analyze", str(img), "-o", str(out), "--no-progress", "--resume"),
        env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "1 skipped" in again.stderr

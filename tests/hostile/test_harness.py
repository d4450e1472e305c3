"""The hostile corpus's checks can fail: each detector is shown catching what it is for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # beside this file


def _case(**kw) -> corpus.Case:
    return corpus.Case(
        name="harness-x", family="harness", build=lambda d: None, problem=r"empty", **kw
    )


def _run(**kw) -> corpus.Run:
    base = {
        "rc": 2,
        "stdout": "",
        "stderr": "facexpr: error: /x/in/a.jpg: empty file",
        "seconds": 0.1,
        "max_rss_mb": 100.0,
        "timed_out": False,
    }
    base.update(kw)
    return corpus.Run(**base)


@pytest.fixture
def dirs(tmp_path: Path) -> corpus.CaseDirs:
    return corpus.make_dirs(tmp_path / "case")


def test_check_passes_a_good_run(dirs: corpus.CaseDirs) -> None:
    setup = corpus.Setup([], dirs.inp / "a.jpg")
    assert corpus.check(_case(), setup, _run(), dirs) == []


@pytest.mark.parametrize(
    ("run_kw", "expected"),
    [
        ({"rc": 1}, "exit code 1"),
        ({"stderr": "Traceback (most recent call last):\n  x\nValueError: empty"}, "traceback"),
        ({"stderr": "facexpr: error: empty file"}, "does not name 'a.jpg'"),
        ({"stderr": "facexpr: error: /x/in/a.jpg: bad"}, "does not say"),
        ({"max_rss_mb": 5000.0}, "peak RSS 5000 MB"),
        ({"timed_out": True, "rc": -9}, "timed out"),
        ({"stdout": corpus.SESSION_TOKEN}, "canary bytes in <stdout/stderr>"),
    ],
)
def test_check_catches(dirs: corpus.CaseDirs, run_kw: dict, expected: str) -> None:
    setup = corpus.Setup([], dirs.inp / "a.jpg")
    problems = corpus.check(_case(), setup, _run(**run_kw), dirs)
    assert any(expected in p for p in problems), problems


def test_check_catches_canary_and_outside_writes(dirs: corpus.CaseDirs) -> None:
    events = [
        ("r", str(dirs.canary_file)),
        ("w", str(dirs.inp / "x.tmp")),
        ("w", "/dev/null"),
        ("w", str(dirs.out / "ok.csv")),
        ("r", "/etc/passwd"),
    ]
    setup = corpus.Setup([], dirs.inp / "a.jpg", forbidden=("/etc/passwd",))
    problems = corpus.check(_case(), setup, _run(events=events), dirs)
    assert any(str(dirs.canary_file) in p and "/etc/passwd" in p for p in problems), problems
    assert [p for p in problems if p.startswith("wrote outside")] == [
        f"wrote outside out/: {dirs.inp / 'x.tmp'}"
    ]


def test_check_catches_token_in_output_file(dirs: corpus.CaseDirs) -> None:
    (dirs.out / "anim.glb").write_bytes(b"glTF" + dirs.token.encode())
    problems = corpus.check(_case(), corpus.Setup([], dirs.inp / "a.jpg"), _run(), dirs)
    assert problems == [f"canary bytes in {dirs.out / 'anim.glb'}"]


def test_child_reading_the_canary_is_seen(dirs: corpus.CaseDirs, media_dir: Path) -> None:
    # A real child run: analysing the canary file itself must show as a canary read (audit hook
    # and inotify), and an output folder beside out/ as writes outside it.
    elsewhere = dirs.root / "elsewhere"
    run = corpus.run_cli(
        [
            "analyze",
            str(dirs.canary_file),
            str(media_dir / "single_face.jpg"),
            "-o",
            str(elsewhere),
            "--no-progress",
        ],
        dirs,
        timeout_s=60,
    )
    assert str(dirs.canary_file) in corpus.canary_reads(run, dirs)
    assert any(p.startswith(str(elsewhere)) for p in corpus.out_of_folder_writes(run, dirs))
    assert 50 < run.max_rss_mb < 4096


def test_fork_server_times_out_and_measures(dirs: corpus.CaseDirs, media_dir: Path) -> None:
    video = corpus.good_video(dirs.inp / "clip.mp4")
    with corpus.ForkServer(preload=("facexpr.cli.main",)) as server:
        # With nothing preloaded, analysing the 72-frame video spends over a second importing
        # the face models and decoding: a 0.2 s limit must kill it.
        killed = server.run(["analyze", str(video), "-o", str(dirs.out)], dirs, 0.2)
        done = server.run(["dataset", "info", str(dirs.inp)], dirs, 60)
    assert killed.timed_out
    assert killed.rc == -9
    assert killed.seconds < 10
    assert not done.timed_out
    assert done.rc == 2
    assert "manifest.json" in done.stderr
    assert done.max_rss_mb > 50

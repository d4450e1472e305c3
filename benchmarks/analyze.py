"""Full-analysis speed and memory: `facexpr analyze` on a real video, short and long.

For each configuration (front-end only; front-end + blendshape fitting) and each video length (the
clip as is, and the clip repeated 4 times into one longer file), runs the real CLI in a fresh
process pinned to N cores and reports faces/s and peak resident memory. Memory that stays flat
when the video gets 4x longer shows that results are streamed to disk, not accumulated.

Prints a table and writes ``benchmarks/results/analyze.json``.

Usage:  python benchmarks/analyze.py [VIDEO] [--cores 2] [--repeat 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import git_commit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared/fixtures/media/WolfgangLanger_Pexels.mp4"
RESULTS = Path(__file__).resolve().parent / "results"


def _repeat_video(src: Path, dst: Path, times: int) -> int:
    from facexpr.io import VideoReader, VideoWriter, probe_video

    info = probe_video(src)
    n = 0
    with VideoWriter(dst, fps=info.fps) as w:
        for _ in range(times):
            with VideoReader(src) as r:
                for frame in r:
                    w.write(frame.image)
                    n += 1
    return n


def _run(video: Path, out: Path, cores: int, extra: list[str]) -> dict:
    """Runs the CLI once in a child process pinned to ``cores`` cores; returns its figures."""
    exe = Path(sys.executable).parent / "facexpr"
    cmd = [str(exe), "-q", "analyze", str(video), "-o", str(out), "--no-progress", *extra]
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:cores])
    t0 = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", cpus, *cmd], stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS (taskset execs it)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(err)
    summary = err.strip().splitlines()[-1]
    frames = int(summary.split(" frames")[0].split()[-1])
    faces = int(summary.split(" faces")[0].split()[-1])
    return {
        "wall_s": wall,
        "frames": frames,
        "faces": faces,
        "faces_per_s": faces / wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?", default=str(DEFAULT))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    video = Path(args.video)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        long_video = Path(tmp) / "long.mp4"
        n_long = _repeat_video(video, long_video, args.repeat)
        for label, extra in (
            ("front-end", []),
            ("front-end + blendshape fit", ["--blendshapes", "fit"]),
        ):
            for name, v in (("clip", video), (f"clip x{args.repeat}", long_video)):
                r = _run(v, Path(tmp) / "out", args.cores, extra)
                r.update({"config": label, "video": name})
                rows.append(r)
                print(
                    f"{label:28s} {name:10s} {r['frames']:6d} frames "
                    f"{r['faces_per_s']:7.1f} faces/s  peak {r['peak_rss_mb']:6.0f} MB"
                )
    RESULTS.mkdir(exist_ok=True)
    commit = git_commit()
    (RESULTS / "analyze.json").write_text(
        json.dumps(
            {
                "video": str(video),
                "long_frames": n_long,
                "cores": args.cores,
                "rows": rows,
                "machine": platform.platform(),
                "cpu_count": os.cpu_count(),
                "commit": commit,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Full-analysis speed and memory: `facexpr analyze` on a real video, short and long.

For each configuration (front-end only; front-end + the expression embedding under ONNX Runtime
and under PyTorch; front-end + blendshape fitting) and each video length (the clip as is, and the
clip repeated 4 times into one longer file), runs the real CLI in a fresh process pinned to N
cores and reports faces/s and peak resident memory. Memory that stays flat when the video gets 4x
longer shows that results are streamed to disk, not accumulated. The steady cost of a face,
``ms_per_face``, is the wall-time difference of the two lengths over their face-count difference,
so start-up (model loading, the ONNX export) cancels out.

The embedding runs with ``--expression-weights PATH``, or, without it, with a randomly
initialised ``expression`` model of the shipped architecture written to a temp file (the speed
does not depend on the weights' values).

Prints a table and writes ``benchmarks/results/analyze.json`` (or ``--out``).

Usage:  python benchmarks/analyze.py [VIDEO] [--cores 2] [--repeat 4]
            [--configs front-end embedding-onnx embedding-torch fit] [--expression-weights PATH]
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


def _random_weights(path: Path) -> None:
    import torch

    from facexpr.io._files import write_bytes_atomic
    from facexpr.nn import create_model, weights_to_bytes

    torch.manual_seed(0)
    write_bytes_atomic(path, weights_to_bytes(create_model("expression")))


def _configs(weights: Path) -> dict[str, tuple[str, list[str]]]:
    w = ["--expression-weights", str(weights)]
    return {
        "front-end": ("front-end", ["--no-embedding"]),
        "embedding-onnx": (
            "front-end + embedding (ONNX Runtime)",
            [*w, "--embedding-runtime", "onnx"],
        ),
        "embedding-torch": (
            "front-end + embedding (PyTorch)",
            [*w, "--embedding-runtime", "torch"],
        ),
        "fit": ("front-end + blendshape fit", ["--blendshapes", "fit", "--no-embedding"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?", default=str(DEFAULT))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["front-end", "embedding-onnx", "embedding-torch", "fit"],
        choices=["front-end", "embedding-onnx", "embedding-torch", "fit"],
    )
    ap.add_argument("--expression-weights", default=None, metavar="PATH")
    ap.add_argument("--out", default=str(RESULTS / "analyze.json"), metavar="JSON")
    args = ap.parse_args()
    video = Path(args.video)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.expression_weights or Path(tmp) / "random_expression.safetensors")
        if args.expression_weights is None and {"embedding-onnx", "embedding-torch"} & set(
            args.configs
        ):
            _random_weights(weights)
        long_video = Path(tmp) / "long.mp4"
        n_long = _repeat_video(video, long_video, args.repeat)
        configs = _configs(weights)
        for key in args.configs:
            label, extra = configs[key]
            pair = []
            for name, v in (("clip", video), (f"clip x{args.repeat}", long_video)):
                r = _run(v, Path(tmp) / "out", args.cores, extra)
                r.update({"config": label, "video": name})
                rows.append(r)
                pair.append(r)
                print(
                    f"{label:38s} {name:10s} {r['frames']:6d} frames "
                    f"{r['faces_per_s']:7.1f} faces/s  peak {r['peak_rss_mb']:6.0f} MB"
                )
            d_faces = pair[1]["faces"] - pair[0]["faces"]
            ms = 1000 * (pair[1]["wall_s"] - pair[0]["wall_s"]) / d_faces if d_faces else None
            pair[1]["ms_per_face"] = ms
            if ms is not None:
                print(f"{label:38s} steady cost {ms:.2f} ms a face")
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    commit = git_commit()
    out.write_text(
        json.dumps(
            {
                "video": str(video),
                "long_frames": n_long,
                "cores": args.cores,
                "expression_weights": args.expression_weights or "random (same architecture)",
                "load_average": os.getloadavg(),
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

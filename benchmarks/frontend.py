"""Speed of the face front-end on a video: frames/s with and without decoding, and peak memory.

Usage::

    python benchmarks/frontend.py [VIDEO] [--threads 1 2] [--repeat 2] \
        [--out benchmarks/results/frontend.json]

VIDEO defaults to ``../shared/fixtures/media/WolfgangLanger_Pexels.mp4`` (one face, 640x360,
472 frames). Each thread count runs in its own process pinned to that many CPUs
(``os.sched_setaffinity``), with the TFLite interpreters' and OpenCV's thread counts set to
match, the front-end in VIDEO mode with its defaults (tracking, smoothing, pose, 224 px aligned
crop). Measured: (1) decode (PyAV, ``to_ndarray(format="rgb24")``) + front-end, streaming frame
by frame; (2) decode alone; (3) the front-end alone on frames decoded beforehand. The best of
``repeat`` runs is kept (the machine may be shared). Peak RSS is taken after the streaming pass,
before frames are held in memory for (2)-(3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import git_commit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "fixtures" / "media" / "WolfgangLanger_Pexels.mp4"


def _worker(video: str, threads: int, repeat: int) -> dict:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    import av
    import cv2

    from facexpr.core.types import Frame, RunningMode
    from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions

    cv2.setNumThreads(threads)
    fe = FaceFrontEnd(FaceFrontEndOptions(mode=RunningMode.VIDEO, num_threads=threads))

    def stream() -> tuple[float, int, int]:
        fe.reset()
        n = faces = 0
        t0 = time.perf_counter()
        with av.open(video) as c:
            for i, f in enumerate(c.decode(video=0)):
                r = fe.process(Frame(f.to_ndarray(format="rgb24"), i, float(f.time or 0), video))
                n += 1
                faces += len(r.faces)
        return time.perf_counter() - t0, n, faces

    def decode() -> tuple[float, list]:
        t0 = time.perf_counter()
        with av.open(video) as c:
            frames = [(f.to_ndarray(format="rgb24"), float(f.time or 0)) for f in c.decode(video=0)]
        return time.perf_counter() - t0, frames

    runs = [stream() for _ in range(repeat)]
    t_stream, n, faces = min(runs)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_dec, frames = min((decode() for _ in range(repeat)), key=lambda p: p[0])
    t_fe = []
    for _ in range(repeat):
        fe.reset()
        t0 = time.perf_counter()
        for i, (img, ts) in enumerate(frames):
            fe.process(Frame(img, i, ts, video))
        t_fe.append(time.perf_counter() - t0)
    return {
        "threads": threads,
        "frames": n,
        "faces_found": faces,
        "fps_decode_plus_frontend": n / t_stream,
        "fps_decode_only": n / t_dec,
        "fps_frontend_only": n / min(t_fe),
        "ms_frontend_per_frame": 1e3 * min(t_fe) / n,
        "peak_rss_mb": peak_rss_mb,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "frontend.json"))
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.video, args.worker, args.repeat)))
        return
    rows = []
    for n in args.threads:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                args.video,
                "--worker",
                str(n),
                "--repeat",
                str(args.repeat),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"video: {args.video}")
    print(
        f"{'threads':>7} {'decode+FE fps':>14} {'FE-only fps':>12} {'FE ms/frame':>12} "
        f"{'decode fps':>11} {'peak RSS MB':>12}"
    )
    for r in rows:
        print(
            f"{r['threads']:>7} {r['fps_decode_plus_frontend']:>14.1f} "
            f"{r['fps_frontend_only']:>12.1f} {r['ms_frontend_per_frame']:>12.2f} "
            f"{r['fps_decode_only']:>11.1f} {r['peak_rss_mb']:>12.0f}"
        )
    result = {
        "benchmark": "faces.frontend",
        "video": str(args.video),
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "config": f"FaceFrontEndOptions(mode=VIDEO, defaults), best of {args.repeat} runs",
        "rows": rows,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

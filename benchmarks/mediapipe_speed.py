"""``facexpr analyze --blendshapes mediapipe`` against MediaPipe's Face Landmarker, whole process.

Both read the same video and score the same 52 blendshapes with the same two models, in the same
run, each as a fresh process (start-up, model loading, decoding and writing included), alternated
``--repeat`` times, the fastest kept (the machine may be shared):

* facexpr: ``python -m facexpr.cli.main analyze VIDEO -o OUT.csv --blendshapes mediapipe
  --no-embedding --threads 2`` (VIDEO mode: tracking, smoothing, 68 points, pose, gaze, aligned
  crop, the table written);
* MediaPipe: mediapipe's Tasks API (``FaceLandmarker``, VIDEO mode, blendshapes on,
  ``face_landmarker.task``) on frames decoded with PyAV, run by ``--mediapipe-python`` (a venv
  with ``mediapipe`` and ``av``; never a facexpr dependency), results kept in memory only.

Usage::

    python benchmarks/mediapipe_speed.py --mediapipe-python /work/venv-mp/bin/python \
        [--video ../shared/fixtures/media/WolfgangLanger_Pexels.mp4] [--repeat 2]

Writes ``benchmarks/results/mediapipe_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, git_commit

MP_SCRIPT = r"""
import sys, time
import av, numpy as np, mediapipe as mp
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode
video, task = sys.argv[1], sys.argv[2]
opts = FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=task),
                             running_mode=RunningMode.VIDEO, output_face_blendshapes=True)
n = faces = 0
with FaceLandmarker.create_from_options(opts) as lm, av.open(video) as c:
    for i, f in enumerate(c.decode(video=0)):
        img = mp.Image(image_format=mp.ImageFormat.SRGB, data=f.to_ndarray(format="rgb24"))
        r = lm.detect_for_video(img, int(round(1000 * float(f.time or i / 30))))
        n += 1
        faces += len(r.face_blendshapes)
print(n, faces)
"""


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mediapipe-python", required=True, help="a Python with mediapipe and av")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--facexpr-args",
        default="--blendshapes mediapipe --no-embedding",
        help="the analyze options timed (default: Blendshape V2 only); every output with the "
        "shipped models: '--blendshapes mediapipe'; a run's heads: '--heads-weights "
        "RUN/analysis.safetensors --blendshapes learned'",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/mediapipe_speed.json")
    args = ap.parse_args()
    video = args.video or args.shared / "fixtures" / "media" / "WolfgangLanger_Pexels.mp4"
    task = args.shared / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), GLOG_minloglevel="2")
    times: dict[str, list[float]] = {"facexpr": [], "mediapipe": []}
    counts: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out_csv = Path(tmp) / "t.csv"
        fx = [sys.executable, "-m", "facexpr.cli.main", "-q", "analyze", str(video), "-o",
              str(out_csv), *args.facexpr_args.split(), "--threads", "2",
              "--no-progress"]  # fmt: skip
        mp_cmd = [args.mediapipe_python, "-c", MP_SCRIPT, str(video), str(task)]
        for _ in range(args.repeat):
            t, _ = _timed(fx, env)
            times["facexpr"].append(t)
            t, out = _timed(mp_cmd, env)
            times["mediapipe"].append(t)
            counts["mediapipe"] = out.strip()
        import pandas as pd

        df = pd.read_csv(out_csv)
        counts["facexpr"] = f"{df['frame'].nunique()} {int(df['success'].sum())}"
        columns = len(df.columns)
    best = {k: min(v) for k, v in times.items()}
    frames = int(counts["mediapipe"].split()[0])
    result = {
        "commit": git_commit(),
        "video": video.name,
        "facexpr_args": args.facexpr_args,
        "facexpr_columns": columns,
        "frames_and_faces": counts,
        "seconds_best": {k: round(v, 2) for k, v in best.items()},
        "frames_per_s": {k: round(frames / v, 1) for k, v in best.items()},
        "facexpr_over_mediapipe_time": round(best["facexpr"] / best["mediapipe"], 2),
        "all_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "cpus": len(os.sched_getaffinity(0)),
    }
    path = args.out
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Speed and sanity of the Blendshape V2 teacher (``facexpr.faces.blendshape_teacher``).

Measures, on this machine, one interpreter thread each:

* the two models alone: Face Mesh V2 (256 px ROI) and Blendshape V2 (146 points), ms per call;
* VIDEO mode over ``fixtures/media/WolfgangLanger_Pexels.mp4`` (tracking ROI from the previous
  frame's landmarks, detector only when the face is lost): frames/s without and with decoding,
  faces found; to compare with MediaPipe's whole Face Landmarker task (88 frames/s there, figure
  of ``../shared/assets/mediapipe-face-landmarker/README.md``);
* crop mode on the first N UTKFace photos (read + 2 mesh passes + blendshapes): ms a face and
  the projected time for all 23,707;
* expression sanity on the fixture photos (smile on the happy face, jawOpen on surprise).

Usage:  python benchmarks/teacher_blendshapes.py [--shared ../shared] [--utk 300]
Writes ``benchmarks/results/teacher_blendshapes.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from _common import REPO, git_commit
from facexpr.faces.blendshape_teacher import TEACHER_NAMES, BlendshapeTeacher
from facexpr.io.datasets.utkface import UTKFace
from facexpr.io.images import read_image
from facexpr.io.video import VideoReader

N = {n: i for i, n in enumerate(TEACHER_NAMES)}


def _ms(fn, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--utk", type=int, default=300, help="UTKFace photos to time")
    args = ap.parse_args()
    media = args.shared / "fixtures" / "media"
    bundle = args.shared / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
    t = BlendshapeTeacher(bundle)
    out: dict = {
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {platform.processor() or '?'}",
        "threads": 1,
    }

    img = read_image(media / "single_face.jpg")
    (r,) = t.run_image(img)
    out["mesh_v2_ms"] = round(_ms(lambda: t.mesh(img, r.roi), 50), 2)
    out["blendshapes_ms"] = round(_ms(lambda: t.blendshapes(r.landmarks), 300), 3)

    with VideoReader(media / "WolfgangLanger_Pexels.mp4") as reader:
        t0 = time.perf_counter()
        frames = [f.image for f in reader]
        decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = list(t.run_video(frames))
    run_s = time.perf_counter() - t0
    out["video"] = {
        "file": "WolfgangLanger_Pexels.mp4",
        "frames": len(frames),
        "faces_found": sum(x is not None for x in res),
        "fps_models": round(len(frames) / run_s, 1),
        "fps_with_decoding": round(len(frames) / (run_s + decode_s), 1),
        "mediapipe_task_fps_reference": 88,
    }

    utk = UTKFace(args.shared / "datasets" / "utkface", limit=args.utk)
    t0 = time.perf_counter()
    pres = [t.run_crop(utk.image(i)).presence for i in range(len(utk))]
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(utk))
    out["utkface_crops"] = {
        "n": len(utk),
        "ms_per_face": round(ms, 1),
        "presence_ge_0.5": int(sum(p >= 0.5 for p in pres)),
        "projected_minutes_23707": round(23707 * ms / 60000, 1),
    }

    sanity = {}
    for name in ("0-f15-hao-ph.jpg", "0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"):
        (x,) = t.run_image(read_image(media / name))
        s = x.scores
        sanity[name] = {
            "smile": round(float((s[N["mouthSmileLeft"]] + s[N["mouthSmileRight"]]) / 2), 3),
            "jawOpen": round(float(s[N["jawOpen"]]), 3),
            "browInnerUp": round(float(s[N["browInnerUp"]]), 3),
            "browDown": round(float((s[N["browDownLeft"]] + s[N["browDownRight"]]) / 2), 3),
            "top3": [TEACHER_NAMES[i] for i in np.argsort(-s)[:3]],
        }
    out["fixture_photos"] = sanity
    dest = REPO / "benchmarks" / "results" / "teacher_blendshapes.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""facexpr's gaze columns next to OpenFace 2.0's, on what ``../shared/fixtures/media`` holds.

``OpenFace_Test.csv`` has OpenFace's ``gaze_0_*`` / ``gaze_1_*`` columns (no ``gaze_angle_*``:
an older OpenFace) for 100 frames of a 640x480 video that is **not** among the fixtures, so a
per-column correlation over the same frames cannot be computed here; this script checks the
conventions instead, which a correlation would not: for faces looking into the camera both tools
should give unit vectors near (0, 0, -1) with the same signs, the eyes converging (gaze_0_x > 0 >
gaze_1_x: each eye turns toward the camera) and a small downward y. Printed and written: per
column mean and standard deviation of OpenFace's 100 frames, and of facexpr's on the frontal
fixture photos (IMAGE mode) and on every frame of ``single_face.mp4`` (VIDEO mode), plus the
vergence angle between the two eyes' vectors.

Usage:  python benchmarks/gaze_openface.py [--shared ../shared]
Writes ``benchmarks/results/gaze_openface.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import REPO, git_commit
from facexpr.analyze import Analyzer, AnalyzerOptions
from facexpr.core import columns as C
from facexpr.core.types import RunningMode
from facexpr.io.tables import read_table

PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "single_face.jpg", "15-f13-anc-ph.jpg")
VECTORS = C.GAZE[:6]


def _stats(g: np.ndarray) -> dict:
    out = {c: {"mean": round(float(g[:, i].mean()), 3), "std": round(float(g[:, i].std()), 3)}
           for i, c in enumerate(VECTORS)}  # fmt: skip
    cos = np.clip((g[:, 0:3] * g[:, 3:6]).sum(1), -1, 1)
    out["vergence_deg"] = round(float(np.degrees(np.arccos(cos)).mean()), 2)
    out["rows"] = len(g)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args()
    media = args.shared / "fixtures" / "media"
    of = read_table(media / "OpenFace_Test.csv")
    of = of[of["success"] == 1]
    out: dict = {
        "commit": git_commit(),
        "per_column_correlation": None,
        "why_no_correlation": "OpenFace_Test.csv's source video (640x480, 100 frames) is not in "
        "../shared/fixtures/media: there are no common frames to correlate over",
        "openface": _stats(of[list(VECTORS)].to_numpy(np.float64)),
    }
    photo_rows = []
    with Analyzer(AnalyzerOptions(mode=RunningMode.IMAGE, embedding=None)) as a:
        for name in PHOTOS:
            df = a.analyze(media / name).data
            photo_rows.append(df[df["success"] == 1][list(VECTORS)].to_numpy(np.float64))
    out["facexpr_photos"] = _stats(np.concatenate(photo_rows))
    out["facexpr_photos"]["files"] = list(PHOTOS)
    with Analyzer(AnalyzerOptions(embedding=None)) as a:
        df = a.analyze(media / "single_face.mp4").data
    out["facexpr_single_face_mp4"] = _stats(df[df["success"] == 1][list(VECTORS)].to_numpy())
    checks = {}
    for key in ("openface", "facexpr_photos", "facexpr_single_face_mp4"):
        s = out[key]
        checks[key] = {
            "toward_camera": s["gaze_0_z"]["mean"] < -0.9 and s["gaze_1_z"]["mean"] < -0.9,
            "eyes_converge": s["gaze_0_x"]["mean"] > 0 > s["gaze_1_x"]["mean"],
            "slightly_down": 0 < s["gaze_0_y"]["mean"] < 0.3 and 0 < s["gaze_1_y"]["mean"] < 0.3,
        }
    out["conventions"] = checks
    path = REPO / "benchmarks" / "results" / "gaze_openface.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

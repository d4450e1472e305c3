"""Re-rendering vs mesh-guided warping of captured real people: which looks real to the fitter?

Each fixture photo's person is captured (``facexpr avatar capture``), then shown with expressions
drawn by the synthetic engine's sampler in the photo's own scene (:func:`facexpr.avatars.warp.
render_view`) in both modes: ``render`` (the textured avatar re-rendered unlit and composited)
and ``warp`` (the photo warped piecewise-affinely over the mesh triangles, mouth and eye
interiors re-rendered). The realism measure is issue 14's: the face front-end and the fitter
(``analyze --blendshapes fit``) run on the images and recover the weights; the mean Pearson r over
the 52 ARKit channels says how far real-face models read the known expression (the untextured
engine's renders give 0.15, ``benchmarks/fit_synthetic.py``). Also the front-end's detection rate,
the Face Mesh's face-presence confidence (how face-like the landmark model finds the image), the
fit residual, and the self-reconstruction error: each mode at the photo's own fitted expression,
compared with the photo on the face's skin (mean absolute error, 0-255). Writes
``benchmarks/results/capture_realism.json``. Captured faces are never written to disk.

Usage:  python benchmarks/capture_realism.py [--n 30] [--texture 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from _common import git_commit
from facexpr.analyze.blendshapes import BlendshapeFitter
from facexpr.avatars.texture import TextureOptions
from facexpr.avatars.warp import render_view
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import InputError
from facexpr.core.types import Frame
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.synth.capture import CaptureOptions, capture
from facexpr.synth.expressions import ExpressionSampler

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(
    os.environ.get("FACEXPR_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)
PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
          "45-m7-di-ph.jpg", "BWPictureHuman.jpg")  # fmt: skip


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-6 or b.std() < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="expressions per person")
    ap.add_argument("--texture", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0))
    fitter = BlendshapeFitter(points="mesh468")
    modes = ("render", "warp")
    truth: dict[str, list] = {m: [] for m in modes}
    est: dict[str, list] = {m: [] for m in modes}
    resid: dict[str, list] = {m: [] for m in modes}
    missed = dict.fromkeys(modes, 0)
    people = []
    ms = dict.fromkeys(modes, 0.0)
    conf: dict[str, list] = {m: [] for m in modes}
    self_err: dict[str, list] = {m: [] for m in modes}
    for k, name in enumerate(PHOTOS):
        path = SHARED / "fixtures" / "media" / name
        if not path.is_file():
            continue
        try:
            cap = capture(path, CaptureOptions(texture=TextureOptions(size=args.texture)))
        except InputError as e:
            print(f"skipped: {e}")
            continue
        people.append(name)
        skin = cap.view.mask > 0.5
        for m in modes:
            same = render_view(cap.avatar, cap.view, cap.view.weights, m).astype(np.float32)
            self_err[m].append(float(np.abs(same - cap.view.image)[skin].mean()))
        sampler = ExpressionSampler(args.seed + k)
        for i in range(args.n):
            s = sampler.sample()
            for m in modes:
                t0 = time.perf_counter()
                img = render_view(cap.avatar, cap.view, s.ict_weights, m)
                ms[m] += time.perf_counter() - t0
                out = fe.process(Frame(image=img, source=f"{name}:{i}:{m}"))
                if not out.faces:
                    missed[m] += 1
                    continue
                conf[m].append(max(f.confidence for f in out.faces))
                big = max(
                    out.faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                )
                out = type(out)(out.source, out.index, out.timestamp, out.width, out.height, (big,))
                (fitted,) = fitter.process([out], tracked=False)
                truth[m].append(s.arkit_weights)
                est[m].append(fitted.faces[0].blendshapes)
                resid[m].append(fitted.faces[0].fit_residual)
    report = {}
    for m in modes:
        t, e = np.asarray(truth[m]), np.asarray(est[m])
        rs = {n: _corr(t[:, j], e[:, j]) for j, n in enumerate(ARKIT_NAMES)}
        report[m] = {
            "faces_fitted": len(t),
            "missed": missed[m],
            "mean_r_arkit": float(np.nanmean(list(rs.values()))),
            "residual_median": float(np.median(resid[m])),
            "mesh_confidence_median": float(np.median(conf[m])),
            "self_reconstruction_mae": float(np.mean(self_err[m])),
            "ms_per_image": 1000 * ms[m] / max(1, len(t) + missed[m]),
            "arkit_r": rs,
        }
        print(f"{m:7s} mean r {report[m]['mean_r_arkit']:.3f}  residual "
              f"{report[m]['residual_median']:.4f}  found {len(t)}/{len(t) + missed[m]}  "
              f"confidence {report[m]['mesh_confidence_median']:.3f}  self-reconstruction "
              f"{report[m]['self_reconstruction_mae']:.1f}/255  "
              f"{report[m]['ms_per_image']:.0f} ms/image")  # fmt: skip
    base = RESULTS / "fit_synthetic.json"
    untextured = json.loads(base.read_text())["mean_r_arkit"] if base.is_file() else None
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capture_realism.json").write_text(json.dumps({
        "people": people, "n_per_person": args.n, "seed": args.seed, "texture": args.texture,
        "modes": report, "untextured_engine_mean_r": untextured,
        "machine": platform.platform(), "commit": git_commit(),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

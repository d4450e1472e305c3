"""How well does model fitting recover known blendshapes? Validation on synthetic renders.

ICT FaceKit heads of identities never used to build the landmark correspondence (seeds differ),
with expressions from the synthetic engine's sampler (emotion prototypes, blends, sparse actions,
neutral), random head pose and light, are rendered; the face front-end runs on the renders, and
the fitter (``facexpr analyze --blendshapes fit``) recovers the weights. Prints the per-channel
Pearson correlation and mean absolute error of the 52 ARKit weights and the AU intensities, and the
fitting cost in ms per face; writes ``benchmarks/results/fit_synthetic.json``.

Usage:  python benchmarks/fit_synthetic.py [--n 200] [--points mesh468|ibug68]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

from _common import git_commit
from facexpr.analyze.blendshapes import BlendshapeFitter
from facexpr.avatars.avatar import get_avatar
from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.avatars.fitting import correspondence
from facexpr.avatars.render import Renderer, RenderOptions
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.types import Frame
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.synth.expressions import ExpressionSampler

RESULTS = Path(__file__).resolve().parent / "results"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-6 or b.std() < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--points", choices=("mesh468", "ibug68"), default="mesh468")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument(
        "--oracle",
        action="store_true",
        help="fit the exact projections of the corresponding vertices instead of the front-end's "
        "points (separates fitting error from landmark error)",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    sampler = ExpressionSampler(args.seed)
    base = get_avatar("ict_000")
    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0))
    fitter = BlendshapeFitter(points=args.points)
    truth, est, residual, fit_ms = [], [], [], []
    missed = 0
    # The fitter assumes a focal length of one image width (53 degrees field of view), as for a
    # typical webcam or phone; render with that camera.
    with Renderer(RenderOptions(width=args.size, height=args.size, fov_deg=53.13)) as r:
        for i in range(args.n):
            ident = rng.normal(size=base.rig.n_identity).astype(np.float32)
            avatar = get_avatar(base.name, identity=ident)
            s = sampler.sample()
            pose = (rng.uniform(-12, 12), rng.uniform(-25, 25), rng.uniform(-10, 10))
            light = {"direction": (rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.6), 1.0)}
            res = r.render(
                avatar, s.ict_weights, pose=pose, light=light, background="gradient", seed=i
            )
            out = fe.process(Frame(image=res.image, source=f"synth{i}"))
            if len(out.faces) != 1:
                missed += 1
                continue
            if args.oracle:
                ids = np.asarray(correspondence()[args.points])
                exact = res.project(ids)
                face = out.faces[0]
                if args.points == "mesh468":
                    mesh = face.mesh.copy()
                    mesh[:, :2] = exact
                    face = dataclasses.replace(face, mesh=mesh)
                else:
                    face = dataclasses.replace(face, landmarks=exact)
                out = dataclasses.replace(out, faces=(face,))
            t0 = time.perf_counter()
            (fitted,) = fitter.process([out], tracked=False)
            fit_ms.append((time.perf_counter() - t0) * 1000)
            truth.append(s.arkit_weights)
            est.append(fitted.faces[0].blendshapes)
            residual.append(fitted.faces[0].fit_residual)
    t, e = np.asarray(truth), np.asarray(est)
    au_t, au_e = arkit_to_au(t), arkit_to_au(e)
    rows = []
    for j, name in enumerate(ARKIT_NAMES):
        rows.append((name, _corr(t[:, j], e[:, j]), float(np.abs(t[:, j] - e[:, j]).mean())))
    au_rows = []
    for j, name in enumerate(AU_NAMES):
        au_rows.append(
            (name, _corr(au_t[:, j], au_e[:, j]), float(np.abs(au_t[:, j] - au_e[:, j]).mean()))
        )
    print(
        f"{len(t)} faces fitted ({missed} not found), points={args.points}, "
        f"fit {np.median(fit_ms):.0f} ms/face median, residual {np.median(residual):.3f} IOD"
    )
    print(f"{'channel':20s} {'r':>6s} {'MAE':>6s}")
    for name, c, m in sorted(rows, key=lambda x: -np.nan_to_num(x[1], nan=-2)):
        print(f"{name:20s} {c:6.2f} {m:6.3f}")
    print(f"{'AU':6s} {'r':>6s} {'MAE(0-5)':>8s}")
    for name, c, m in au_rows:
        print(f"{name:6s} {c:6.2f} {m:8.2f}")
    mean_r = float(np.nanmean([c for _, c, _ in rows]))
    mean_au = float(np.nanmean([c for _, c, _ in au_rows]))
    print(
        f"mean r over ARKit channels: {mean_r:.3f}; over AUs: {mean_au:.3f}; "
        f"mean MAE {np.mean([m for _, _, m in rows]):.3f}"
    )
    RESULTS.mkdir(exist_ok=True)
    commit = git_commit()
    (RESULTS / ("fit_synthetic_oracle.json" if args.oracle else "fit_synthetic.json")).write_text(
        json.dumps(
            {
                "n": len(t),
                "missed": missed,
                "points": args.points,
                "seed": args.seed,
                "fit_ms_median": float(np.median(fit_ms)),
                "residual_median": float(np.median(residual)),
                "mean_r_arkit": mean_r,
                "mean_r_au": mean_au,
                "arkit": {n: {"r": c, "mae": m} for n, c, m in rows},
                "aus": {n: {"r": c, "mae": m} for n, c, m in au_rows},
                "machine": platform.platform(),
                "commit": commit,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

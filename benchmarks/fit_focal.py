"""Does choosing the focal length per video help the fitter? Synthetic clips, exact points.

For clips of one ICT identity (64 frames, sampled expressions, yaw +-20 degrees) rendered with a
narrow (20 degrees) and a webcam-like (53 degrees) field of view, fits the exact projections of
the corresponding vertices as a tracked face, with the focal length fixed at one image width and
with ``focal="auto"``; prints the mean Pearson r of the 52 ARKit weights and the chosen focal.

Usage:  python benchmarks/fit_focal.py [--seeds 11 12]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from facexpr.analyze.blendshapes import BlendshapeFitter
from facexpr.avatars.avatar import get_avatar
from facexpr.avatars.fitting import correspondence
from facexpr.avatars.render import Renderer, RenderOptions
from facexpr.core.types import FaceResult, FrameResult
from facexpr.synth.expressions import ExpressionSampler

SIZE = 384


def clip(seed: int, fov: float) -> tuple[list[FrameResult], np.ndarray]:
    ids = np.asarray(correspondence()["mesh468"])
    rng = np.random.default_rng(seed)
    sampler = ExpressionSampler(seed)
    avatar = get_avatar("ict_000", identity=rng.normal(size=50).astype(np.float32))
    frames, truth = [], []
    with Renderer(RenderOptions(width=SIZE, height=SIZE, fov_deg=fov)) as r:
        for i in range(64):
            s = sampler.sample()
            res = r.render(
                avatar, s.ict_weights, pose=(rng.uniform(-8, 8), rng.uniform(-20, 20), 0)
            )
            mesh = np.zeros((468, 3), np.float32)
            mesh[:, :2] = res.project(ids)
            face = FaceResult(
                np.zeros(4, np.float32), 1.0, np.zeros((68, 2), np.float32), mesh=mesh
            )
            frames.append(FrameResult("clip", i, i / 30, SIZE, SIZE, (face,)))
            truth.append(s.arkit_weights)
    return frames, np.asarray(truth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    args = ap.parse_args()
    print(f"{'fov':>5s} {'seed':>4s} {'focal':>6s} {'mean r':>7s} {'chosen px':>9s}  (true px)")
    for fov in (20.0, 53.13):
        true_f = (SIZE / 2) / math.tan(math.radians(fov / 2))
        for seed in args.seeds:
            frames, truth = clip(seed, fov)
            for focal in (float(SIZE), "auto"):
                fitter = BlendshapeFitter(focal=focal)
                out = [r for k in (0, 32) for r in fitter.process(frames[k : k + 32], tracked=True)]
                est = np.array([o.faces[0].blendshapes for o in out])
                rs = [
                    np.corrcoef(truth[:, j], est[:, j])[0, 1]
                    for j in range(52)
                    if truth[:, j].std() > 0 and est[:, j].std() > 0
                ]
                chosen = fitter.video_focal or float(SIZE)
                name = "auto" if focal == "auto" else "width"
                row = f"{fov:5.1f} {seed:4d} {name:>6s} {np.mean(rs):7.3f} {chosen:9.0f}"
                print(f"{row}  ({true_f:.0f})")


if __name__ == "__main__":
    main()

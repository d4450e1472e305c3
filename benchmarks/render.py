"""Speed of one 256x256 avatar render on one CPU core (blend, normals, upload, draw, readback).

Usage::

    python benchmarks/render.py --n 50 --out benchmarks/results/render.json

Pins the process to core 0 (``os.sched_setaffinity``) and BLAS/OpenMP to one thread, renders the
ICT avatar ``n`` times per case after a warm-up and records the median and 90th percentile
milliseconds per :meth:`facexpr.avatars.render.Renderer.render` call, which includes blending the
53 expression shapes, recomputing smooth normals, uploading, drawing, reading back the image and
the depth (landmark visibility) and compositing the background. Without a GPU EGL runs on Mesa's
llvmpipe; its rasteriser threads (``LP_NUM_THREADS``) are set to 0 so that the draw runs on the
pinned core too.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("LP_NUM_THREADS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _common import git_commit  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50, help="renders per case")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/render.json"))
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})

    from facexpr.avatars.avatar import get_avatar
    from facexpr.avatars.render import Renderer, RenderOptions

    ict, toon = get_avatar("ict"), get_avatar("ict_toon")
    rng = np.random.default_rng(0)
    c = ict.rig.n_channels
    random_w = [rng.uniform(0, 0.6, c).astype(np.float32) for _ in range(args.n)]
    poses = [(rng.uniform(-20, 20), rng.uniform(-40, 40), rng.uniform(-15, 15)) for _ in random_w]
    cases = {
        "neutral": (0, lambda r, i: r.render(ict)),
        "random_weights": (0, lambda r, i: r.render(ict, random_w[i])),
        "random_weights_pose_noise_bg": (
            0, lambda r, i: r.render(ict, random_w[i], pose=poses[i], background="noise", seed=1)
        ),
        "toon_random_weights": (0, lambda r, i: r.render(toon, random_w[i])),
        "random_weights_msaa4": (4, lambda r, i: r.render(ict, random_w[i])),
    }  # fmt: skip
    rows = []
    renderers: dict[int, Renderer] = {}
    for name, (samples, fn) in cases.items():
        if samples not in renderers:
            renderers[samples] = Renderer(
                RenderOptions(width=args.size, height=args.size, samples=samples)
            )
        r = renderers[samples]
        for i in range(3):
            fn(r, i)
        times = []
        for i in range(args.n):
            t = time.perf_counter()
            fn(r, i)
            times.append((time.perf_counter() - t) * 1000)
        rows.append({
            "case": name, "samples": samples, "median_ms": round(float(np.median(times)), 2),
            "p90_ms": round(float(np.percentile(times, 90)), 2), "n": args.n,
        })  # fmt: skip
        print(f"{name:32s} {rows[-1]['median_ms']:8.2f} ms  (p90 {rows[-1]['p90_ms']:.2f})")
    gl = renderers[0]._ctx.info
    for r in renderers.values():
        r.close()
    result = {
        "benchmark": "render",
        "size": args.size,
        "cores": 1,
        "gl_renderer": gl.get("GL_RENDERER"),
        "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "commit": git_commit(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

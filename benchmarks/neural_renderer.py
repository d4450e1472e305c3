"""The neural renderer against the real one on held-out rig weights: L1, PSNR, speed, a sheet.

Usage::

    python benchmarks/neural_renderer.py --renderer runs/renderer_tiny \
        --out benchmarks/results/neural_renderer.json --sheet /tmp/neural_renderer_sheet.png

For every avatar of the renderer, ``--n`` rig weights of the ``test`` split of
:mod:`facexpr.synth.rig_renders` (drawn like the training ones from other seeds: never trained
on) are rendered by the real OpenGL renderer (cached under ``--cache``) and by the neural one;
the script reports per avatar the mean absolute error (RGB in [0, 1]) over the image and over
the eye and mouth boxes, and the PSNR (peak 1, per image, then averaged). Speed: milliseconds per
frame of the neural renderer at batch 1 and 16 with ``--threads`` torch threads (median of
``--repeats`` after a warm-up), beside the real renderer's time per frame, with the load average
(the machine is shared). ``--sheet`` writes rows of real | neural pairs, four per avatar.
glTF avatars are given with ``--avatar-file NAME=PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from _common import git_commit
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.nn.neural_renderer import load_neural_renderer
from facexpr.synth.rig_renders import (
    RigRenderOptions,
    RigRenderSet,
    build_cache,
    load_avatar,
    load_cache,
)
from facexpr.train.recipes.renderer import box_masks, psnr


def _run_data_options(renderer: Path, size: int) -> RigRenderOptions:
    """Returns the data options of the run that made the renderer (its config.yaml), if any."""
    run = renderer if renderer.is_dir() else renderer.parent
    cfg = run / "config.yaml"
    d = yaml.safe_load(cfg.read_text())["data"] if cfg.is_file() else {}
    return RigRenderOptions(size, d.get("seed", 0), d.get("p_single", 0.15),
                            d.get("p_neutral", 0.03))  # fmt: skip


def _ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--renderer", type=Path, required=True, help="run folder or .safetensors")
    p.add_argument("--n", type=int, default=64, help="held-out rig weights per avatar")
    p.add_argument("--cache", default="data/renderer_cache")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--avatar-file", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/neural_renderer.json"))
    p.add_argument("--sheet", type=Path, default=None, help="real | neural contact sheet PNG")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    files = dict(item.split("=", 1) for item in args.avatar_file)
    model = load_neural_renderer(args.renderer)
    opts = _run_data_options(args.renderer, model.size)
    per_avatar: dict[str, dict[str, float]] = {}
    sheet_rows = []
    for name in model.avatars:
        spec = files.get(name, name)
        c = load_cache(build_cache(args.cache, spec, "test", args.n, opts, progress=True))
        target = torch.from_numpy(c.images).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            out = torch.cat([model(name, w) for w in torch.from_numpy(c.weights).split(32)])
        err = (out - target).abs()
        masks = box_masks(torch.from_numpy(c.boxes)[None], model.size)[0]  # (2, S, S)
        px = err.mean(1)  # (n, S, S)
        crop = [float((px * m).sum() / (m.sum() * len(px))) for m in masks]
        ps = psnr(out, target)
        per_avatar[name] = {
            "l1": float(err.mean()), "l1_eyes": crop[0], "l1_mouth": crop[1],
            "psnr": float(ps.mean()), "psnr_min": float(ps.min()), "n": len(ps),
        }  # fmt: skip
        print(f"{name}: L1 {err.mean():.4f}  PSNR {ps.mean():.2f} dB  (eyes {crop[0]:.4f}, "
              f"mouth {crop[1]:.4f})")  # fmt: skip
        pick = np.linspace(0, len(ps) - 1, 4).round().astype(int)
        pair = torch.stack([target[pick], out[pick]], 1).flatten(0, 1)  # real, neural, ...
        sheet_rows.append(pair)
    w1 = torch.rand(1, model.n_shapes(model.avatars[0]))
    w16 = torch.rand(16, model.n_shapes(model.avatars[0]))
    speed: dict[str, float] = {}
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        with torch.no_grad():
            speed[f"neural_batch1_{threads}threads"] = _ms(
                lambda: model(model.avatars[0], w1), args.repeats
            )
            speed[f"neural_batch16_{threads}threads"] = (
                _ms(lambda: model(model.avatars[0], w16), max(3, args.repeats // 4)) / 16
            )
    ms1 = speed[f"neural_batch1_{args.threads}threads"]
    ms16 = speed[f"neural_batch16_{args.threads}threads"]
    w = np.zeros(model.n_shapes(model.avatars[0]), np.float32)
    spec0 = files.get(model.avatars[0], model.avatars[0])
    with RigRenderSet(load_avatar(spec0), opts) as rs:
        real_ms = _ms(lambda: rs.render(w), max(3, args.repeats // 2))
    l1s = [v["l1"] for v in per_avatar.values()]
    result = {
        "benchmark": "neural_renderer",
        "renderer": str(args.renderer),
        "size": model.size,
        "avatars": list(model.avatars),
        "n_per_avatar": args.n,
        "split": "test (rig weights never trained on)",
        "per_avatar": per_avatar,
        "mean": {"l1": float(np.mean(l1s)),
                 "psnr": float(np.mean([v["psnr"] for v in per_avatar.values()]))},
        "speed_ms_per_frame": {**speed, "real_renderer_llvmpipe_1frame": real_ms},
        "parameters": sum(p.numel() for p in model.parameters()),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "commit": git_commit(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"mean L1 {result['mean']['l1']:.4f}, PSNR {result['mean']['psnr']:.2f} dB; "
          f"{ms1:.1f} ms/frame at batch 1, {ms16:.1f} at batch 16 ({args.threads} threads); "
          f"real renderer {real_ms:.1f} ms/frame; wrote {args.out}")  # fmt: skip
    if args.sheet is not None:
        import io

        from PIL import Image

        rows = [(r.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
                for r in sheet_rows]  # fmt: skip
        grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
        buf = io.BytesIO()
        Image.fromarray(grid).save(buf, format="PNG")
        write_bytes_atomic(args.sheet, buf.getvalue())
        print(f"wrote {args.sheet} (rows: avatars; columns: real, neural, real, neural, ...)")


if __name__ == "__main__":
    main()

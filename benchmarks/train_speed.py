"""MAE pretraining speed: images/s of the training step alone and of the whole loop.

Usage::

    python benchmarks/train_speed.py [--config configs/mae_tiny.yaml] [--set KEY=VALUE ...]
        [--steps 30] [--faces 1024] [--device auto] [--out benchmarks/results/train_speed.json]

(1) **step**: forward + backward + AdamW of the config's MAE on random (B, 3, 112, 112) tensors,
after 3 warm-up steps: the model's cost alone. (2) **loop**: ``facexpr.train.main.train`` with
the same config on ``--faces`` real UTKFace photos written as a temporary shard dataset (PNG
decode, augmentation, logging and a checkpoint included), samples/s over the run's logged steps
after the first. The machine's load average is recorded beside the figures, because a shared
machine's numbers move with it. Research-use images go to a temporary folder only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, git_commit


def _build_faces(out: Path, n: int, size: int) -> Path:
    import cv2
    import numpy as np

    from facexpr.io.shards import Sample, ShardWriter

    folder = REPO.parent / "shared" / "datasets" / "utkface" / "UTKFace"
    files = sorted(folder.glob("*.jpg"))[:n]
    if not files:
        sys.exit(f"no UTKFace photos in {folder}")
    with ShardWriter(out, samples_per_shard=256, schema=[]) as w:
        for i, p in enumerate(files):
            img = cv2.resize(cv2.imread(str(p)), (size, size), interpolation=cv2.INTER_AREA)
            w.write(
                Sample(
                    key=f"{i:06d}",
                    image=np.ascontiguousarray(img[:, :, ::-1]),
                    labels={},
                    source="utkface",
                    subject_id=p.name,
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "mae_tiny.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--faces", type=int, default=1024, help="0: measure the step only")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_speed.json"))
    args = ap.parse_args()

    import torch

    from facexpr.train.engine import build_optimizer
    from facexpr.train.main import resolve_config, train
    from facexpr.train.recipe import get_recipe

    overrides = [*args.overrides, f"run.device={args.device}"]
    cfg = resolve_config("mae", args.config, overrides)
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    recipe = get_recipe("mae")(cfg.model, cfg.data)
    model = recipe.build_model().to(device)
    opt = build_optimizer(model, cfg.optim)
    b, size = cfg.run.batch_size, cfg.model.img_size
    x = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, device=device)
    autocast = device.type == "cuda" and cfg.run.precision in ("auto", "bf16")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = recipe.step(model, x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    n = max(5, args.steps // 2)
    t = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_ips = n * b / (time.perf_counter() - t)
    load_step = os.getloadavg()
    print(f"step: {step_ips:.1f} img/s (batch {b}, {size} px, {device})", flush=True)

    loop_ips = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.faces == 0:  # step only (no UTKFace on this machine)
            return _write(args, cfg, device, step_ips, None, load_step)
        faces = _build_faces(Path(tmp) / "faces", args.faces, size)
        run = Path(tmp) / "run"
        res = train(
            "mae",
            config=args.config,
            overrides=[
                *overrides,
                f"data.shards=[{faces}]",
                f"run.steps={args.steps}",
                "run.log_every=5",
                "run.eval_every=0",
                f"run.checkpoint_every={args.steps}",
                "schedule.warmup_steps=5",
            ],
            out=run,
        )
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        logged = [r["samples_per_s"] for r in rows if "samples_per_s" in r][1:]
        loop_ips = sum(logged) / len(logged) if logged else res.images_per_s
    print(f"loop: {loop_ips:.1f} img/s (decode + augment + step, {args.faces} faces)")
    _write(args, cfg, device, step_ips, loop_ips, load_step)


def _write(args, cfg, device, step_ips, loop_ips, load_step) -> None:
    import torch

    b, size = cfg.run.batch_size, cfg.model.img_size
    result = {
        "benchmark": "train_speed",
        "recipe": "mae",
        "config": os.path.relpath(args.config, REPO),
        "overrides": args.overrides,
        "encoder": cfg.model.encoder,
        "img_size": size,
        "batch_size": b,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "step_images_per_s": round(step_ips, 1),
        "loop_images_per_s": None if loop_ips is None else round(loop_ips, 1),
        "loop_steps": args.steps,
        "load_average_1m": [round(load_step[0], 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__,
        "commit": git_commit(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()

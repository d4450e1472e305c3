"""Speed of synthetic face generation (faces per minute) for 1 and 2 workers.

Usage::

    python benchmarks/synth.py --n 300 --workers 1 2 --out benchmarks/results/synth.json

Renders ``n`` faces at 224 px into a temporary folder per worker count and records the wall time
of :func:`facexpr.synth.generate` (process start-up, rendering, alignment, PNG encoding, shard
writing), with the machine, the commit and the options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from facexpr.synth import SynthOptions, generate


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def contact_sheet(path: Path, size: int, n: int = 48, cols: int = 8) -> None:
    """Saves a grid of ``n`` synthetic faces labelled with their emotion (or the top AUs)."""
    import cv2
    import numpy as np

    from facexpr.avatars.facs import AU_NAMES
    from facexpr.io.shards import ShardDataset

    with tempfile.TemporaryDirectory() as d:
        generate(SynthOptions(n=n, size=size, seed=1, n_identities=12), d)
        samples = list(ShardDataset(d, shuffle_buffer=0))
    tiles = []
    for s in samples:
        img = cv2.resize(s.image, (160, 160), interpolation=cv2.INTER_AREA)
        if "emotion" in s.labels:
            text = f"{s.labels['emotion'][:8]} {float(s.labels['emotion_intensity']):.1f}"
        else:
            top = np.argsort(s.labels["aus"])[::-1][:2]
            text = " ".join(AU_NAMES[i] for i in top if s.labels["aus"][i] > 0) or "-"
        cv2.rectangle(img, (0, 0), (160, 16), (0, 0, 0), -1)
        cv2.putText(img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(img)
    rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # 256-colour palette keeps the sheet under 500 KB for the docs.
    Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/synth.json"))
    ap.add_argument(
        "--contact-sheet", type=Path, default=None, help="also save a PNG grid of 48 samples"
    )
    args = ap.parse_args()
    if args.contact_sheet is not None:
        contact_sheet(args.contact_sheet, args.size)
    runs = []
    for w in args.workers:
        opts = SynthOptions(n=args.n, size=args.size, workers=w, seed=0)
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            m = generate(opts, d)
            dt = time.perf_counter() - t0
            n_bytes = sum(s.n_bytes for s in m.shards)
        cpu = _cpu_seconds() - cpu0
        runs.append(
            {
                "workers": w,
                "n": args.n,
                "seconds": round(dt, 2),
                "faces_per_min": round(args.n / dt * 60, 1),
                "bytes_per_face": round(n_bytes / args.n),
                "minutes_for_10k": round(10_000 / (args.n / dt * 60), 2),
                # CPU time (this process and its finished workers, user + system) per face: what
                # the wall time would be per face on one uncontended core
                "cpu_seconds_per_face": round(cpu / args.n, 4),
                "faces_per_min_2_idle_cores_from_cpu": round(2 * 60 * args.n / cpu, 1),
                # 1-min load average: other jobs on the same cores slow the run down
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
            }
        )
        print(json.dumps(runs[-1]))
    result = {
        "benchmark": "facexpr.synth.generate",
        "commit": _commit(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor(),
            "note": "cores shared with other jobs during the run; timings are noisy",
        },
        "options": {
            k: v
            for k, v in asdict(SynthOptions(size=args.size)).items()
            if k in ("size", "render_size", "antialias", "png_compression", "background")
        },
        "runs": runs,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

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
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from _common import git_commit
from facexpr.synth import SynthOptions, generate


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/synth.json"))
    args = ap.parse_args()
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
        "commit": git_commit(),
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

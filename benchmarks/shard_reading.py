"""Peak memory of reading dataset shards: a large shard, and a PNG bomb inside a shard.

Usage::

    python benchmarks/shard_reading.py --mb 300 --out benchmarks/results/shard_reading.json
    python benchmarks/shard_reading.py --src /path/to/other/checkout/src   # compare a version

Builds, in a temporary folder, (1) a dataset of one shard of about ``--mb`` MB (incompressible
1024 px noise crops) and (2) a dataset whose single sample is a 0.4 MB PNG of 20000 x 20000 px.
Each is read in a fresh child process (``ShardDataset``, sha256 verified) and the growth of its
peak resident memory (``ru_maxrss``) over the same process after importing is recorded, with the
outcome (samples read, or the error).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from _common import REPO, git_commit
from facexpr.io.shard_writer import ShardWriter
from facexpr.io.shards import Sample, encode_png

_CHILD = """
import resource, sys
from facexpr.io.shards import ShardDataset
from facexpr.core.errors import FacexprError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    n, outcome = sum(1 for _ in ShardDataset(sys.argv[1], shuffle_buffer=0)), "read"
except FacexprError as e:
    n, outcome = 0, f"{type(e).__name__}: {str(e)[-110:]}"
except MemoryError:
    n, outcome = 0, "MemoryError"
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(n, round(grown, 1), outcome, sep="\\t")
"""


def _big(d: Path, mb: int) -> int:
    rng = np.random.default_rng(0)
    n = max(1, round(mb / 3.0))  # a 1024 x 1024 noise PNG is about 3 MB
    with ShardWriter(d, samples_per_shard=n, schema=[], created_by="benchmark") as w:
        for i in range(n):
            img = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
            w.write(Sample(f"{i:05d}", encode_png(img, 1), {}, "noise", "s"))
    return sum(p.stat().st_size for p in d.glob("shard-*.tar"))


def _bomb(d: Path, side: int = 20_000) -> int:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + side)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    with ShardWriter(d, samples_per_shard=1, schema=[], created_by="benchmark") as w:
        w.write(Sample("bomb", png, {}, "hostile", "s"))
    return len(png)


def _measure(src: Path, dataset: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(dataset)],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    if out.returncode != 0:
        return {"outcome": f"child exited {out.returncode}: {out.stderr[-200:]}"}
    n, grown, outcome = out.stdout.strip().split("\t")
    return {"samples_read": int(n), "peak_rss_growth_mb": float(grown), "outcome": outcome}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300, help="size of the large shard, MB")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="facexpr source to measure")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = ap.parse_args()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        big, bomb = Path(tmp) / "big", Path(tmp) / "bomb"
        size = _big(big, args.mb)
        cases.append({"case": "one large shard", "shard_mb": round(size / 2**20, 1),
                      **_measure(args.src, big)})  # fmt: skip
        print(json.dumps(cases[-1]))
        png = _bomb(bomb)
        cases.append({"case": "PNG bomb 20000x20000 px in a shard", "png_mb": round(png / 2**20, 2),
                      **_measure(args.src, bomb)})  # fmt: skip
        print(json.dumps(cases[-1]))
    if args.out is not None:
        result = {
            "benchmark": "facexpr.io.shards reading memory",
            "commit": git_commit(),
            "src": str(args.src),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "cases": cases,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

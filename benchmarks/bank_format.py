"""Identity bank entry formats: bytes per person and load time per entry, compact vs glb.

Usage::

    python benchmarks/bank_format.py --people 12 --bank /tmp/facexpr_bank_format

The same ``--people`` UTKFace files (drawn at random, seed 0, as in ``benchmarks/photoreal.py``)
are captured into two banks under ``--bank`` (kept, outside the repository: UTKFace is
research-use; a rerun reuses them): ``compact`` (the default: identity coefficients ``.npz`` +
texture ``.png``) and ``glb`` (one ``.glb`` a person). Measured per format:

- bytes per person: the entry's files (``bank.json`` not counted);
- load ms per entry: :meth:`facexpr.synth.bank.BankAvatars.avatar` with an empty cache, plus the
  avatar's neutral face (what the renderer needs first), median over ``--repeats`` loads of every
  entry (files in the page cache: a warm disk).

Writes ``benchmarks/results/bank_format.json``.
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
from facexpr.synth.bank import BankAvatars, BankOptions, build_bank, load_bank
from photoreal import utkface_sample


def _bytes(bank_dir: Path) -> list[int]:
    b = load_bank(bank_dir)
    out = []
    for e in b.entries:
        n = (bank_dir / e.file).stat().st_size
        if e.compact:
            n += (bank_dir / e.texture).stat().st_size
        out.append(n)
    return out


def _load_ms(bank_dir: Path, repeats: int) -> list[float]:
    b = load_bank(bank_dir)
    ba = BankAvatars(b, cache=1)
    times = []
    for _ in range(repeats):
        for k in range(len(b.entries)):
            ba._cache.clear()
            t0 = time.perf_counter()
            av = ba.avatar(k)
            av.base  # noqa: B018 - the neutral face, computed on first use
            times.append(1000 * (time.perf_counter() - t0))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=12)
    ap.add_argument("--bank", type=Path, default=Path("/tmp/facexpr_bank_format"))
    ap.add_argument("--texture-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bank_format.json"))
    args = ap.parse_args()
    sel = utkface_sample(args.people, args.bank / "sources")
    formats = {}
    for fmt in ("compact", "glb"):
        d = args.bank / fmt
        rep = build_bank([sel], d, BankOptions(texture_size=args.texture_size, entry_format=fmt))
        sizes = _bytes(d)
        load = _load_ms(d, args.repeats)
        formats[fmt] = {
            "entries": len(sizes),
            "captured_this_run": len(rep.captured),
            "bytes_per_person_mean": round(float(np.mean(sizes))),
            "bytes_per_person_max": int(np.max(sizes)),
            "load_ms_per_entry_median": round(float(np.median(load)), 2),
            "load_ms_per_entry_p90": round(float(np.percentile(load, 90)), 2),
            "load_avg": round(os.getloadavg()[0], 2),
        }
        print(fmt, json.dumps(formats[fmt]))
    c, g = formats["compact"], formats["glb"]
    result = {
        "benchmark": "identity bank entry formats (facexpr.synth.bank): compact vs glb",
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "note": "cores shared with other jobs during the run; timings are noisy",
        },
        "options": {
            "people": args.people,
            "texture_size": args.texture_size,
            "repeats": args.repeats,
        },
        "formats": formats,
        "ratios": {
            "bytes_glb_over_compact": round(
                g["bytes_per_person_mean"] / c["bytes_per_person_mean"], 1
            ),
            "load_glb_over_compact": round(
                g["load_ms_per_entry_median"] / c["load_ms_per_entry_median"], 1
            ),
            "utkface_23707_people_gb": {
                "compact": round(23707 * c["bytes_per_person_mean"] / 1e9, 1),
                "glb": round(23707 * g["bytes_per_person_mean"] / 1e9, 1),
            },
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

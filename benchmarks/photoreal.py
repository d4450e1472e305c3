"""Speed of photoreal synthetic faces: building an identity bank (persons/min) and rendering from
it (faces/min) for 1 and 2 workers.

Usage::

    python benchmarks/photoreal.py --people 160 --bank /tmp/utk_bank --n 300 --workers 1 2

The bank is built (``facexpr synth identities``) from ``--people`` UTKFace files drawn at random
(seed 0; symbolic links in a temporary folder, so the reader's subject clusters apply) into
``--bank`` (kept, outside the repository: UTKFace is research-use; a rerun reuses it and times
nothing). Then ``n`` faces at 224 px are rendered from the bank into a temporary folder per
worker count (process start-up, glb loading, rendering, alignment, PNG encoding, shard writing).
Writes ``benchmarks/results/photoreal.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import git_commit
from facexpr.synth import SynthOptions, generate
from facexpr.synth.bank import BankOptions, bank_entry_format, build_bank, load_bank

SHARED = Path(
    os.environ.get("FACEXPR_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def utkface_sample(people: int, folder: Path, seed: int = 0) -> Path:
    """Returns a folder of symbolic links to ``people`` UTKFace files drawn at random."""
    src = SHARED / "datasets" / "utkface" / "UTKFace"
    names = sorted(p.name for p in src.iterdir() if p.name.endswith("chip.jpg"))
    pick = np.random.default_rng(seed).choice(len(names), size=people, replace=False)
    folder.mkdir(parents=True, exist_ok=True)
    for i in sorted(pick):
        link = folder / names[i]
        if not link.exists():
            link.symlink_to(src / names[i])
    return folder


def _entry_bytes(folder: Path) -> list[int]:
    """Returns the bytes of each entry's files (``.glb``, or compact ``.npz`` + ``.png``)."""
    b = load_bank(folder)
    return [
        (folder / e.file).stat().st_size + ((folder / e.texture).stat().st_size if e.compact else 0)
        for e in b.entries
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=160)
    ap.add_argument("--bank", type=Path, default=Path("/tmp/facexpr_utk_bank"))
    ap.add_argument("--bank-workers", type=int, default=2)
    ap.add_argument("--texture-size", type=int, default=256)
    ap.add_argument(
        "--format",
        choices=("compact", "glb"),
        default=None,
        help="bank entry format (default: the bank's own, or compact for a new one)",
    )
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/photoreal.json"))
    args = ap.parse_args()
    sel = utkface_sample(args.people, args.bank.with_name(args.bank.name + "_sources"))
    load0 = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    fmt = args.format or bank_entry_format(args.bank) or "compact"
    rep = build_bank(
        [sel], args.bank, BankOptions(texture_size=args.texture_size, entry_format=fmt),
        workers=args.bank_workers,
    )  # fmt: skip
    cpu = _cpu_seconds() - cpu0
    bank = {
        "people": args.people,
        "workers": args.bank_workers,
        "texture_size": args.texture_size,
        "captured": len(rep.captured),
        "failed": len(rep.failed),
        "skipped": len(rep.skipped),
        "seconds": round(rep.seconds, 1),
        "persons_per_min": round(60 * len(rep.captured) / rep.seconds, 1) if rep.captured else None,
        "cpu_seconds_per_person": round(cpu / len(rep.captured), 2) if rep.captured else None,
        "failure_reasons": sorted({f.reason for f in rep.failed}),
        "entry_format": fmt,
        "mb_per_entry": round(float(np.mean(_entry_bytes(args.bank))) / 2**20, 2),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    if not rep.captured and args.out.is_file():
        # Everything was in the bank already: keep the figures of the run that built it.
        bank = {**json.loads(args.out.read_text()).get("bank", {}), "reused": True}
    print(json.dumps(bank))
    runs = []
    for w in args.workers:
        opts = SynthOptions(avatars=(), identity_bank=str(args.bank), n=args.n, size=args.size,
                            workers=w, seed=0)  # fmt: skip
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            m = generate(opts, d)
            dt = time.perf_counter() - t0
            n_bytes = sum(s.n_bytes for s in m.shards)
        cpu = _cpu_seconds() - cpu0
        runs.append({
            "workers": w, "n": args.n, "seconds": round(dt, 2),
            "faces_per_min": round(args.n / dt * 60, 1),
            "bytes_per_face": round(n_bytes / args.n),
            "cpu_seconds_per_face": round(cpu / args.n, 4),
            "faces_per_min_2_idle_cores_from_cpu": round(2 * 60 * args.n / cpu, 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        })  # fmt: skip
        print(json.dumps(runs[-1]))
    result = {
        "benchmark": "facexpr.synth.bank.build_bank + facexpr.synth.generate(identity_bank)",
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "note": "cores shared with other jobs during the run; timings are noisy",
        },
        "bank": bank,
        "options": {
            "size": args.size,
            "render_size": 320,
            "identity_block": 8,
            "textured_light": SynthOptions().textured_light,
        },
        "runs": runs,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

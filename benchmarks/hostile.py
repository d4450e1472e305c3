"""Runs the hostile-input corpus (tests/hostile) outside pytest and summarises what broke.

Usage::

    python benchmarks/hostile.py                       # all cases, forked from one interpreter
    python benchmarks/hostile.py --spawn               # a fresh interpreter per case (slower)
    python benchmarks/hostile.py --only gltf- dataset-info-
    python benchmarks/hostile.py --out benchmarks/results/hostile.json

Prints one line per case (PASS/FAIL/SKIP, exit code, seconds, peak RSS, the problems and the last
error line), then the totals: cases, passes, tracebacks, reads of the canary or forbidden files,
writes outside the case's output folder, timeouts, peak memory (max and per family) and the total
time; saves them as JSON with the machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import REPO, git_commit

sys.path.insert(0, str(REPO / "tests" / "hostile"))

import corpus  # the corpus lives with the tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[], metavar="PREFIX", help="case name prefixes")
    ap.add_argument("--spawn", action="store_true", help="a fresh interpreter per case")
    ap.add_argument("--keep", type=Path, default=None, help="keep the case folders here")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "hostile.json")
    args = ap.parse_args()

    cases = [c for c in corpus.all_cases() if not args.only or c.name.startswith(tuple(args.only))]
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facexpr-hostile-") as tmp:
        root = args.keep or Path(tmp)
        server = None if args.spawn else corpus.ForkServer()
        try:
            for case in cases:
                if case.skip:
                    rows.append({"case": case.name, "family": case.family, "skipped": case.skip})
                    print(f"SKIP {case.name}: {case.skip}", flush=True)
                    continue
                o = corpus.run_case(case, root, server)
                r = o.run
                assert r is not None
                dirs = corpus.CaseDirs(root / case.name, corpus.SESSION_TOKEN)
                setup = o.setup
                forbidden = setup.forbidden if setup else ()
                row = {
                    "case": case.name,
                    "family": case.family,
                    "passed": o.passed,
                    "rc": r.rc,
                    "seconds": round(r.seconds, 2),
                    "max_rss_mb": round(r.max_rss_mb, 1),
                    "timed_out": r.timed_out,
                    "traceback": "Traceback (most recent call last)" in r.stderr,
                    "outside_reads": corpus.canary_reads(r, dirs, forbidden),
                    "outside_writes": corpus.out_of_folder_writes(r, dirs),
                    # not failures: files outside the case, the interpreter and ../shared that the
                    # command read (system files mostly), listed to spot new ones
                    "other_reads": corpus.foreign_reads(r, dirs),
                    "problems": o.problems,
                    "error": corpus.last_error_line(r.stderr.replace(str(root), "CASES")),
                }
                rows.append(row)
                print(
                    f"{'PASS' if o.passed else 'FAIL'} {case.name} rc={r.rc} {r.seconds:.1f}s "
                    f"{r.max_rss_mb:.0f}MB"
                    + (f" :: {'; '.join(o.problems)}" if o.problems else "")
                    + (f" || {row['error']}" if not o.passed else ""),
                    flush=True,
                )
        finally:
            if server is not None:
                server.close()
    total = time.perf_counter() - t0
    ran = [r for r in rows if "skipped" not in r]
    per_family: dict[str, dict[str, float]] = defaultdict(
        lambda: {"cases": 0, "passed": 0, "max_rss_mb": 0.0}
    )
    for r in ran:
        f = per_family[r["family"]]
        f["cases"] += 1
        f["passed"] += int(r["passed"])
        f["max_rss_mb"] = max(f["max_rss_mb"], r["max_rss_mb"])
    summary = {
        "cases": len(rows),
        "ran": len(ran),
        "skipped": len(rows) - len(ran),
        "passed": sum(r["passed"] for r in ran),
        "tracebacks": sum(r["traceback"] for r in ran),
        "timeouts": sum(r["timed_out"] for r in ran),
        "cases_reading_outside": sum(bool(r["outside_reads"]) for r in ran),
        "cases_writing_outside": sum(bool(r["outside_writes"]) for r in ran),
        "max_rss_mb": max((r["max_rss_mb"] for r in ran), default=0.0),
        "total_seconds": round(total, 1),
        "per_family": dict(per_family),
    }
    print(
        f"\n{summary['cases']} cases ({summary['skipped']} skipped): {summary['passed']} passed, "
        f"{summary['ran'] - summary['passed']} failed; {summary['tracebacks']} tracebacks, "
        f"{summary['timeouts']} timeouts, {summary['cases_reading_outside']} read outside, "
        f"{summary['cases_writing_outside']} wrote outside; peak RSS max "
        f"{summary['max_rss_mb']:.0f} MB; {total:.0f} s"
    )
    for fam, f in summary["per_family"].items():
        print(
            f"  {fam:<8} {int(f['passed']):>3}/{int(f['cases']):<3} passed, "
            f"peak RSS {f['max_rss_mb']:.0f} MB"
        )
    result = {
        "benchmark": "hostile-input corpus (tests/hostile) through the CLI",
        "commit": git_commit(),
        "mode": "spawn (fresh interpreter per case)" if args.spawn else "fork server",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "note": "cores shared with other jobs during the run; timings are noisy",
        },
        "only": args.only,
        "summary": summary,
        "cases": rows,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

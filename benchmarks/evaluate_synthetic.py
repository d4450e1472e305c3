"""Today's models under ``facexpr evaluate`` on synthetic faces with exact labels.

ICT FaceKit renders of the synthetic engine (random identities, expressions, pose, light) are
written in the Aff-Wild2 (ABAW) layout: ``cropped_aligned/`` crops, AU occurrence labels of the
12 ABAW AUs from the renders' exact AU intensities (present at >= 2, through the ARKit-to-FACS
table), expression labels from their dominant emotion. The Aff-Wild2 reader converts them and
``facexpr.analyze.evaluate`` scores ``fit``, ``mediapipe-teacher`` (with the Face Landmarker
bundle) and ``fer-teacher`` (with ported weights). The renders are not real faces: this measures
the models on the engine's faces, a baseline for the learned heads, not a benchmark score.

Writes ``benchmarks/results/evaluate_synthetic.json`` (no images).

Usage:  python benchmarks/evaluate_synthetic.py [--n 200] [--seed 1234] [--bundle TASK]
                                                [--fer-weights PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from PIL import Image

from _common import REPO, git_commit
from facexpr.analyze.evaluate import evaluate
from facexpr.analyze.evaluators import EvaluatorOptions
from facexpr.avatars.facs import AU_NAMES
from facexpr.core.errors import FacexprError
from facexpr.io._files import write_text_atomic
from facexpr.io.datasets import AffWild2, write_shards
from facexpr.io.datasets.affwild2 import ABAW_AUS, ABAW_EXPRESSIONS
from facexpr.io.shards import ShardReader
from facexpr.synth import SynthOptions, generate

RESULTS = Path(__file__).resolve().parent / "results"


def build(tmp: Path, n: int, seed: int) -> Path:
    """Renders n faces and writes them in the Aff-Wild2 layout; returns the converted dataset."""
    generate(SynthOptions(n=n, size=224, seed=seed, samples_per_shard=1000), tmp / "synth")
    root = tmp / "affwild2"
    frames = root / "cropped_aligned" / "synthetic"
    frames.mkdir(parents=True)
    names = tuple(f"AU{a:02d}" for a in ABAW_AUS)
    lower = [e.lower() for e in ABAW_EXPRESSIONS]
    au_rows, expr_rows = [], []
    for i, s in enumerate(ShardReader(tmp / "synth", shuffle_buffer=0)):
        Image.fromarray(s.image).save(frames / f"{i + 1:05d}.jpg", quality=95)
        aus = dict(zip(AU_NAMES, s.labels["aus"], strict=True))
        au_rows.append(",".join(str(int(aus[a] >= 2)) for a in names))
        e = s.labels.get("emotion")
        expr_rows.append(str(lower.index(e) if e in lower else -1))
    for task, header, rows in (
        ("AU_Detection_Challenge", ",".join(f"AU{a}" for a in ABAW_AUS), au_rows),
        ("EXPR_Classification_Challenge", ",".join(ABAW_EXPRESSIONS), expr_rows),
    ):
        d = root / "Annotations" / task / "Validation_Set"
        d.mkdir(parents=True)
        (d / "synthetic.txt").write_text("\n".join([header, *rows]) + "\n")
    return write_shards(AffWild2(root), tmp / "dataset")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=1234)
    default_bundle = REPO.parent / "shared/assets/mediapipe-face-landmarker/face_landmarker.task"
    p.add_argument("--bundle", default=str(default_bundle))
    p.add_argument("--fer-weights", default=None)
    args = p.parse_args()
    runs = {
        "fit": EvaluatorOptions(),
        "mediapipe-teacher": EvaluatorOptions(teacher_bundle=args.bundle),
        "fer-teacher": EvaluatorOptions(weights=args.fer_weights),
    }
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = build(Path(tmp), args.n, args.seed)
        print(f"rendered and converted {args.n} faces in {time.perf_counter() - t0:.0f} s")
        for name, options in runs.items():
            t0 = time.perf_counter()
            try:
                report = evaluate(name, data, options=options)
            except FacexprError as e:
                print(f"{name}: not run ({e})")
                out[name] = {"not_run": str(e)}
                continue
            seconds = time.perf_counter() - t0
            print(report.table())
            print(f"({seconds:.1f} s)\n")
            out[name] = {**report.to_json(), "seconds": seconds}
    result = {
        "benchmark": "evaluate_synthetic",
        "n": args.n,
        "seed": args.seed,
        "commit": git_commit(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "models": out,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "evaluate_synthetic.json"
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()

"""``facexpr evaluate --model NAME --data DIR``: score a model on a dataset, print the table."""

from __future__ import annotations

import argparse
import json
import sys

from facexpr.cli._args import positive_float as _positive_float
from facexpr.cli._args import positive_int as _positive_int


def _fold(text: str) -> int | str:
    if text == "all":
        return "all"
    return _positive_int(text)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``evaluate`` command to the ``facexpr`` parser; returns its parser."""
    from facexpr.analyze.evaluators import describe_evaluators

    models = "; ".join(f"{k}: {v}" for k, v in describe_evaluators().items())
    e = subparsers.add_parser(
        "evaluate",
        help="score a model on a dataset (AU F1/AUC/ICC, emotion accuracy, VA CCC)",
        description="Run a model over a facexpr dataset written by 'facexpr dataset NAME' and "
        "print per-AU F1 and AUC (and ICC, PCC, MAE with intensity labels), emotion accuracy "
        "and macro-F1, valence/arousal CCC, as papers print them. Models: " + models + ".",
    )
    e.add_argument("--model", required=True, metavar="NAME", help="model to evaluate")
    e.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    e.add_argument("--out", metavar="JSON", default=None, help="also write the scores as JSON")
    e.add_argument(
        "--fold",
        type=_fold,
        default=None,
        metavar="K",
        help="score the test subjects of fold K (1-based), or 'all' for each fold and the mean "
        "and spread over folds (default: every image)",
    )
    e.add_argument(
        "--au-threshold",
        type=_positive_float,
        default=2.0,
        metavar="I",
        help="intensity (0-5) at which a predicted AU counts as present (default 2, FACS B)",
    )
    e.add_argument("--weights", metavar="PATH", default=None, help="model weights, if it takes any")
    e.add_argument(
        "--teacher-bundle",
        metavar="TASK",
        default=None,
        help="MediaPipe's face_landmarker.task for mediapipe-teacher "
        "(default: $FACEXPR_LANDMARKER_TASK)",
    )
    e.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="first N images")
    e.add_argument("--threads", type=_positive_int, default=1, metavar="N")
    e.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    return e


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr evaluate``; returns 0 (errors propagate to ``main``: exit 2)."""
    from facexpr.analyze.evaluate import evaluate
    from facexpr.analyze.evaluators import EvaluatorOptions
    from facexpr.io._files import write_text_atomic

    options = EvaluatorOptions(
        device=args.device,
        num_threads=args.threads,
        au_threshold=args.au_threshold,
        weights=args.weights,
        teacher_bundle=args.teacher_bundle,
    )
    report = evaluate(
        args.model,
        args.data,
        fold=args.fold,
        options=options,
        limit=args.limit,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(report.table())
    if args.out:
        write_text_atomic(args.out, json.dumps(report.to_json(), indent=1) + "\n")
        print(args.out, file=sys.stderr)
    return 0

"""``facexpr normalize INPUT -o OUT``: faces redrawn as one canonical face with the same
expression (Norface identity normalisation)."""

from __future__ import annotations

import argparse
import sys

from facexpr.cli._args import positive_float as _positive_float
from facexpr.cli._args import positive_int as _positive_int
from facexpr.cli._args import report_failures


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``normalize`` command to the ``facexpr`` parser; returns its parser."""
    n = subparsers.add_parser(
        "normalize",
        help="redraw faces as one canonical face with the same expression (Norface)",
        description="Find the face of each photo or video, crop it as the analysis does, and "
        "redraw it as the canonical face (ICT FaceKit's ict_000, frontal, fixed light, grey "
        "background) with the same expression: identity, pose, light and background removed. "
        "Writes OUT/NAME.png per photo and OUT/NAME.mp4 (aligned input | normalised) per video. "
        "Bad inputs are reported and the others written (exit 2 if any failed).",
    )
    n.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, folders, globs or videos")
    n.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    n.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="a 'facexpr train normalizer' run folder or its model.safetensors (default: the "
        "shipped weights)",
    )
    n.add_argument(
        "--single-face",
        action="store_true",
        help="refuse inputs with several faces (default: normalise the largest and say so)",
    )
    n.add_argument(
        "--max-yaw",
        type=_positive_float,
        default=45.0,
        metavar="DEG",
        help="refuse faces turned further than this from the camera (default 45)",
    )
    n.add_argument(
        "--min-eye-distance",
        type=_positive_float,
        default=16.0,
        metavar="PX",
        help="refuse faces with fewer px between the eye centres (default 16)",
    )
    n.add_argument("--threads", type=_positive_int, default=1, metavar="N")
    return n


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr normalize``; returns 0, or 2 if an input failed (errors propagate to
    ``main``: exit 2)."""
    from facexpr.analyze.normalize import NormalizeOptions, normalize_inputs
    from facexpr.core.errors import ConfigError
    from facexpr.io.sources import printable_path

    if args.max_yaw >= 90:
        raise ConfigError(f"--max-yaw must be below 90 degrees, got {args.max_yaw}")
    options = NormalizeOptions(
        weights=args.weights,
        several="refuse" if args.single_face else "largest",
        max_yaw=args.max_yaw,
        min_eye_distance=max(2.0, args.min_eye_distance),
        num_threads=args.threads,
    )
    report = normalize_inputs(args.inputs, args.out, options)
    for path in report.written:
        print(printable_path(path))
    for note in report.notes:
        print(f"facexpr: {printable_path(note)}", file=sys.stderr)
    print(
        f"facexpr: {report.faces} face(s) normalised into {len(report.written)} file(s)",
        file=sys.stderr,
    )
    return report_failures(report.failures)

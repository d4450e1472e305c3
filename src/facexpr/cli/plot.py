"""``facexpr plot TABLE -o PNG``: AU, emotion and valence-arousal time series of a table."""

from __future__ import annotations

import argparse
import sys

from facexpr.cli._args import positive_int as _positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``plot`` command to the ``facexpr`` parser; returns its parser."""
    p = subparsers.add_parser(
        "plot",
        help="draw AU, emotion and valence-arousal time series of an analysed table (PNG)",
        description="Draw the AU intensities, emotion probabilities and valence/arousal of one "
        "face over time from a table 'facexpr analyze' wrote (or an OpenFace/py-feat CSV), one "
        "panel each; groups the table lacks are left out with a note. Needs matplotlib: "
        "pip install 'facexpr[plot]'.",
    )
    p.add_argument("table", metavar="TABLE", help=".csv, .parquet or .jsonl table")
    p.add_argument("-o", "--out", required=True, metavar="PNG", help="image to write")
    p.add_argument("--face-id", type=int, default=None, help="face to draw (default: main)")
    p.add_argument("--input", default=None, metavar="NAME", help="input to draw, if several")
    p.add_argument(
        "--aus",
        default=None,
        metavar="LIST",
        help="AUs to draw, comma-separated (AU06,AU12), or 'all' (default: the 10 that vary most)",
    )
    p.add_argument("--dpi", type=_positive_int, default=100, help="pixels per inch")
    return p


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr plot``; returns the exit code (errors propagate as FacexprError)."""
    from facexpr.analyze.plot import plot_table

    aus = args.aus
    if aus is not None and aus != "all":
        aus = tuple(a.strip() for a in aus.split(",") if a.strip())
    report = plot_table(
        args.table, args.out, face_id=args.face_id, source=args.input, aus=aus, dpi=args.dpi
    )
    if not args.quiet:
        for note in report.notes:
            print(f"facexpr: note: {note}", file=sys.stderr)
    print(report.path)
    return 0

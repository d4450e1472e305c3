"""``facexpr similar QUERY --in INPUTS``: faces ranked by expression similarity to a query."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facexpr.cli._args import positive_float as _positive_float
from facexpr.cli._args import positive_int as _positive_int
from facexpr.cli._args import report_failures


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``similar`` command to the ``facexpr`` parser; returns its parser."""
    s = subparsers.add_parser(
        "similar",
        help="rank the faces of photos/videos by expression similarity to a query face",
        description="Rank every face in the inputs by the cosine similarity of its expression "
        "embedding with the query's (the largest face of QUERY: a photo, or a video frame as "
        "clip.mp4@12.5s, the first frame at or after 12.5 s). Writes OUT/similar.csv (rank, "
        "input, frame, timestamp, face_id, similarity, face box) and OUT/similar.png (the "
        "query, then the top K aligned faces with their scores).",
    )
    s.add_argument("query", metavar="QUERY", help="photo, or video frame as VIDEO@SECONDSs")
    s.add_argument(
        "--in",
        dest="inputs",
        nargs="+",
        required=True,
        metavar="INPUT",
        help="photos, folders (recursively), globs or videos to search",
    )
    s.add_argument("--top", type=_positive_int, default=10, metavar="K", help="matches kept")
    s.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    s.add_argument(
        "--expression-weights",
        metavar="PATH",
        default=None,
        help="expression model weights (default: the shipped ones)",
    )
    s.add_argument("--every", type=_positive_int, default=1, metavar="N", help="every Nth frame")
    s.add_argument(
        "--fps", type=_positive_float, default=None, metavar="F", help="at most F frames/s"
    )
    s.add_argument("--max-faces", type=_positive_int, default=10, metavar="N")
    s.add_argument("--threads", type=_positive_int, default=1, metavar="N")
    s.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    return s


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr similar``; returns the exit code (0, or 2 if an input failed; errors
    propagate to ``main``: exit 2)."""
    from facexpr.analyze import AnalyzerOptions, EmbeddingOptions, find_similar
    from facexpr.analyze.similarity import parse_query, similarity_sheet
    from facexpr.io._files import FolderLock, write_text_atomic
    from facexpr.io.images import write_image
    from facexpr.io.sources import printable_path

    parse_query(args.query)  # a missing query fails before the output folder is made
    options = AnalyzerOptions(
        every=args.every,
        fps=args.fps,
        max_faces=args.max_faces,
        num_threads=args.threads,
        device=args.device,
        embedding=EmbeddingOptions(weights=args.expression_weights),
    )
    out = Path(args.out)
    with FolderLock(out, "facexpr similar"):
        result = find_similar(
            args.query,
            args.inputs,
            top=args.top,
            options=options,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
        csv, png = out / "similar.csv", out / "similar.png"
        write_text_atomic(csv, result.to_dataframe().to_csv(index=False))
        write_image(png, similarity_sheet(result))
    print(printable_path(csv))
    print(printable_path(png))
    q = result.query
    where = f" at {q.timestamp:.2f} s" if q.frame > 1 or q.timestamp > 0 else ""
    print(
        f"facexpr: query face {q.face_id} of {q.input}{where}; {result.compared} faces compared, "
        f"top {len(result.matches)} written",
        file=sys.stderr,
    )
    return report_failures(result.failures)

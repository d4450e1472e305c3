"""The ``facexpr`` command. Thin: parses arguments, calls the library, prints.

Exit codes: 0 all inputs done; 1 some inputs failed (the rest were written); 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from facexpr import __version__
from facexpr.cli import animate as animate_cli
from facexpr.cli import avatar as avatar_cli
from facexpr.cli import datasets as datasets_cli
from facexpr.cli import evaluate as evaluate_cli
from facexpr.cli import normalize as normalize_cli
from facexpr.cli import plot as plot_cli
from facexpr.cli import similar as similar_cli
from facexpr.cli import synth as synth_cli
from facexpr.cli import train as train_cli
from facexpr.cli._args import positive_float as _positive_float
from facexpr.cli._args import positive_int as _positive_int
from facexpr.cli._args import report_failures
from facexpr.core.errors import ConfigError, FacexprError

log = logging.getLogger("facexpr")


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(
        level=max(logging.DEBUG, min(logging.CRITICAL, level)),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facexpr",
        description="Facial expression measurement from photos, videos and webcams.",
    )
    p.add_argument("--version", action="version", version=f"facexpr {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser(
        "analyze",
        help="analyse photos, folders, videos or a webcam into a table",
        description="Analyse faces in photos, folders (recursively), glob patterns, videos or a "
        "webcam ('webcam:0'). Writes one table per input into OUT (or to OUT itself when it is "
        "a .csv/.parquet/.jsonl file and there is one input).",
    )
    a.add_argument("inputs", nargs="+", metavar="INPUT")
    a.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder or file")
    a.add_argument(
        "--format",
        choices=("csv", "parquet", "jsonl"),
        default=None,
        help="table format (default: by OUT's suffix, else csv)",
    )
    a.add_argument(
        "--annotate",
        metavar="OUT",
        help="write annotated media: a folder, or an image/video file for one input",
    )
    a.add_argument(
        "--every", type=_positive_int, default=1, metavar="N", help="keep every Nth video frame"
    )
    a.add_argument(
        "--fps",
        type=_positive_float,
        default=None,
        metavar="F",
        help="keep at most F frames per second of video",
    )
    a.add_argument("--start", type=float, default=None, metavar="SEC", help="start time in video")
    a.add_argument("--end", type=float, default=None, metavar="SEC", help="end time in video")
    a.add_argument(
        "--detector",
        choices=("full", "short"),
        default="full",
        help="face detector: full range (default) or short range (faster)",
    )
    a.add_argument("--min-face-score", type=float, default=0.5, metavar="S")
    a.add_argument("--max-faces", type=_positive_int, default=10, metavar="N")
    a.add_argument("--no-smoothing", action="store_true", help="no temporal landmark smoothing")
    a.add_argument("--mesh", action="store_true", help="add the 468-point mesh columns")
    a.add_argument(
        "--aligned",
        action="store_true",
        help="inputs are pre-cropped faces (e.g. 48 px FER+ crops): skip detection",
    )
    a.add_argument(
        "--blendshapes",
        choices=("auto", "learned", "fit", "mediapipe", "none"),
        default="auto",
        help="the 52 ARKit blendshapes: 'learned' (the analysis heads), 'fit' (fitting the ICT "
        "face model, with its AU intensities when the heads are off), 'mediapipe' (MediaPipe's "
        "Blendshape V2, runs Face Mesh V2), 'none'; 'auto' (default): learned when analysis "
        "weights are available, else none",
    )
    a.add_argument(
        "--no-heads",
        action="store_true",
        help="leave out the learned heads (emotions, valence, arousal, AUxx_r/AUxx_c, learned "
        "blendshapes; on by default when analysis weights are available)",
    )
    a.add_argument(
        "--heads-weights",
        metavar="PATH",
        default=None,
        help="analysis model weights (a 'facexpr train heads' run's analysis.safetensors) "
        "instead of the shipped ones",
    )
    a.add_argument(
        "--landmarks",
        choices=("mesh468", "mesh478"),
        default=None,
        help="landmark model: 'mesh468' (Face Mesh) or 'mesh478' (Face Mesh V2 with iris: adds "
        "the gaze columns); default mesh478",
    )
    a.add_argument(
        "--no-embedding",
        action="store_true",
        help="leave out the expression embedding (expr_00..expr_15, on by default when "
        "expression weights are available)",
    )
    a.add_argument(
        "--expression-weights",
        metavar="PATH",
        default=None,
        help="expression model weights (a 'facexpr train expression' run's model.safetensors) "
        "instead of the shipped ones",
    )
    a.add_argument(
        "--embedding-runtime",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="run the expression encoder under ONNX Runtime or PyTorch (default: ONNX Runtime "
        "when installed, the faster on CPU)",
    )
    a.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="CPU threads for the face models",
    )
    a.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    a.add_argument(
        "--resume", action="store_true", help="skip inputs whose output table already exists"
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("info", help="print versions, models and devices")

    synth_cli.add_parser(sub)

    animate_cli.add_parser(sub)
    train_cli.add_parser(sub)
    similar_cli.add_parser(sub)
    evaluate_cli.add_parser(sub)
    plot_cli.add_parser(sub)
    avatar_cli.add_parser(sub)
    normalize_cli.add_parser(sub)
    d = sub.add_parser("dataset", help="build and inspect training datasets (shard format)")
    dsub = d.add_subparsers(dest="dataset_command", required=True)
    b = dsub.add_parser(
        "build",
        help="run the front-end over media and keep aligned faces with pseudo-labels",
    )
    b.add_argument("inputs", nargs="+", metavar="INPUT")
    b.add_argument("--out", "-o", required=True, metavar="DIR")
    b.add_argument("--stride", type=_positive_int, default=5, help="keep every Nth video frame")
    b.add_argument("--size", type=_positive_int, default=224, help="crop side in px")
    b.add_argument("--min-face-px", type=float, default=64.0)
    b.add_argument("--min-score", type=float, default=0.6)
    b.add_argument("--max-yaw", type=float, default=45.0)
    b.add_argument("--min-sharpness", type=float, default=20.0)
    b.add_argument("--no-pseudo-labels", action="store_true", help="skip ICT model fitting")
    b.add_argument(
        "--aligned",
        action="store_true",
        help="inputs are pre-cropped faces: no detection, no face-size filter",
    )
    b.add_argument(
        "--teacher",
        metavar="PATH",
        default=None,
        help="add emotion pseudo-labels from the ported teacher ('auto': its cache location)",
    )
    b.add_argument(
        "--teacher-bundle",
        metavar="TASK",
        default=None,
        help="cache Blendshape V2 teacher labels: 'vendored' (the models shipped with facexpr), "
        "'env' ($FACEXPR_LANDMARKER_TASK, else the vendored models) or a face_landmarker.task",
    )
    b.add_argument("--limit", type=_positive_int, default=None, help="files read per UTKFace root")
    b.add_argument("--overwrite", action="store_true", help="replace a dataset in DIR")
    te = dsub.add_parser(
        "teach",
        help="copy a dataset adding cached Blendshape V2 teacher labels",
        description="Run the Blendshape V2 teacher (MediaPipe's Face Mesh V2 + Blendshape V2, "
        "through facexpr's LiteRT code) on every crop of dataset IN and write the samples with "
        "arkit_teacher / neutral_teacher / teacher_presence added to OUT.",
    )
    te.add_argument("dir", metavar="IN")
    te.add_argument("--out", "-o", required=True, metavar="OUT")
    te.add_argument(
        "--teacher-bundle",
        metavar="TASK",
        default=None,
        help="read the models from this face_landmarker.task (default: "
        "$FACEXPR_LANDMARKER_TASK, else the models shipped with facexpr)",
    )
    te.add_argument("--limit", type=_positive_int, default=None, help="first N samples only")
    te.add_argument("--overwrite", action="store_true", help="replace a dataset in OUT")
    fp = dsub.add_parser(
        "ferplus",
        help="convert FER+ (packed or upstream layout) into the dataset format",
        description="Convert FER+ faces with their 10-annotator votes (soft labels, majority "
        "label, official split) into facexpr shards. ROOT is the packed folder (with "
        "{Train,Valid,Test}_labels.csv); --upstream reads Microsoft's fer2013new.csv beside "
        "FER2013's fer2013.csv instead. The images are pre-cropped 48 px faces: no detection.",
    )
    fp.add_argument("root", metavar="ROOT")
    fp.add_argument("--out", "-o", required=True, metavar="DIR")
    fp.add_argument("--split", choices=("Train", "Valid", "Test"), required=True)
    fp.add_argument("--upstream", action="store_true", help="ROOT holds the upstream CSVs")
    fp.add_argument("--overwrite", action="store_true")
    datasets_cli.add_parsers(dsub)
    i = dsub.add_parser("info", help="counts and label coverage of a dataset")
    i.add_argument("dir", metavar="DIR")
    sh = dsub.add_parser("show", help="write a contact sheet PNG of a dataset")
    sh.add_argument("dir", metavar="DIR")
    sh.add_argument("--out", "-o", required=True, metavar="PNG")
    sh.add_argument("-n", type=_positive_int, default=64, help="samples shown")
    sh.add_argument("--caption", default=None, help="label field printed under each tile")
    return p


def cmd_analyze(args: argparse.Namespace) -> int:
    from facexpr.analyze import Analyzer, AnalyzerOptions, run_batch
    from facexpr.analyze.embedding import EmbeddingOptions
    from facexpr.analyze.heads import HeadsOptions
    from facexpr.io.sources import printable_path

    if args.no_embedding and args.expression_weights:
        raise ConfigError("--no-embedding and --expression-weights contradict each other")
    if args.no_heads and args.heads_weights:
        raise ConfigError("--no-heads and --heads-weights contradict each other")
    embedding = (
        None
        if args.no_embedding
        else EmbeddingOptions(weights=args.expression_weights, runtime=args.embedding_runtime)
    )
    heads = (
        None
        if args.no_heads
        else HeadsOptions(weights=args.heads_weights, runtime=args.embedding_runtime)
    )
    options = AnalyzerOptions(
        detector=args.detector,
        min_face_score=args.min_face_score,
        max_faces=args.max_faces,
        every=args.every,
        fps=args.fps,
        start=args.start,
        end=args.end,
        smoothing=not args.no_smoothing,
        num_threads=args.threads,
        device=args.device,
        mesh=args.mesh,
        blendshapes=args.blendshapes,
        landmarks=args.landmarks,
        aligned=args.aligned,
        embedding=embedding,
        heads=heads,
    )
    for note in (options.heads_note, options.embedding_note):
        if note is not None and not args.quiet:
            print(f"facexpr: note: {note}", file=sys.stderr)
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        with Analyzer(options) as analyzer:
            report = run_batch(
                analyzer,
                args.inputs,
                args.out,
                fmt=args.format,
                annotate=args.annotate,
                resume=args.resume,
                progress=progress,
            )
    except FacexprError as e:  # the output folder is locked or cannot be made, a usage error
        print(f"facexpr: error: {printable_path(str(e))}", file=sys.stderr)
        return 2
    for path in report.written:
        print(printable_path(path))
    for path in report.annotated:
        print(printable_path(path))
    fps = report.frames / report.seconds if report.seconds > 0 else 0.0
    print(
        f"facexpr: {len(report.written)} written, {len(report.skipped)} skipped, "
        f"{len(report.failures)} failed; {report.frames} frames, {report.faces} faces "
        f"in {report.seconds:.1f} s ({fps:.1f} frames/s)",
        file=sys.stderr,
    )
    return report_failures(report.failures)


def cmd_info(_: argparse.Namespace) -> int:
    from facexpr.cli.info import collect_info

    for section, rows in collect_info().items():
        print(f"{section}:")
        width = max((len(k) for k in rows), default=0)
        for k, v in rows.items():
            print(f"  {k:<{width}}  {v}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    if args.dataset_command == "build":
        from facexpr.analyze.corpus import CorpusOptions, build_dataset

        options = CorpusOptions(
            stride=args.stride,
            size=args.size,
            min_face_px=args.min_face_px,
            min_score=args.min_score,
            max_yaw=args.max_yaw,
            min_sharpness=args.min_sharpness,
            pseudo_labels=not args.no_pseudo_labels,
            aligned=args.aligned,
            teacher=args.teacher,
            teacher_bundle=args.teacher_bundle,
            limit=args.limit,
        )
        report = build_dataset(
            args.inputs,
            args.out,
            options,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(report.rejected.items())) or "none"
        print(
            f"{args.out}: {report.kept} faces kept from {report.inputs} inputs; rejected {rejected}"
        )
        for inp, problem in report.failures:
            print(
                f"  failed: {problem}"
                if problem.startswith(inp)
                else f"  failed: {inp}: {problem}",
                file=sys.stderr,
            )
        return 2 if report.failures else 0
    if args.dataset_command == "teach":
        from facexpr.analyze.teach import teach_dataset

        rep = teach_dataset(
            args.dir,
            args.out,
            bundle=args.teacher_bundle,
            limit=args.limit,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
        ms = 1000 * rep.seconds / max(1, rep.samples)
        print(
            f"{args.out}: {rep.samples} samples labelled ({rep.no_face} without a teacher face), "
            f"teacher {ms:.1f} ms a face"
        )
        return 0
    if args.dataset_command == "ferplus":
        from pathlib import Path

        from facexpr.io.datasets import FerPlus, FerPlusUpstream, to_shards

        root = Path(args.root)
        if args.upstream:
            reader = FerPlusUpstream(root / "fer2013.csv", root / "fer2013new.csv", args.split)
        else:
            reader = FerPlus(root, args.split)
        out = to_shards(reader, args.out, overwrite=args.overwrite, progress=sys.stderr.isatty())
        print(f"{out}: {len(reader)} FER+ {args.split} faces")
        return 0
    if args.dataset_command in datasets_cli.COMMANDS:
        return datasets_cli.run(args)
    if args.dataset_command == "info":
        import json

        from facexpr.io.inspect import summarize

        print(json.dumps(summarize(args.dir), indent=2))
        return 0
    from facexpr.io.images import write_image
    from facexpr.io.inspect import contact_sheet

    sheet = contact_sheet(args.dir, n=args.n, caption=args.caption)
    write_image(args.out, sheet)
    print(args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "dataset":
            return cmd_dataset(args)
        if args.command == "synth":
            return synth_cli.run(args)
        if args.command == "animate":
            return animate_cli.run(args)
        if args.command == "train":
            return train_cli.run(args)
        if args.command == "similar":
            return similar_cli.run(args)
        if args.command == "evaluate":
            return evaluate_cli.run(args)
        if args.command == "plot":
            return plot_cli.run(args)
        if args.command == "avatar":
            return avatar_cli.run(args)
        if args.command == "normalize":
            return normalize_cli.run(args)
    except FacexprError as e:
        print(f"facexpr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facexpr: interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

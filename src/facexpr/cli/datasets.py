"""``facexpr dataset NAME SRC -o OUT``: converters of the AU / emotion / VA datasets' upstream
layouts (BP4D, BP4D+, DISFA, CK+, AffectNet, RAF-DB, Aff-Wild2) into facexpr shards."""

from __future__ import annotations

import argparse
import sys

from facexpr.cli._args import positive_int as _positive_int

COMMANDS = ("bp4d", "bp4d-plus", "disfa", "ckplus", "affectnet", "rafdb", "affwild2")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="the dataset's folder, in its upstream layout")
    p.add_argument("--out", "-o", required=True, metavar="OUT", help="dataset folder to write")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip missing or corrupt images (counted; exit code 2 if any) instead of stopping",
    )
    p.add_argument(
        "--samples-per-shard", type=_positive_int, default=1000, metavar="N", help="default 1000"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a dataset in OUT")


def add_parsers(dsub: argparse._SubParsersAction) -> None:
    """Adds one ``dataset`` subcommand per reader."""
    for name, variant in (("bp4d", "BP4D-Spontaneous"), ("bp4d-plus", "BP4D+")):
        p = dsub.add_parser(
            name,
            help=f"convert {variant} (AUCoding/ CSVs + frames) into the dataset format",
            description=f"Convert {variant}: AU occurrence CSVs AUCoding/AU_OCC/F001_T1.csv "
            "(1 present, 0 absent, 9 unknown -> -1, masked) with the frames F001/T1/*.jpg, the "
            "12 protocol AUs, subject ids and the 3-fold subject split (published for BP4D, "
            "seeded for BP4D+).",
        )
        _common(p)
        p.add_argument("--stride", type=_positive_int, default=1, help="every Nth coded frame")
    p = dsub.add_parser(
        "disfa",
        help="convert DISFA (per-AU intensity files + videos) into the dataset format",
        description="Convert DISFA: ActionUnit_Labels/SN001/SN001_au1.txt ('frame,intensity', "
        "0-5) with the frames of LeftVideoSN001_comp.avi (or the right camera); occurrence is "
        "intensity >= 2; the published 3-fold subject split.",
    )
    _common(p)
    p.add_argument("--camera", choices=("left", "right"), default="left")
    p.add_argument("--stride", type=_positive_int, default=1, help="every Nth labelled frame")
    p = dsub.add_parser(
        "ckplus",
        help="convert CK+ (cohn-kanade-images/, FACS/, Emotion/) into the dataset format",
        description="Convert CK+: the peak frame of each sequence with its FACS AUs and, where "
        "given, its emotion; subject ids and a seeded 10-fold subject split.",
    )
    _common(p)
    p.add_argument(
        "--neutral-first",
        action="store_true",
        help="also write each sequence's first frame, labelled neutral",
    )
    p = dsub.add_parser(
        "affectnet",
        help="convert AffectNet (manual annotation CSVs) into the dataset format",
        description="Convert AffectNet's training.csv or validation.csv with "
        "Manually_Annotated_Images/: face-box crops, expression (codes 8-10 kept without an "
        "emotion), valence and arousal (-2 = invalid, left out), 68 landmarks.",
    )
    _common(p)
    p.add_argument("--split", choices=("train", "validation"), default="validation")
    p.add_argument(
        "--classes",
        choices=("7", "8", "all"),
        default="all",
        help="7 or 8 emotion classes, or all rows (default)",
    )
    p = dsub.add_parser(
        "rafdb",
        help="convert RAF-DB basic (partition list + aligned images) into the dataset format",
        description="Convert RAF-DB basic: EmoLabel/list_patition_label.txt (labels 1-7) with "
        "Image/aligned/*_aligned.jpg.",
    )
    _common(p)
    p.add_argument("--split", choices=("train", "test", "all"), default="test")
    p = dsub.add_parser(
        "affwild2",
        help="convert Aff-Wild2 (ABAW EXPR / AU / VA annotations) into the dataset format",
        description="Convert Aff-Wild2's ABAW annotation files (Annotations/*_Challenge/"
        "Train_Set or Validation_Set) with the cropped_aligned/VIDEO/00001.jpg frames; invalid "
        "values (-1, -5) are left out; frames without an image (no face upstream) are skipped.",
    )
    _common(p)
    p.add_argument("--split", choices=("train", "validation"), default="validation")
    p.add_argument("--stride", type=_positive_int, default=1, help="every Nth frame")


def _reader(args: argparse.Namespace):
    from facexpr.io import datasets as D

    on_error = "skip" if args.skip_bad else "raise"
    c = args.dataset_command
    if c in ("bp4d", "bp4d-plus"):
        variant = "bp4d" if c == "bp4d" else "bp4d+"
        return D.BP4D(args.src, variant=variant, stride=args.stride, on_error=on_error)
    if c == "disfa":
        return D.DISFA(args.src, camera=args.camera, stride=args.stride, on_error=on_error)
    if c == "ckplus":
        return D.CKPlus(args.src, neutral_first=args.neutral_first, on_error=on_error)
    if c == "affectnet":
        classes = args.classes if args.classes == "all" else int(args.classes)
        return D.AffectNet(args.src, split=args.split, classes=classes, on_error=on_error)
    if c == "rafdb":
        split = None if args.split == "all" else args.split
        return D.RafDB(args.src, split=split, on_error=on_error)
    return D.AffWild2(args.src, split=args.split, stride=args.stride, on_error=on_error)


def run(args: argparse.Namespace) -> int:
    """Converts one dataset; returns 0, or 2 when ``--skip-bad`` skipped any image."""
    from facexpr.io.datasets import write_shards
    from facexpr.io.shards import read_manifest

    reader = _reader(args)
    out = write_shards(
        reader,
        args.out,
        samples_per_shard=args.samples_per_shard,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty(),
    )
    m = read_manifest(out)
    folds = ", ".join(f"{k}: {len(v)}" for k, v in m.splits.items())
    print(f"{out}: {m.n_samples} {reader.name} faces" + (f"; subjects per fold {folds}" if folds
                                                         else ""))  # fmt: skip
    if reader.n_skipped:
        print(
            f"facexpr: {reader.n_skipped} image(s) skipped as missing or corrupt (see the log)",
            file=sys.stderr,
        )
        return 2
    return 0

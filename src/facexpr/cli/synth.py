"""``facexpr synth``: labelled synthetic faces; ``facexpr synth identities``: an identity bank.

``facexpr synth -o DIR`` renders ICT FaceKit avatars (random identities) or, with
``--identities BANK``, captured real people, into dataset shards. ``facexpr synth identities
SOURCE... -o BANK`` captures each person of photos, videos, folders or UTKFace once into a bank
(compact entries: identity coefficients ``.npz`` + texture ``.png`` each, or ``--format glb``:
one ``.glb`` each; and ``bank.json``) that ``--identities`` renders fast; ``facexpr synth
identities BANK --export-glb KEY -o person.glb`` writes the glTF of one entry.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from facexpr.cli._args import positive_int as _positive_int

_BACKGROUNDS = ("solid", "gradient", "noise")


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {v}")
    return v


def _add_bank_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--texture-size",
        type=_positive_int,
        default=256,
        metavar="S",
        help="texture height in texels of each captured identity (S x 2S; default 256)",
    )
    p.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N", help="first N person-files only"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``synth`` command (and its ``identities`` subcommand); returns its parser."""
    sy = subparsers.add_parser(
        "synth",
        help="render labelled synthetic faces into a dataset",
        description="Render ICT FaceKit avatars with sampled identities (random, or captured "
        "real people with --identities), expressions (emotion prototypes, blends, sparse "
        "actions, neutral), pose, light, skin tone and background, and write aligned crops "
        "with exact labels (rig weights, ARKit weights, AU intensities, 68 landmarks, head "
        "pose, identity, emotion) as dataset shards. 'facexpr synth identities SOURCE -o BANK' "
        "captures real people into an identity bank first.",
    )
    sy.add_argument(
        "--avatar",
        action="append",
        default=None,
        metavar="NAME",
        help="avatar to render (repeatable; default: ict, or none with --identities)",
    )
    sy.add_argument("--n", type=_positive_int, default=1000, help="faces to render")
    sy.add_argument("--size", type=_positive_int, default=224, help="crop side in px")
    sy.add_argument("--out", "-o", default=None, metavar="DIR", help="dataset folder (required)")
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--workers", type=_positive_int, default=1)
    sy.add_argument(
        "--pair-size",
        type=_positive_int,
        default=1,
        help="K consecutive faces share one expression on K identities (triplet positives)",
    )
    sy.add_argument(
        "--identities",
        default=None,
        metavar="BANK_OR_SOURCE",
        help="render captured real people: an identity bank folder (from 'facexpr synth "
        "identities'), or photos/videos/a folder/UTKFace, captured first into --bank-dir. "
        "(A plain number N still means --n-identities N.)",
    )
    sy.add_argument(
        "--n-identities",
        type=_positive_int,
        default=None,
        metavar="N",
        help="number of distinct random ICT identities (default: n / 50, at least 1)",
    )
    sy.add_argument(
        "--bank-dir",
        default=None,
        metavar="DIR",
        help="where --identities SOURCE is captured (default: OUT_bank beside OUT); a rerun "
        "reuses what is there",
    )
    sy.add_argument(
        "--split",
        choices=("all", "train", "test"),
        default="all",
        help="render only the bank's people of this subject-exclusive split (a stable hash of "
        "the person id; default all)",
    )
    sy.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="share of the bank's people in the test split (default 0.2)",
    )
    sy.add_argument(
        "--light",
        choices=("relight", "unlit"),
        default="unlit",
        help="captured identities: 'unlit' (default) shows their texture (the photo's own "
        "light) as it is; 'relight' shades it mildly with the drawn light",
    )
    sy.add_argument(
        "--backgrounds",
        metavar="DIR",
        default=None,
        help="folder of photos (searched recursively) to use as backgrounds: each face then gets "
        "a random crop of one of them, a solid colour, a gradient or smooth noise, 1 in 4 each "
        "(without it, the last three, 1 in 3 each). Every image file in DIR must be a usable "
        "photo of 20-8000 px a side; the folder is checked before rendering starts",
    )
    sy.add_argument(
        "--samples-per-shard",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="faces per shard file (default: 1000)",
    )
    _add_bank_options(sy)
    sy_mode = sy.add_mutually_exclusive_group()
    sy_mode.add_argument("--overwrite", action="store_true", help="replace a dataset in DIR")
    sy_mode.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into DIR with the same options: its finished shards "
        "are verified and kept (the result is the same as an uninterrupted run)",
    )
    ssub = sy.add_subparsers(dest="synth_command", required=False, metavar="{identities}")
    ib = ssub.add_parser(
        "identities",
        help="capture real people into an identity bank for --identities",
        description="Capture each person of SOURCE once as a textured ICT FaceKit avatar: BANK "
        "gets per person a compact entry (KEY.npz: the fitted identity coefficients, KEY.png: "
        "the texture; ~40 KB at texture 256) or, with --format glb, a KEY.glb (what 'facexpr "
        "avatar capture' writes, ~19 MB), and bank.json (per entry: file, source person id, "
        "source file, fit residual, skin tone, notes; the failures with their reasons). "
        "SOURCE: photos, videos (one person each), folders of them (each file a person; each "
        "first-level subfolder a person with several photos), or a UTKFace root. A rerun skips "
        "what is done. Exits 2 if any input failed. 'facexpr synth identities BANK --export-glb "
        "KEY -o person.glb' writes the glTF of one entry.",
    )
    ib.add_argument("sources", nargs="+", metavar="SOURCE")
    ib.add_argument(
        "-o", "--out", dest="bank_out", required=True, metavar="BANK",
        help="the bank folder (with --export-glb: the .glb file to write)",
    )  # fmt: skip
    ib.add_argument(
        "--format",
        dest="bank_format",
        choices=("compact", "glb"),
        default=None,
        help="entry format: compact (default for a new bank: .npz + .png a person) or glb (a "
        "full .glb a person); a rerun into a bank keeps its format",
    )
    ib.add_argument(
        "--export-glb",
        metavar="KEY",
        default=None,
        help="write the glTF binary of the bank entry KEY (its file name without extension) "
        "of the bank SOURCE to -o FILE.glb, and capture nothing",
    )
    ib.add_argument("--workers", dest="bank_workers", type=_positive_int, default=1)
    ib.add_argument(
        "--retry-failed", action="store_true", help="capture the inputs that failed before again"
    )
    _add_bank_options(ib)
    return sy


def _print_bank(report, quiet: bool) -> int:
    """Prints a bank build's summary and failures; returns 2 if any input failed, else 0."""
    from facexpr.io.sources import printable_path
    from facexpr.synth.bank import load_bank

    bank = (
        load_bank(report.folder, check_files=False) if report.captured or report.skipped else None
    )
    failed = list(report.failed)
    if bank is not None:
        this = {f.key for f in failed}
        failed += [f for f in bank.failures if f.key in set(report.skipped) and f.key not in this]
    rate = 60 * len(report.captured) / report.seconds if report.seconds > 0 else 0.0
    if not quiet:
        print(
            f"facexpr: {printable_path(report.folder)}: {len(report.captured)} captured, "
            f"{len(report.skipped)} already there, {len(failed)} failed; "
            f"{report.seconds:.1f} s ({rate:.1f} persons/min)",
            file=sys.stderr,
        )
    if failed:
        print(f"facexpr: {len(failed)} input(s) failed (listed in bank.json):", file=sys.stderr)
        for f in failed:
            print(f"  {printable_path(f.source)}: {f.reason}", file=sys.stderr)
    return 2 if failed else 0


def _export_glb(args: argparse.Namespace) -> int:
    """``facexpr synth identities BANK --export-glb KEY -o FILE.glb``."""
    from facexpr.core.errors import ConfigError
    from facexpr.synth.bank import export_entry_glb, load_bank

    if len(args.sources) != 1:
        raise ConfigError("--export-glb KEY reads one bank: give one BANK folder")
    out = Path(args.bank_out)
    if out.suffix.lower() != ".glb":
        raise ConfigError(f"--export-glb writes a glTF binary: -o must end in .glb, got {out}")
    bank = load_bank(args.sources[0])
    export_entry_glb(bank, args.export_glb, out)
    print(out)
    return 0


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr synth`` or ``facexpr synth identities``; returns the exit code (errors
    propagate to ``main``: exit 2)."""
    from facexpr.core.errors import ConfigError
    from facexpr.synth.bank import BankOptions, bank_entry_format, build_bank, is_bank

    progress = sys.stderr.isatty()
    if args.synth_command == "identities":
        if args.export_glb is not None:
            return _export_glb(args)
        fmt = args.bank_format or bank_entry_format(args.bank_out) or "compact"
        report = build_bank(
            args.sources,
            args.bank_out,
            BankOptions(texture_size=args.texture_size, entry_format=fmt),
            limit=args.limit,
            workers=args.bank_workers,
            retry_failed=args.retry_failed,
            progress=progress,
        )
        print(args.bank_out)
        return _print_bank(report, args.quiet > 0)

    if args.out is None:
        raise ConfigError("synth: give the dataset folder with -o/--out DIR")
    from facexpr.synth import SynthOptions, generate

    n_identities = args.n_identities
    bank = None
    code = 0
    ident = args.identities
    if ident is not None and re.fullmatch(r"\d+", ident) and not os.path.exists(ident):
        if n_identities is not None:
            raise ConfigError("--identities N and --n-identities contradict each other")
        n_identities = int(ident)
        if n_identities < 1:
            raise ConfigError(f"--identities {ident}: the number of identities must be >= 1")
        ident = None
    if ident is not None:
        if is_bank(ident) or not os.path.exists(ident):
            bank = ident  # a missing path fails in load_bank, naming it
        else:
            bank = args.bank_dir or str(Path(args.out).with_name(Path(args.out).name + "_bank"))
            print(f"facexpr: capturing the people of {ident} into {bank}", file=sys.stderr)
            fmt = bank_entry_format(bank) or "compact"
            report = build_bank(
                [ident],
                bank,
                BankOptions(texture_size=args.texture_size, entry_format=fmt),
                limit=args.limit,
                workers=args.workers,
                progress=progress,
            )
            code = _print_bank(report, args.quiet > 0)
    elif args.split != "all":
        raise ConfigError("--split needs --identities BANK")
    avatars = tuple(args.avatar or (() if bank is not None else ("ict",)))
    options = SynthOptions(
        avatars=avatars,
        n=args.n,
        size=args.size,
        seed=args.seed,
        workers=args.workers,
        n_identities=n_identities,
        background=_BACKGROUNDS + (("photos",) if args.backgrounds else ()),
        background_dir=args.backgrounds,
        samples_per_shard=args.samples_per_shard,
        pair_size=args.pair_size,
        identity_bank=bank,
        bank_split=args.split if bank is not None else "all",
        test_fraction=args.test_fraction,
        textured_light=args.light,
    )
    try:
        manifest = generate(
            options,
            args.out,
            progress=progress,
            overwrite=args.overwrite,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        print(
            f"facexpr: interrupted; the finished shards in {args.out} are kept: rerun with "
            "--resume to continue",
            file=sys.stderr,
        )
        return 130
    print(f"{args.out}: {manifest.n_samples} faces in {len(manifest.shards)} shards")
    return code

"""Hostile folders and globs for ``facexpr analyze``: empty, unreadable, symlink loops, links to
the same file, FIFOs and devices, non-UTF-8 and 245-character names, planted links in the output
folder. Where a folder also holds a good photo, the batch must write its table once and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

from cases_media import analyze
from corpus import MEDIA, Case, CaseDirs, Run, Setup, expect_tables, good_face

_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_CUT = (MEDIA / "single_face.jpg").read_bytes()[:2000] if MEDIA.is_dir() else b"\xff\xd8\xff"
_CORRUPT = r"truncated|corrupt|broken|not a readable image|cannot (read|decode)"
_SPECIAL = r"not a (regular|plain) file|fifo|named pipe|device|special file"
_NO_MEDIA = r"no (image|video|media)|empty (folder|directory)|matches no|nothing to analy[sz]e"


def _bad(folder: Path, name: str | bytes = "cut.jpg") -> Path:
    """Writes a truncated JPEG into ``folder`` and returns its path."""
    p = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
    p.write_bytes(_CUT)
    return p


def _empty_folder(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "empty"
    d.mkdir()
    return Setup(analyze(dirs, d), d)


def _no_media_folder(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "docs"
    d.mkdir()
    (d / "readme.txt").write_text("no photos here\n")
    (d / "data.csv").write_text("a,b\n1,2\n")
    return Setup(analyze(dirs, d), d)


def _glob_no_match(dirs: CaseDirs) -> Setup:
    pattern = str(dirs.inp / "nothing_*.jpg")
    return Setup(analyze(dirs, pattern), pattern, names=r"nothing_\*\.jpg")


def _bad_glob(dirs: CaseDirs) -> Setup:
    pattern = str(dirs.inp / "[unclosed*.jpg")
    return Setup(analyze(dirs, pattern), pattern, names=r"\[unclosed")


def _glob_loop(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "loop"
    d.mkdir()
    good_face(d / "good.jpg")
    bad = _bad(d)
    os.symlink(".", d / "self")
    os.symlink("..", d / "parent")
    return Setup(analyze(dirs, str(d) + "/**/*.jpg"), bad)


def _folder_loop(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "loop"
    (d / "a").mkdir(parents=True)
    good_face(d / "good.jpg")
    bad = _bad(d / "a")
    os.symlink("..", d / "a" / "up")
    os.symlink(d, d / "a" / "abs")
    return Setup(analyze(dirs, d), bad)


def _duplicate_links(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "dups"
    d.mkdir()
    good_face(d / "a.jpg")
    os.symlink("a.jpg", d / "b.jpg")
    bad = _bad(d)
    return Setup(analyze(dirs, d / "a.jpg", d / "b.jpg", str(d) + "/*.jpg", d), bad)


def _same_file_thrice(dirs: CaseDirs) -> Setup:
    good = good_face(dirs.inp / "face.jpg")
    bad = _bad(dirs.inp)
    rel = os.path.relpath(good, dirs.out)  # the child runs in out/
    return Setup(analyze(dirs, good, rel, dirs.inp / "." / "face.jpg", bad), bad)


def _fifo_explicit(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "pipe.jpg"
    os.mkfifo(p)
    return Setup(analyze(dirs, p), p)


def _fifo_in_folder(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "withpipe"
    d.mkdir()
    good_face(d / "good.jpg")
    p = d / "pipe.mp4"
    os.mkfifo(p)
    return Setup(analyze(dirs, d), p)


def _device_in_folder(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "withdev"
    d.mkdir()
    good_face(d / "good.jpg")
    p = d / "zero.mp4"
    os.symlink("/dev/zero", p)
    return Setup(analyze(dirs, d), p)


def _non_utf8_bad(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "latin1"
    d.mkdir()
    good_face(d / "good.jpg")
    bad = _bad(d, b"bad_\xff\xfe.jpg")
    return Setup(analyze(dirs, d), bad, names=r"bad_.{1,24}\.jpg")


def _non_utf8_good(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "latin1"
    d.mkdir()
    src = MEDIA / "single_face.jpg"
    (Path(os.fsdecode(os.fsencode(d) + b"/caf\xe9.jpg"))).write_bytes(src.read_bytes())
    bad = _bad(d)
    return Setup(analyze(dirs, d), bad)


def _long_stem(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "long"
    d.mkdir()
    good_face(d / ("f" * 245 + ".jpg"))
    bad = _bad(d)
    return Setup(analyze(dirs, d), bad)


def _unreadable_subfolder(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "tree"
    sub = d / "locked"
    sub.mkdir(parents=True)
    good_face(d / "good.jpg")
    good_face(sub / "hidden_face.jpg")
    sub.chmod(0)
    return Setup(analyze(dirs, d), sub)


def _unreadable_file(dirs: CaseDirs) -> Setup:
    p = good_face(dirs.inp / "locked.jpg")
    p.chmod(0)
    return Setup(analyze(dirs, p), p)


def _planted_partial(dirs: CaseDirs) -> Setup:
    good = good_face(dirs.inp / "good.jpg")
    bad = _bad(dirs.inp)
    for name in ("good.csv.partial", "good.csv.tmp", ".good.csv.tmp", "good.csv.partial.tmp"):
        os.symlink(dirs.canary / "secret.txt", dirs.out / name)
    return Setup(analyze(dirs, good, bad), bad)


def _canary_unchanged(dirs: CaseDirs, run: Run) -> list[str]:
    text = (dirs.canary / "secret.txt").read_text()
    problems = [] if text == f"password={dirs.token}\n" else ["a planted link's target was written"]
    return problems + expect_tables(1)(dirs, run)


def _out_is_file(dirs: CaseDirs) -> Setup:
    good = good_face(dirs.inp / "good.jpg")
    out = dirs.out / "taken"
    out.write_text("not a folder\n")
    return Setup(["analyze", str(good), "-o", str(out), "--no-progress"], out)


def _webcam_missing(dirs: CaseDirs) -> Setup:
    return Setup(analyze(dirs, "webcam:97"), "webcam:97", names="webcam:97|camera 97|97")


def _deep(dirs: CaseDirs) -> Setup:
    d = dirs.inp
    for k in range(150):
        d = d / f"d{k:03d}"
    d.mkdir(parents=True)
    bad = _bad(d)
    return Setup(analyze(dirs, dirs.inp), bad)


def _many_empty(dirs: CaseDirs) -> Setup:
    d = dirs.inp / "many"
    d.mkdir()
    for k in range(500):
        (d / f"e{k:04d}.jpg").write_bytes(b"")
    return Setup(analyze(dirs, d), d / "e0000.jpg")


def _case(name: str, build, problem: str, **kw) -> Case:
    return Case(name=name, family="folders", build=build, problem=problem, **kw)


_ROOT_SKIP = "running as root: permissions do not stop reads" if _IS_ROOT else None

CASES: list[Case] = [
    _case("folders-empty", _empty_folder, _NO_MEDIA, note="the README calls an empty folder bad"),
    _case("folders-no-media", _no_media_folder, _NO_MEDIA),
    _case("folders-glob-no-match", _glob_no_match, _NO_MEDIA),
    _case("folders-glob-unclosed-bracket", _bad_glob, _NO_MEDIA + r"|pattern|not found"),
    _case(
        "folders-glob-symlink-loop",
        _glob_loop,
        _CORRUPT,
        post=expect_tables(1),
        note="'**' over a folder linking to itself and its parent: no hang, one table",
    ),
    _case("folders-walk-symlink-loop", _folder_loop, _CORRUPT, post=expect_tables(1)),
    _case(
        "folders-duplicate-links",
        _duplicate_links,
        _CORRUPT,
        post=expect_tables(1),
        note="a file, a link to it, a glob and the folder: analysed once (real path)",
    ),
    _case("folders-same-file-three-spellings", _same_file_thrice, _CORRUPT, post=expect_tables(1)),
    _case(
        "folders-fifo-explicit",
        _fifo_explicit,
        _SPECIAL,
        timeout_s=15,
        note="a FIFO named .jpg: opening it for reading blocks forever",
    ),
    _case("folders-fifo-in-folder", _fifo_in_folder, _SPECIAL, timeout_s=15, post=expect_tables(1)),
    _case("folders-device-in-folder", _device_in_folder, _SPECIAL, post=expect_tables(1)),
    _case("folders-non-utf8-bad-name", _non_utf8_bad, _CORRUPT, post=expect_tables(1)),
    _case(
        "folders-non-utf8-good-name",
        _non_utf8_good,
        _CORRUPT,
        post=expect_tables(1),
        note="the good photo's table is written although its name is not UTF-8",
    ),
    _case(
        "folders-245-char-stem",
        _long_stem,
        _CORRUPT,
        post=expect_tables(1),
        note="NAME.csv.partial would pass 255 bytes",
    ),
    _case(
        "folders-unreadable-subfolder",
        _unreadable_subfolder,
        r"permission|cannot read|unreadable",
        skip=_ROOT_SKIP,
    ),
    _case(
        "folders-unreadable-file",
        _unreadable_file,
        r"permission|cannot read|unreadable",
        skip=_ROOT_SKIP,
    ),
    _case(
        "folders-planted-partial-links",
        _planted_partial,
        _CORRUPT,
        post=_canary_unchanged,
        note="links at the output's temporary names point at the canary: never followed",
    ),
    _case("folders-out-is-a-file", _out_is_file, r"not a (folder|directory)|exists|is a file"),
    _case("folders-webcam-missing", _webcam_missing, r"camera|webcam|cannot open|not found"),
    _case("folders-150-deep", _deep, _CORRUPT),
    _case("folders-500-empty-files", _many_empty, r"empty|0 bytes", timeout_s=90),
]

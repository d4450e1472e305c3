"""Hostile inputs of ``facexpr synth``: background photo folders (empty, a PNG bomb, only broken
files, a FIFO), an output path that is a file, and links planted at the old fixed temporary names
of the dataset writer (the run must succeed without writing through them)."""

from __future__ import annotations

import importlib.util
import os

from corpus import Case, CaseDirs, Run, Setup, png_bomb

_SKIP = None if importlib.util.find_spec("moderngl") else "moderngl (the renderer) is not installed"


def synth(dirs: CaseDirs, *extra: str) -> list[str]:
    """Returns ``facexpr synth`` arguments rendering 2 small faces into ``out/ds``."""
    return ["synth", "--n", "2", "--size", "64", "--out", str(dirs.out / "ds"), *extra]


def _backgrounds(fill) -> object:
    def build(dirs: CaseDirs) -> Setup:
        d = dirs.inp / "backgrounds"
        d.mkdir()
        target = fill(d) or d
        return Setup(synth(dirs, "--backgrounds", str(d)), target)

    return build


def _bomb(d):
    p = d / "bomb.png"
    p.write_bytes(png_bomb(16_000))
    return p


def _broken(d):
    p = d / "cut.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    return p


def _fifo(d):
    p = d / "pipe.jpg"
    os.mkfifo(p)
    return p


def _out_is_file(dirs: CaseDirs) -> Setup:
    p = dirs.out / "ds"
    p.write_text("not a folder\n")
    return Setup(synth(dirs), p)


def _planted(dirs: CaseDirs) -> Setup:
    ds = dirs.out / "ds"
    ds.mkdir()
    for name in ("manifest.json.tmp", "shard-000000.tar.tmp", ".facexpr.tmp"):
        os.symlink(dirs.canary / "secret.txt", ds / name)
    return Setup(synth(dirs), ds)


def _planted_post(dirs: CaseDirs, run: Run) -> list[str]:
    text = (dirs.canary / "secret.txt").read_text()
    problems = [] if text == f"password={dirs.token}\n" else ["a planted link's target was written"]
    if not (dirs.out / "ds" / "manifest.json").is_file():
        problems.append("no manifest.json written")
    return problems


def _case(name: str, build, problem: str, **kw) -> Case:
    return Case(
        name=f"synth-{name}", family="synth", build=build, problem=problem, skip=_SKIP, **kw
    )


_NO_PHOTO = r"no (images|photos)|no readable|background"

CASES: list[Case] = [
    _case(
        "backgrounds-empty",
        _backgrounds(lambda d: None),
        _NO_PHOTO,
        note="an empty background folder is accepted today (and --backgrounds unused)",
    ),
    _case("backgrounds-png-bomb", _backgrounds(_bomb), r"too (large|big)|at most|px|bomb"),
    _case("backgrounds-only-broken", _backgrounds(_broken), _NO_PHOTO + r"|corrupt|cannot read"),
    _case(
        "backgrounds-fifo",
        _backgrounds(_fifo),
        r"not a (regular|plain) file|fifo|special",
        timeout_s=15,
    ),
    _case("out-is-a-file", _out_is_file, r"not a (folder|directory)|exists|is a file"),
    _case(
        "planted-temp-links",
        _planted,
        r".",
        expect_rc=(0,),
        post=_planted_post,
        note="links at manifest.json.tmp and shard-000000.tar.tmp point at the canary",
    ),
]

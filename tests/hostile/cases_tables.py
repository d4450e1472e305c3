"""Hostile tables for ``facexpr animate``: empty, header-only, timestamps equal, NaN or going back,
text or huge numbers in blendshape columns, the wrong delimiter, binary junk."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

from corpus import Case, CaseDirs, Run, Setup

# The 52 ARKit names, in facexpr's order (core/arkit.py), without importing facexpr here.
ARKIT = [
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
]
META = ("input", "frame", "face_id", "timestamp", "confidence", "success")
POSE = ("pitch", "yaw", "roll")
HEADER = (*META, *POSE, *ARKIT, "fit_residual")

Row = dict[str, object]


def table_rows(n: int = 10, fps: float = 25.0) -> list[Row]:
    """Returns ``n`` good rows of one face of one video (what ``analyze --blendshapes fit``
    writes)."""
    rows = []
    for i in range(n):
        row: Row = {
            "input": "clip.mp4",
            "frame": i + 1,
            "face_id": 0,
            "timestamp": round(i / fps, 4),
            "confidence": 0.9,
            "success": 1,
            "pitch": 1.0,
            "yaw": -2.0,
            "roll": 0.5,
            "fit_residual": 0.02,
        }
        row.update({name: round(0.01 * ((i + k) % 50), 3) for k, name in enumerate(ARKIT)})
        rows.append(row)
    return rows


def csv_text(rows: list[Row], header: tuple[str, ...] = HEADER, delimiter: str = ",") -> str:
    """Returns the rows as CSV text with ``header``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    return buf.getvalue()


def write_table(dirs: CaseDirs, rows: list[Row], name: str = "clip.csv", **kw) -> Path:
    """Writes a table into ``in/`` and returns its path."""
    p = dirs.inp / name
    p.write_text(csv_text(rows, **kw))
    return p


def animate(dirs: CaseDirs, table: Path | str, *extra: str) -> list[str]:
    """Returns the ``facexpr animate`` arguments writing JSON and Live Link CSV into ``out/``."""
    return [
        "animate",
        str(table),
        "--json",
        str(dirs.out / "anim.json"),
        "--livelink",
        str(dirs.out / "anim_livelink.csv"),
        *extra,
    ]


def rows_case(name: str, edit: Callable[[list[Row]], list[Row]], problem: str, **kw) -> Case:
    """A case animating the good rows changed by ``edit``."""

    def build(dirs: CaseDirs) -> Setup:
        p = write_table(dirs, edit(table_rows()))
        return Setup(animate(dirs, p), p)

    return Case(name=name, family="tables", build=build, problem=problem, **kw)


def bytes_case(name: str, filename: str, data: bytes, problem: str, **kw) -> Case:
    """A case animating a file holding ``data``."""

    def build(dirs: CaseDirs) -> Setup:
        p = dirs.inp / filename
        p.write_bytes(data)
        return Setup(animate(dirs, p), p)

    return Case(name=name, family="tables", build=build, problem=problem, **kw)


def _set(col: str, value: object, rows_at: slice = slice(None)) -> Callable[[list[Row]], list[Row]]:
    def edit(rows: list[Row]) -> list[Row]:
        for r in rows[rows_at]:
            r[col] = value
        return rows

    return edit


def _backwards(rows: list[Row]) -> list[Row]:
    for i, r in enumerate(rows):
        r["timestamp"] = 1.0 - i * 0.04
    return rows


def _two_inputs(rows: list[Row]) -> list[Row]:
    rows[5]["input"] = "other.mp4"
    return rows


def _semicolons(dirs: CaseDirs) -> Setup:
    p = write_table(dirs, table_rows(), delimiter=";")
    return Setup(animate(dirs, p), p)


def _header_only(dirs: CaseDirs) -> Setup:
    p = write_table(dirs, [])
    return Setup(animate(dirs, p), p)


def _no_blendshapes(dirs: CaseDirs) -> Setup:
    p = write_table(dirs, table_rows(), header=(*META, *POSE))
    return Setup(animate(dirs, p), p)


def _utf16(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "clip.csv"
    p.write_bytes(csv_text(table_rows()).encode("utf-16"))
    return Setup(animate(dirs, p), p)


def _dir_named_csv(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "clip.csv"
    p.mkdir()
    return Setup(animate(dirs, p), p)


def _fifo_csv(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "clip.csv"
    os.mkfifo(p)
    return Setup(animate(dirs, p), p)


def _huge_field(dirs: CaseDirs) -> Setup:
    # One 40 MB cell without a newline.
    p = dirs.inp / "clip.csv"
    with open(p, "w") as f:
        f.write(",".join(HEADER) + "\n")
        f.write("clip.mp4,1,0,0.0,0.9,1,0,0,0," + "9" * 40_000_000 + "\n")
    return Setup(animate(dirs, p), p)


_TS = r"timestamp"
_BAD_VALUE = (
    r"jawOpen|mouthSmileLeft|eyeBlinkLeft|blendshape|not a number|numeric|non-numeric|finite"
    r"|out of range|not in \[0, 1\]"
)


def _control_post(dirs: CaseDirs, run: Run) -> list[str]:
    anim = dirs.out / "anim.json"
    return [] if anim.is_file() and anim.stat().st_size > 0 else ["no anim.json written"]


CASES: list[Case] = [
    rows_case(
        "tables-control-good",
        lambda rows: rows,
        r".",
        expect_rc=(0,),
        post=_control_post,
        note="control: the base table animates (exit 0)",
    ),
    bytes_case("tables-empty-file", "clip.csv", b"", r"empty|0 bytes"),
    Case("tables-header-only", "tables", _header_only, r"no (rows|frames?|face|data)|empty"),
    rows_case(
        "tables-identical-timestamps",
        _set("timestamp", 0.5),
        _TS,
        note="ZeroDivisionError in the fps estimate",
    ),
    rows_case("tables-nan-timestamps", _set("timestamp", "nan"), _TS),
    rows_case("tables-empty-timestamps", _set("timestamp", "", slice(2, 5)), _TS),
    rows_case("tables-backwards-timestamps", _backwards, _TS),
    rows_case("tables-text-in-blendshape", _set("jawOpen", "wide open", slice(3, 4)), _BAD_VALUE),
    rows_case("tables-huge-blendshape", _set("jawOpen", "1e308"), _BAD_VALUE),
    rows_case("tables-inf-blendshape", _set("mouthSmileLeft", "inf", slice(0, 2)), _BAD_VALUE),
    rows_case("tables-nan-blendshape", _set("eyeBlinkLeft", "nan", slice(4, 6)), _BAD_VALUE),
    rows_case("tables-text-in-frame", _set("frame", "first", slice(0, 1)), r"frame"),
    rows_case("tables-text-in-face-id", _set("face_id", "bob", slice(0, 3)), r"face_id"),
    rows_case("tables-text-in-success", _set("success", "yes"), r"success"),
    rows_case("tables-two-inputs", _two_inputs, r"inputs?"),
    Case("tables-wrong-delimiter", "tables", _semicolons, r"blendshape|column|delimiter"),
    Case("tables-no-blendshape-columns", "tables", _no_blendshapes, r"blendshape"),
    Case("tables-utf16", "tables", _utf16, r"not a readable|utf|encoding|blendshape|column"),
    bytes_case(
        "tables-binary-junk",
        "clip.csv",
        bytes(range(256)) * 64,
        r"not a readable|utf|encoding|binary|table",
    ),
    bytes_case(
        "tables-jsonl-junk",
        "clip.jsonl",
        b'{"frame": 1}\n{not json\n\x00\x01\n',
        r"not a readable|json|table",
    ),
    bytes_case(
        "tables-parquet-junk",
        "clip.parquet",
        b"PAR1" + os.urandom(512) + b"PAR1",
        r"not a readable|parquet|table|corrupt",
    ),
    bytes_case(
        "tables-unknown-suffix", "clip.xlsx", b"PK\x03\x04junk", r"format|suffix|extension|csv"
    ),
    Case(
        "tables-dir-named-csv", "tables", _dir_named_csv, r"directory|folder|not a (regular )?file"
    ),
    Case(
        "tables-fifo",
        "tables",
        _fifo_csv,
        r"not a (regular|plain) file|fifo|pipe|special",
        timeout_s=15,
    ),
    Case(
        "tables-40mb-cell",
        "tables",
        _huge_field,
        _BAD_VALUE + r"|browDownLeft|not a readable|field|frame",
    ),
]

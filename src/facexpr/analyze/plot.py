"""``facexpr plot TABLE -o PNG``: AU, emotion and valence-arousal time series of one face.

The plots py-feat users know from ``Fex.plot``-style figures: one panel per group, sharing the
time axis (seconds; the row number for a table of photos), one line per column: AU intensities
(``AUxx_r``, 0-5, or py-feat's ``AUxx`` probabilities when no ``_r`` column exists), the emotion
probabilities (:data:`EMOTION_COLUMNS`, 0-1) and ``valence`` / ``arousal`` (-1 to 1). A group
with no column in the table is left out with a note; a table with none of them is an error. Of
many AUs (fitting writes 34) the :data:`MAX_AUS` that vary most are drawn, with a note, unless
the AUs are named.
Frames where the face is absent (``success == 0``) are gaps in the lines.

matplotlib is an optional extra (``pip install 'facexpr[plot]'``), imported only here, with no
pyplot state (a bare :class:`matplotlib.figure.Figure` rendered by Agg).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from facexpr.core import columns as C
from facexpr.core.errors import ConfigError, InputError, MissingDependencyError
from facexpr.io._files import write_bytes_atomic

__all__ = ["EMOTION_COLUMNS", "VA_COLUMNS", "PlotReport", "plot_table"]

EMOTION_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)  # fmt: skip
"""The emotion probability columns drawn (issue 13's 8 classes; py-feat's 7 are among them)."""
VA_COLUMNS = ("valence", "arousal")
MAX_AUS = 10
"""AU lines drawn by default (the ones with the largest standard deviation over the rows)."""
_AU_R = re.compile(r"^AU\d{2}_r$")
_AU_PROB = re.compile(r"^AU\d{2}$")


@dataclass(frozen=True, slots=True)
class PlotReport:
    """What :func:`plot_table` drew.

    Attributes:
        path: the PNG written.
        panels: the groups drawn, in order ("AUs", "emotions", "valence-arousal").
        notes: one sentence per group left out, or per choice made for the user (which face).
        rows: table rows drawn.
    """

    path: Path
    panels: tuple[str, ...]
    notes: tuple[str, ...]
    rows: int


def _pick_rows(
    df: pd.DataFrame, where: str, face_id: int | None, source: str | None
) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    if C.INPUT in df.columns and df[C.INPUT].nunique() > 1:
        inputs = list(dict.fromkeys(df[C.INPUT]))
        if source is None:
            source = inputs[0]
            notes.append(f"the table has {len(inputs)} inputs; plotted {source} (--input NAME)")
        elif source not in inputs:
            raise InputError(where, f"no input {source!r} in the table (has {inputs[:5]})")
        df = df[df[C.INPUT] == source]
    if C.FACE_ID in df.columns:
        present = df[df[C.SUCCESS] == 1] if C.SUCCESS in df.columns else df
        ids = sorted(set(present[C.FACE_ID].astype(int)))
        if face_id is None and len(ids) > 1:
            face_id = int(present[C.FACE_ID].astype(int).value_counts().idxmax())
            notes.append(f"the table has faces {ids}; plotted face {face_id} (--face-id N)")
        elif face_id is not None and face_id not in ids:
            raise InputError(where, f"no face_id {face_id} in the table (has {ids})")
        if face_id is not None:
            # Keep the no-face rows (face_id -1) of the same frames as gaps.
            df = df[(df[C.FACE_ID] == face_id) | (df[C.FACE_ID] < 0)]
    return df, notes


def plot_table(
    table: pd.DataFrame | str | Path,
    out: str | Path,
    *,
    face_id: int | None = None,
    source: str | None = None,
    aus: tuple[str, ...] | Literal["all"] | None = None,
    width: float = 10.0,
    dpi: int = 100,
) -> PlotReport:
    """Draws the AU, emotion and valence-arousal time series of one face into a PNG.

    Args:
        table: a result table (a DataFrame, or a file ``facexpr analyze`` wrote: .csv, .parquet,
            .jsonl; OpenFace's and py-feat's CSVs read too).
        out: the PNG to write (atomically).
        face_id: the face to draw; default the face in most frames.
        source: the ``input`` to draw when the table holds several; default the first.
        aus: the AUs to draw (``("AU06", "AU12")``, or their column names), "all", or None for
            the :data:`MAX_AUS` that vary most.
        width: figure width, inches (> 0).
        dpi: pixels per inch (>= 10).

    Raises:
        InputError: the table cannot be read, or has no AU, emotion or valence-arousal column,
            or lacks the asked face, input or AUs.
        MissingDependencyError: matplotlib is not installed.
        ConfigError: bad ``width`` or ``dpi``.
    """
    if not width > 0:
        raise ConfigError(f"plot width must be > 0 inches, not {width}")
    if dpi < 10:
        raise ConfigError(f"plot dpi must be >= 10, not {dpi}")
    if isinstance(table, pd.DataFrame):
        df, where = table, "<table>"
    else:
        from facexpr.io.tables import read_table

        df, where = read_table(table), str(table)
    au_cols = [c for c in df.columns if _AU_R.match(c)] or [
        c for c in df.columns if _AU_PROB.match(c)
    ]
    emotions = [c for c in EMOTION_COLUMNS if c in df.columns]
    va = [c for c in VA_COLUMNS if c in df.columns]
    groups = [("AUs", au_cols), ("emotions", emotions), ("valence-arousal", va)]
    notes = [f"no {name} columns in the table: that panel is left out" for name, cols in groups
             if not cols]  # fmt: skip
    groups = [(name, cols) for name, cols in groups if cols]
    if not groups:
        raise InputError(
            where,
            "nothing to plot: no AU (AUxx_r), emotion ("
            + ", ".join(EMOTION_COLUMNS[:3])
            + ", ...) or valence/arousal column; analyse with --blendshapes fit or mediapipe "
            "for the AU columns",
        )
    df, picked = _pick_rows(df, where, face_id, source)
    notes = picked + notes
    if len(df) == 0:
        raise InputError(where, "the table has no rows to plot")
    if groups[0][0] == "AUs":
        aus = "auto" if aus is None else aus
        groups[0] = ("AUs", _choose_aus(df, groups[0][1], aus, where, notes))
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "facexpr plot") from exc

    t = pd.to_numeric(df[C.TIMESTAMP], errors="coerce") if C.TIMESTAMP in df.columns else None
    if t is None or t.nunique() <= 1:
        x, xlabel = np.arange(1, len(df) + 1), "row"
    else:
        x, xlabel = t.to_numpy(np.float64), "time (s)"
    ok = (df[C.SUCCESS] == 1).to_numpy() if C.SUCCESS in df.columns else np.ones(len(df), bool)
    fig = Figure(figsize=(width, 2.6 * len(groups) + 0.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    limits = {"AUs": (0, 5) if au_cols and _AU_R.match(au_cols[0]) else (0, 1), "emotions": (0, 1),
              "valence-arousal": (-1, 1)}  # fmt: skip
    for ax, (name, cols) in zip(axes, groups, strict=True):
        cmap = _colours(len(cols))
        for k, c in enumerate(cols):
            y = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
            y = np.where(ok, y, np.nan)
            ax.plot(x, y, color=cmap[k], linewidth=1.2, label=c, marker="o" if len(x) < 3 else "")
        lo, hi = limits[name]
        ax.set_ylim(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7,
                  ncol=1 + len(cols) // 12, frameon=False)  # fmt: skip
        if name == "valence-arousal":
            ax.axhline(0.0, color="0.5", linewidth=0.8)
    axes[-1].set_xlabel(xlabel)
    title = Path(str(df[C.INPUT].iloc[0])).name if C.INPUT in df.columns else Path(where).name
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(out)
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError as e:
        raise InputError(path, f"cannot write the plot ({e.strerror or e})") from e
    return PlotReport(path, tuple(n for n, _ in groups), tuple(notes), len(df))


def _choose_aus(
    df: pd.DataFrame, cols: list[str], aus: tuple[str, ...] | str, where: str, notes: list[str]
) -> list[str]:
    if aus == "all":
        return cols
    if aus == "auto":
        if len(cols) <= MAX_AUS:
            return cols
        spread = df[cols].apply(pd.to_numeric, errors="coerce").std().fillna(0.0)
        keep = set(spread.sort_values(ascending=False).index[:MAX_AUS])
        notes.append(
            f"drew the {MAX_AUS} of {len(cols)} AUs that vary most (--aus all for every one)"
        )
        return [c for c in cols if c in keep]
    suffix = "_r" if cols[0].endswith("_r") else ""
    wanted = [a if a in cols else f"{a}{suffix}" for a in aus]
    missing = [a for a, c in zip(aus, wanted, strict=True) if c not in cols]
    if missing:
        has = ", ".join(cols[:8])
        raise InputError(where, f"no column for {', '.join(missing)} (has {has}, ...)")
    return wanted


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]

"""Writers and readers of result tables: CSV, Parquet and JSON Lines.

Writers stream: rows arrive in chunks (a video is written as it is analysed, so memory stays flat
in video length) into a temporary file beside the target, which is renamed onto the target only by
``close()``. An output file that exists is therefore complete; a crash leaves at most a
``.partial`` file, which the next run overwrites.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Literal

import pandas as pd

from facexpr.core.errors import ConfigError, InputError

TableFormat = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
SUFFIX: dict[str, str] = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}


def format_from_path(path: str | Path) -> TableFormat:
    """Returns the table format named by a file's suffix (.csv, .parquet/.pq, .jsonl/.ndjson)."""
    suffix = Path(path).suffix.lower()
    table = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
    table[".ndjson"] = "jsonl"
    if suffix not in table:
        raise ConfigError(f"{path}: unknown table format '{suffix}' (use .csv, .parquet or .jsonl)")
    return table[suffix]  # type: ignore[return-value]


class TableWriter:
    """Appends DataFrame chunks to a CSV, Parquet or JSON Lines file, atomically on close.

    Every chunk must have the same columns in the same order as the first one.

    Args:
        path: the final file.
        fmt: table format; by default from the suffix.
    """

    def __init__(self, path: str | Path, fmt: TableFormat | None = None) -> None:
        self.path = Path(path)
        self.fmt: TableFormat = fmt or format_from_path(self.path)
        if self.fmt not in FORMATS:
            raise ConfigError(f"unknown table format '{self.fmt}' (choose from {FORMATS})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._columns: list[str] | None = None
        self._parquet = None
        self._schema = None
        self._fh = None
        self.rows = 0
        self._closed = False

    def write(self, df: pd.DataFrame) -> None:
        """Appends the rows of ``df``; the first chunk fixes the columns (and Parquet schema)."""
        if self._closed:
            raise RuntimeError(f"{self.path}: writer is closed")
        if self._columns is None:
            self._open(df)
        elif list(df.columns) != self._columns:
            raise ValueError(f"{self.path}: chunk columns differ from the first chunk's")
        if len(df) == 0:
            return
        if self.fmt == "csv":
            df.to_csv(self._fh, header=False, index=False, lineterminator="\n")
        elif self.fmt == "jsonl":
            text = df.to_json(orient="records", lines=True, double_precision=15)
            self._fh.write(text if text.endswith("\n") else text + "\n")
        else:
            import pyarrow as pa

            self._parquet.write_table(
                pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            )
        self.rows += len(df)

    def _open(self, df: pd.DataFrame) -> None:
        self._columns = list(df.columns)
        if self.fmt == "csv":
            self._fh = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._fh.write(",".join(self._columns) + "\n")
        elif self.fmt == "jsonl":
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.Schema.from_pandas(df, preserve_index=False)
            self._parquet = pq.ParquetWriter(self._tmp, self._schema)

    def close(self) -> None:
        """Finishes the file and moves it onto the target path."""
        if self._closed:
            return
        self._closed = True
        if self._columns is None:
            raise ValueError(f"{self.path}: nothing was written (no columns)")
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        os.replace(self._tmp, self.path)

    def keep_partial(self) -> Path:
        """Flushes what was written into ``<target>.partial`` and stops, keeping that file (the
        target is not created, so a resumed run redoes the input); returns the partial path."""
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        self._fh = self._parquet = None
        self._closed = True
        return self._tmp

    def abort(self) -> None:
        """Drops the partial file; the target is left as it was."""
        if self._closed and self._fh is None and self._parquet is None and self._tmp.exists():
            return  # keep_partial() was called: the partial file is kept on purpose
        self._closed = True
        for h in (self._fh, self._parquet):
            if h is not None:
                with contextlib.suppress(Exception):
                    h.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table(df: pd.DataFrame, path: str | Path, fmt: TableFormat | None = None) -> Path:
    """Writes a whole DataFrame atomically; returns the path."""
    w = TableWriter(path, fmt)
    try:
        w.write(df)
        w.close()
    except BaseException:
        w.abort()
        raise
    return w.path


def read_table(path: str | Path, fmt: TableFormat | None = None) -> pd.DataFrame:
    """Reads a table written by :func:`write_table` (or OpenFace's CSV, whose header has spaces).

    Raises:
        InputError: the file is missing, empty or not a table of that format.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    if p.stat().st_size == 0:
        raise InputError(p, "empty file (0 bytes)")
    fmt = fmt or format_from_path(p)
    try:
        if fmt == "csv":
            return pd.read_csv(p, skipinitialspace=True)
        if fmt == "jsonl":
            return pd.read_json(p, lines=True)
        return pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise InputError(p, f"not a readable {fmt} table: {e}") from e

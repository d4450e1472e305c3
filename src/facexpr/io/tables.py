"""Writers and readers of result tables: CSV, Parquet and JSON Lines.

Writers stream: rows arrive in chunks (a video is written as it is analysed, so memory stays flat
in video length) into a temporary file beside the target, which is renamed onto the target only by
``close()``. An output file that exists is therefore complete.

The temporary file has a unique, short name created exclusively
(:func:`facexpr.io._files.unique_temp`): two runs never share one, a symlink planted at a
predictable name is never followed, and a long target name cannot push it past the file system's
255-byte limit. A process killed outright leaves a hidden ``.NAME.XXXX.facexpr-tmp`` file, which
:func:`remove_stale_temps` clears on the next run into the folder.
An interrupted writer can keep its rows under the visible name ``NAME.partial``
(:meth:`TableWriter.keep_partial`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path
from typing import Literal

import pandas as pd

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._files import commit_temp, unique_temp

log = logging.getLogger(__name__)

TableFormat = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
SUFFIX: dict[str, str] = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}
TEMP_SUFFIX = ".facexpr-tmp"
"""Suffix of a table writer's temporary files (hidden, ``.NAME.XXXXXXXX.facexpr-tmp``)."""
PARTIAL_SUFFIX = ".partial"
NAME_MAX = 255
"""Longest file name in bytes on the file systems we write to (ext4, APFS, NTFS, tmpfs)."""


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)


def check_name(path: str | Path) -> None:
    """Raises InputError naming ``path`` when its file name is longer than :data:`NAME_MAX`
    bytes, so that an output is refused before any work is done for it."""
    n = len(os.fsencode(Path(path).name))
    if n > NAME_MAX:
        raise InputError(
            path, f"output file name is {n} bytes; file systems allow {NAME_MAX} (rename the input)"
        )


def partial_path(path: str | Path) -> Path:
    """Returns ``NAME.partial`` beside ``path``, the end of NAME cut (at a character boundary)
    where the whole would pass :data:`NAME_MAX` bytes."""
    p = Path(path)
    name = os.fsencode(p.name)
    room = NAME_MAX - len(PARTIAL_SUFFIX)
    if len(name) > room:
        name = name[:room]
        while name:  # do not cut a UTF-8 character in half
            try:
                name.decode("utf-8")
                break
            except UnicodeDecodeError:
                name = name[:-1]
    return p.with_name(os.fsdecode(name) + PARTIAL_SUFFIX)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Removes the temporary files that killed table writers left in ``folder``; returns them.

    Call it only while holding the folder's :class:`~facexpr.io._files.FolderLock`: then no
    other run is writing there, so every such file is stale. Links are removed, never followed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not (e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            if stat.S_ISREG(e.stat(follow_symlinks=False).st_mode) or e.is_symlink():
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError as err:
            log.debug("%s: cannot remove a stale temp file (%s)", e.path, err)
    return removed


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
        self._tmp = unique_temp(self.path, suffix=TEMP_SUFFIX)
        self._kept: Path | None = None
        self._columns: list[str] | None = None
        self._parquet = None
        self._schema = None
        self._fh = None
        self._raw = None  # the Parquet writer's file
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
        # The file unique_temp created, opened without re-creating or following a link there.
        if self.fmt == "csv":
            self._fh = open(self._tmp, "r+", encoding="utf-8", newline="", opener=_nofollow)  # noqa: SIM115
            self._fh.write(",".join(self._columns) + "\n")
        elif self.fmt == "jsonl":
            self._fh = open(self._tmp, "r+", encoding="utf-8", opener=_nofollow)  # noqa: SIM115
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.Schema.from_pandas(df, preserve_index=False)
            self._raw = open(self._tmp, "r+b", opener=_nofollow)  # noqa: SIM115
            self._parquet = pq.ParquetWriter(self._raw, self._schema)

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
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
        self._fh = self._parquet = self._raw = None
        try:
            commit_temp(self._tmp, self.path)
        except OSError as e:
            self._tmp.unlink(missing_ok=True)
            if e.errno == errno.ENAMETOOLONG:
                raise InputError(self.path, "output file name is too long") from e
            raise InputError(self.path, f"cannot write the table ({e.strerror})") from e

    def keep_partial(self) -> Path:
        """Flushes what was written and keeps it as ``NAME.partial`` (see :func:`partial_path`),
        stopping the writer; returns that path. The target is not created, so a resumed run redoes
        the input. A file or planted link already at that name is replaced (the link itself, never
        its target)."""
        if self._kept is not None:
            return self._kept
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
            self._raw.close()
        self._fh = self._parquet = self._raw = None
        self._closed = True
        kept = partial_path(self.path)
        commit_temp(self._tmp, kept)
        self._kept = kept
        return kept

    def abort(self) -> None:
        """Drops the temporary file; the target is left as it was."""
        if self._kept is not None:
            return  # keep_partial() was called: the partial file is kept on purpose
        self._closed = True
        for h in (self._fh, self._parquet, self._raw):
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
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(p, "file not found") from None
    except OSError as e:
        raise InputError(p, f"cannot read ({e.strerror})") from e
    if stat.S_ISDIR(st.st_mode):
        raise InputError(p, "is a directory, not a table file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(p, "not a regular file (a FIFO, socket or device)")
    if st.st_size == 0:
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

"""Analysing many inputs to files: one table per input, written atomically, failures collected.

A bad input (unreadable, truncated, empty, no video stream, too small, a FIFO, an output name
too long...) never stops the batch: it is recorded with its problem and the rest goes on; every
finished output is kept. A partly damaged video keeps its table, with every frame that could be
decoded, and is still recorded as failed, saying what was lost. With ``resume=True`` inputs whose
table already exists are skipped: tables are renamed into place only when complete, so an
existing table is a finished one.

One run at a time writes into an output folder: the batch holds a
:class:`~facexpr.io._files.FolderLock` on the table folder (and the annotation folder), so a
second run into it is refused with an :class:`InputError` before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facexpr.analyze.analyzer import Analyzer
from facexpr.analyze.table import frames_to_dataframe
from facexpr.core.errors import ConfigError, DamagedInputError, FacexprError, InputError
from facexpr.io import MediaSource, VideoWriter, probe_video, write_image
from facexpr.io._files import FolderLock
from facexpr.io.annotate import draw_frame
from facexpr.io.sources import printable_path, scan_inputs
from facexpr.io.tables import (
    SUFFIX,
    TableFormat,
    TableWriter,
    check_name,
    partial_path,
    remove_stale_temps,
)

log = logging.getLogger(__name__)

_IMAGE_OUT = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_VIDEO_OUT = (".mp4", ".mov", ".mkv", ".avi", ".webm")
_CHUNK_FRAMES = 256  # rows are flushed to disk every this many frames


@dataclass(frozen=True, slots=True)
class Failure:
    """One input that could not be analysed (or only in part).

    Attributes:
        input: the input as named (or the file found in a folder), printable.
        problem: what is wrong; may start with the input's path.
    """

    input: str
    problem: str

    @property
    def line(self) -> str:
        """Returns one line naming the file and the problem."""
        return (
            self.problem if self.problem.startswith(self.input) else f"{self.input}: {self.problem}"
        )


def _failure(name: str | Path, problem: str) -> Failure:
    return Failure(printable_path(name), printable_path(problem))


@dataclass
class BatchReport:
    """What a batch did.

    Attributes:
        written: output tables, in input order (a damaged video's too: it is also in failures).
        annotated: annotated media written.
        skipped: inputs skipped by ``resume`` because their table exists.
        failures: inputs that failed, with the problem.
        frames: frames analysed.
        faces: faces found.
        seconds: wall time.
    """

    written: list[Path] = field(default_factory=list)
    annotated: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def output_names(sources: Sequence[MediaSource]) -> list[str]:
    """Returns a unique, filesystem-safe base name per source.

    The file's stem; where stems clash, the stem and extension (``clip_mp4``, ``clip_jpg``);
    where those clash too (same name in different folders), the parent folders are prepended.
    """
    paths = [Path(s.path) for s in sources]
    stems = [_safe(p.stem) for p in paths]
    names: list[str] = []
    for p, stem in zip(paths, stems, strict=True):
        name = stem
        if stems.count(stem) > 1:
            name = _safe(f"{p.stem}_{p.suffix.lstrip('.')}")
            same = [q for q in paths if q.stem == p.stem and q.suffix == p.suffix]
            if len(same) > 1:
                name = _safe(f"{p.resolve().parent.name}__{name}")
        base, k = name, 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "input"


def resolve_outputs(
    sources: Sequence[MediaSource], out: str | Path, fmt: TableFormat | None
) -> tuple[list[Path], TableFormat]:
    """Returns the table path of each source and the format.

    ``out`` is a folder (one table per input, named after it), or, for a single input, a file whose
    suffix gives the format.
    """
    out = Path(out)
    suffix_fmt = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}.get(out.suffix.lower())
    if suffix_fmt is not None and not out.is_dir():
        if len(sources) != 1:
            raise ConfigError(
                f"{out}: a single output file was given for {len(sources)} inputs; "
                "give a folder instead"
            )
        if fmt is not None and fmt != suffix_fmt:
            raise ConfigError(f"{out}: suffix says {suffix_fmt} but --format says {fmt}")
        return [out], suffix_fmt  # type: ignore[list-item]
    fmt = fmt or "csv"
    return [out / (n + SUFFIX[fmt]) for n in output_names(sources)], fmt


def _annotation_path(annotate: Path, source: MediaSource, name: str, n_sources: int) -> Path:
    suffix = annotate.suffix.lower()
    if n_sources == 1 and suffix in (*_IMAGE_OUT, *_VIDEO_OUT):
        return annotate
    ext = ".jpg" if source.kind == "image" else ".mp4"
    return annotate / f"{name}_annotated{ext}"


def run_batch(
    analyzer: Analyzer,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    fmt: TableFormat | None = None,
    annotate: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    on_input: Callable[[MediaSource, int, int], None] | None = None,
) -> BatchReport:
    """Analyses every input and writes one table per input.

    Args:
        analyzer: configured analyzer.
        inputs: files, folders, globs or webcam specs.
        out: output folder, or a table file for a single input.
        fmt: "csv", "parquet" or "jsonl" (default: by the suffix of ``out``, else csv).
        annotate: folder (or, for one input, an image/video file) for annotated media.
        resume: skip inputs whose table already exists.
        progress: show tqdm bars on stderr.
        on_input: called as (source, position, total) before each input.

    Returns:
        what was written, skipped and failed.
    """
    t0 = time.perf_counter()
    report = BatchReport()
    scan = scan_inputs(inputs)  # a bad input fails alone; the other inputs still run
    for e in scan.problems:
        report.failures.append(_failure(e.path if e.path is not None else "", e.problem))
        log.info("failed: %s", e)  # reported once, in the summary
    sources = scan.sources
    if not sources:
        report.seconds = time.perf_counter() - t0
        return report
    tables, fmt = resolve_outputs(sources, out, fmt)
    names = [t.stem for t in tables]
    ann_root = Path(annotate) if annotate is not None else None
    anns: list[Path | None] = [
        None if ann_root is None else _annotation_path(ann_root, src, names[i], len(sources))
        for i, src in enumerate(sources)
    ]
    with contextlib.ExitStack() as locks:
        for folder in _output_folders([*tables, *(a for a in anns if a is not None)]):
            try:
                locks.enter_context(FolderLock(folder, "facexpr analyze"))
            except OSError as e:  # FolderLock names its own problems as InputError
                raise InputError(folder, f"cannot create the output folder ({e.strerror})") from e
            for stale in remove_stale_temps(folder):  # left by a killed run; we hold the lock
                log.info("removed %s, left by an interrupted run", stale)
        _run_sources(analyzer, sources, tables, anns, fmt, resume, progress, on_input, report)
    report.seconds = time.perf_counter() - t0
    return report


def _output_folders(paths: Sequence[Path]) -> list[Path]:
    """Returns the distinct folders (by real path) the outputs go into, in order."""
    out: list[Path] = []
    seen: set[str] = set()
    for p in paths:
        key = os.path.realpath(p.parent)
        if key not in seen:
            seen.add(key)
            out.append(p.parent)
    return out


def _run_sources(
    analyzer: Analyzer,
    sources: Sequence[MediaSource],
    tables: Sequence[Path],
    anns: Sequence[Path | None],
    fmt: TableFormat,
    resume: bool,
    progress: bool,
    on_input: Callable[[MediaSource, int, int], None] | None,
    report: BatchReport,
) -> None:
    for i, (src, table, ann) in enumerate(zip(sources, tables, anns, strict=True)):
        if on_input is not None:
            on_input(src, i, len(sources))
        if resume and table.exists():
            report.skipped.append(src.path)
            log.info("%s: output %s exists, skipped (--resume)", src.path, table)
            continue
        try:
            check_name(table)
            if ann is not None:
                check_name(ann)
        except InputError as e:
            report.failures.append(_failure(src.path, f"cannot write its output: {e}"))
            continue
        try:
            done = _analyze_one(analyzer, src, table, fmt, ann, progress)
        except _StreamStopped as stop:  # Ctrl-C on a webcam: keep its table, end the batch
            _record(report, table, stop.outcome)
            report.failures.extend(_failure(src.path, p) for p in stop.outcome.problems)
            break
        except FacexprError as e:
            report.failures.append(_failure(src.path, str(e)))
            log.info("failed: %s", e)  # reported once, in the summary
            continue
        except Exception as e:  # a bug or a library error: record it, keep the batch going
            report.failures.append(_failure(src.path, f"{type(e).__name__}: {e}"))
            log.exception("%s: unexpected error", src.path)
            continue
        _record(report, table, done)
        for problem in done.problems:
            report.failures.append(_failure(src.path, problem))
            log.info("failed: %s: %s", src.path, problem)


def _record(report: BatchReport, table: Path, done: _Outcome) -> None:
    report.written.append(table)
    if done.annotated is not None:
        report.annotated.append(done.annotated)
    report.frames += done.frames
    report.faces += done.faces


@dataclass
class _Outcome:
    """What analysing one input wrote, and what went wrong without losing its table."""

    frames: int = 0
    faces: int = 0
    annotated: Path | None = None
    problems: list[str] = field(default_factory=list)


class _Annotation:
    """The annotated output of one input; a failure here is recorded, never loses the table."""

    def __init__(self, path: Path | None, analyzer: Analyzer, src: MediaSource) -> None:
        self.path = path
        self.analyzer = analyzer
        self.src = src
        self.video: VideoWriter | None = None
        self.image_written = False
        self.problem: str | None = None

    def add(self, image, result) -> None:
        if self.path is None or self.problem is not None:
            return
        try:
            drawn = draw_frame(image, result)
            if self.src.kind == "image":
                write_image(self.path, drawn)
                self.image_written = True
                return
            if self.video is None:
                o = self.analyzer.options
                fps = probe_video(self.src.path).fps if self.src.kind == "video" else 30.0
                if o.every > 1:
                    fps /= o.every
                if o.fps is not None:
                    fps = min(fps, o.fps)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.video = VideoWriter(self.path, fps=fps or 30.0)
            self.video.write(drawn)
        except (FacexprError, OSError, ValueError) as e:
            self.problem = f"annotation {self.path} not written ({e}); the table was written"
            log.warning("%s: %s", self.src.path, self.problem)
            self.abort()

    def close(self) -> Path | None:
        """Finishes the annotated file; returns its path, or None if none was written."""
        if self.path is None or self.problem is not None:
            return None
        if self.video is None:
            return self.path if self.image_written else None
        if self.video is not None:
            try:
                self.video.close()
            except (FacexprError, OSError, ValueError) as e:
                self.problem = f"annotation {self.path} not written ({e}); the table was written"
                return None
        return self.path

    def abort(self) -> None:
        if self.video is not None:
            self.video.abort()


def _analyze_one(
    analyzer: Analyzer,
    src: MediaSource,
    table: Path,
    fmt: TableFormat,
    ann: Path | None,
    progress: bool,
) -> _Outcome:
    groups = analyzer.options.groups
    writer = TableWriter(table, fmt)
    annotation = _Annotation(ann, analyzer, src)
    done = _Outcome()
    bar = None
    chunk = []
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=analyzer.estimate_frames(src),
                desc=printable_path(Path(src.path).name[-30:]),
                unit="frame",
                leave=False,
            )
        stopped = False
        frames = analyzer.iter_results(src)
        while True:
            try:
                frame, result = next(frames)
            except StopIteration:
                break
            except DamagedInputError as e:
                # Raised after the last decodable frame: the table keeps all of them, and the
                # input is reported as failed with what was lost.
                done.problems.append(str(e))
                break
            except KeyboardInterrupt:
                if src.kind != "webcam":
                    if chunk:
                        writer.write(frames_to_dataframe(chunk, groups))
                    if writer.rows:
                        kept = writer.keep_partial()
                        log.warning("%s: interrupted; rows so far kept in %s", src.path, kept)
                    raise
                stopped = True  # a live stream ends when the user stops it: finish its table
                break
            chunk.append(result)
            done.frames += 1
            done.faces += len(result.faces)
            annotation.add(frame.image, result)
            if len(chunk) >= _CHUNK_FRAMES:
                writer.write(frames_to_dataframe(chunk, groups))
                chunk = []
            if bar is not None:
                bar.update(1)
        if chunk or writer.rows == 0:
            writer.write(frames_to_dataframe(chunk, groups))
        writer.close()
        # The rows an earlier, interrupted run kept are superseded by the finished table.
        with contextlib.suppress(FileNotFoundError):
            partial_path(table).unlink()
        done.annotated = annotation.close()
        if annotation.problem is not None:
            done.problems.append(annotation.problem)
        if stopped:
            raise _StreamStopped(done)
    except _StreamStopped:
        raise
    except BaseException:
        writer.abort()
        annotation.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return done


class _StreamStopped(Exception):
    """A live stream was stopped by the user; its table is complete."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(outcome.frames, outcome.faces)
        self.outcome = outcome


def failures_table(report: BatchReport) -> pd.DataFrame:
    """Returns the failures as a two-column DataFrame (input, problem)."""
    return pd.DataFrame(
        [(f.input, f.problem) for f in report.failures], columns=["input", "problem"]
    )

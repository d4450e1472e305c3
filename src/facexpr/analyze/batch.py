"""Analysing many inputs to files: one table per input, written atomically, failures collected.

A bad input (unreadable, truncated, empty, no video stream, too small...) never stops the batch:
it is recorded with its problem and the rest goes on; every finished output is kept. With
``resume=True`` inputs whose table already exists are skipped: tables are renamed into place only
when complete, so an existing table is a finished one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facexpr.analyze.analyzer import Analyzer
from facexpr.analyze.table import frames_to_dataframe
from facexpr.core.errors import ConfigError, FacexprError
from facexpr.io import MediaSource, VideoWriter, expand_inputs, probe_video, write_image
from facexpr.io.annotate import draw_frame
from facexpr.io.tables import SUFFIX, TableFormat, TableWriter

log = logging.getLogger(__name__)

_IMAGE_OUT = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_VIDEO_OUT = (".mp4", ".mov", ".mkv", ".avi", ".webm")
_CHUNK_FRAMES = 256  # rows are flushed to disk every this many frames


@dataclass(frozen=True, slots=True)
class Failure:
    """One input that could not be analysed."""

    input: str
    problem: str


@dataclass
class BatchReport:
    """What a batch did.

    Attributes:
        written: output tables, in input order.
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
    sources: list[MediaSource] = []
    for inp in inputs:  # a missing path fails alone; the other inputs still run
        try:
            sources.extend(s for s in expand_inputs([inp]) if s not in sources)
        except FacexprError as e:
            report.failures.append(Failure(str(inp), str(e)))
            log.info("failed: %s", e)  # reported once, in the summary
    if not sources:
        report.seconds = time.perf_counter() - t0
        return report
    tables, fmt = resolve_outputs(sources, out, fmt)
    names = [t.stem for t in tables]
    ann_root = Path(annotate) if annotate is not None else None
    for i, (src, table) in enumerate(zip(sources, tables, strict=True)):
        if on_input is not None:
            on_input(src, i, len(sources))
        if resume and table.exists():
            report.skipped.append(src.path)
            log.info("%s: output %s exists, skipped (--resume)", src.path, table)
            continue
        ann = None
        if ann_root is not None:
            ann = _annotation_path(ann_root, src, names[i], len(sources))
        try:
            frames, faces = _analyze_one(analyzer, src, table, fmt, ann, progress)
        except _StreamStopped as stop:  # Ctrl-C on a webcam: keep its table, end the batch
            report.written.append(table)
            if ann is not None:
                report.annotated.append(ann)
            report.frames += stop.frames
            report.faces += stop.faces
            break
        except FacexprError as e:
            report.failures.append(Failure(src.path, str(e)))
            log.info("failed: %s", e)  # reported once, in the summary
            continue
        except Exception as e:  # a bug or a library error: record it, keep the batch going
            report.failures.append(Failure(src.path, f"{type(e).__name__}: {e}"))
            log.exception("%s: unexpected error", src.path)
            continue
        report.written.append(table)
        if ann is not None:
            report.annotated.append(ann)
        report.frames += frames
        report.faces += faces
    report.seconds = time.perf_counter() - t0
    return report


def _analyze_one(
    analyzer: Analyzer,
    src: MediaSource,
    table: Path,
    fmt: TableFormat,
    ann: Path | None,
    progress: bool,
) -> tuple[int, int]:
    groups = analyzer.options.groups
    writer = TableWriter(table, fmt)
    video_out = None
    bar = None
    n_frames = n_faces = 0
    chunk = []
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=analyzer.estimate_frames(src),
                desc=Path(src.path).name[-30:],
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
            except KeyboardInterrupt:
                if src.kind != "webcam":
                    if chunk:
                        writer.write(frames_to_dataframe(chunk, groups))
                    kept = writer.keep_partial()
                    log.warning("%s: interrupted; rows so far kept in %s", src.path, kept)
                    raise
                stopped = True  # a live stream ends when the user stops it: finish its table
                break
            chunk.append(result)
            n_frames += 1
            n_faces += len(result.faces)
            if ann is not None:
                drawn = draw_frame(frame.image, result)
                if src.kind == "image":
                    write_image(ann, drawn)
                else:
                    if video_out is None:
                        fps = probe_video(src.path).fps if src.kind == "video" else 30.0
                        if analyzer.options.every > 1:
                            fps /= analyzer.options.every
                        if analyzer.options.fps is not None:
                            fps = min(fps, analyzer.options.fps)
                        ann.parent.mkdir(parents=True, exist_ok=True)
                        video_out = VideoWriter(ann, fps=fps or 30.0)
                    video_out.write(drawn)
            if len(chunk) >= _CHUNK_FRAMES:
                writer.write(frames_to_dataframe(chunk, groups))
                chunk = []
            if bar is not None:
                bar.update(1)
        if chunk or writer.rows == 0:
            writer.write(frames_to_dataframe(chunk, groups))
        writer.close()
        if video_out is not None:
            video_out.close()
        if stopped:
            raise _StreamStopped(n_frames, n_faces)
    except _StreamStopped:
        raise
    except BaseException:
        writer.abort()
        if video_out is not None:
            video_out.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return n_frames, n_faces


class _StreamStopped(Exception):
    """A live stream was stopped by the user; its table is complete."""

    def __init__(self, frames: int, faces: int) -> None:
        super().__init__(frames, faces)
        self.frames, self.faces = frames, faces


def failures_table(report: BatchReport) -> pd.DataFrame:
    """Returns the failures as a two-column DataFrame (input, problem)."""
    return pd.DataFrame(
        [(f.input, f.problem) for f in report.failures], columns=["input", "problem"]
    )

"""Turning what a user names (files, folders, globs, webcams) into a list of media sources, and
any source into frames."""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
from PIL import Image, UnidentifiedImageError

from facexpr.core.errors import InputError
from facexpr.core.types import Frame
from facexpr.io.images import IMAGE_EXTENSIONS, read_image
from facexpr.io.video import VIDEO_EXTENSIONS, VideoReader, check_frame_options
from facexpr.io.webcam import WebcamReader

log = logging.getLogger(__name__)

MediaKind = Literal["image", "video", "webcam"]

_WEBCAM = re.compile(r"^(?:webcam:)?(\d+)$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class MediaSource:
    """One input to analyse.

    Attributes:
        path: file path, or ``webcam:N`` for a camera.
        kind: ``"image"``, ``"video"`` or ``"webcam"``.
    """

    path: str
    kind: MediaKind

    @property
    def webcam_index(self) -> int:
        """Returns N of ``webcam:N``; only for webcam sources."""
        if self.kind != "webcam":
            raise InputError(self.path, "is not a webcam source")
        return int(self.path.split(":", 1)[1])


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Returns a sort key that orders ``img2`` before ``img10`` (case-insensitive otherwise)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _DIGITS.split(text)
        if part
    )


def _kind_by_name(path: Path) -> MediaKind | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def _sniff(path: Path) -> MediaKind:
    """Returns the kind of a file with an unknown suffix by looking at its content."""
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) <= 1:
                return "image"
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        pass  # not an image Pillow knows; try FFmpeg next
    try:
        with av.open(str(path)) as c:
            if c.streams.video:
                return "video"
            if c.streams.audio:
                raise InputError(path, "has no video stream (audio only?)")
    except av.FFmpegError:
        pass  # reported below with the file's name
    raise InputError(path, "neither an image Pillow reads nor a video FFmpeg reads")


def _walk(folder: Path, recursive: bool) -> list[Path]:
    found: list[tuple[tuple, Path]] = []
    for root, dirs, files in os.walk(folder):
        # Hidden folders are pruned in place so os.walk never enters them.
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for name in files:
            if name.startswith("."):
                continue
            p = Path(root) / name
            if _kind_by_name(p) is not None:
                found.append((natural_key(p.relative_to(folder).as_posix()), p))
    found.sort(key=lambda kp: kp[0])
    return [p for _, p in found]


def expand_inputs(inputs: Sequence[str | Path], *, recursive: bool = True) -> list[MediaSource]:
    """Returns the media sources named by ``inputs``, in order, without duplicates.

    Each input may be a file (its kind by suffix; an unknown suffix is sniffed from the content),
    a folder (media files by suffix, hidden files and folders skipped, natural order of the
    relative path; sub-folders too when ``recursive``), a glob pattern (``*``, ``?``, ``[...]``,
    ``**``; matches filtered like a folder's files, sorted naturally), or a webcam (``webcam:0``
    or a bare ``0``). A path named twice is kept at its first place.

    Raises:
        InputError: a path does not exist, a glob matches no media file, or an explicit file
            is neither an image nor a video.
    """
    out: list[MediaSource] = []
    seen: set[str] = set()

    def add(path: str, kind: MediaKind) -> None:
        key = path if kind == "webcam" else os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            out.append(MediaSource(path=path, kind=kind))

    for item in inputs:
        text = str(item)
        m = _WEBCAM.match(text)
        p = Path(text).expanduser()
        if m and not p.exists():
            add(f"webcam:{int(m.group(1))}", "webcam")
            continue
        if p.is_dir():
            for f in _walk(p, recursive):
                add(str(f), _kind_by_name(f))  # type: ignore[arg-type]  # _walk filters by kind
            continue
        if p.is_file():
            add(str(p), _kind_by_name(p) or _sniff(p))
            continue
        if _GLOB_CHARS.search(text):
            matches = [
                Path(s)
                for s in glob.glob(os.path.expanduser(text), recursive=True)
                if os.path.isfile(s)
            ]
            media = [q for q in matches if _kind_by_name(q) is not None]
            if not media:
                raise InputError(text, "the pattern matches no image or video file")
            for q in sorted(media, key=lambda q: natural_key(q.as_posix())):
                add(str(q), _kind_by_name(q))  # type: ignore[arg-type]
            continue
        raise InputError(text, "file not found")
    return out


def iter_frames(
    source: MediaSource,
    *,
    every: int = 1,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Iterator[Frame]:
    """Yields the frames of a source: one for a photo (index 0, timestamp 0.0), the decoded frames
    of a video (see :class:`~facexpr.io.video.VideoReader` for the options), or live camera
    frames for a webcam (``every`` and ``fps`` thin them too; ``start``/``end`` are seconds since
    the camera opened).

    Raises:
        ConfigError: invalid options.
        InputError: the source cannot be read.
    """
    if source.kind == "image":
        yield Frame(image=read_image(source.path), index=0, timestamp=0.0, source=source.path)
    elif source.kind == "video":
        with VideoReader(source.path, every=every, fps=fps, start=start, end=end) as reader:
            yield from reader
    elif source.kind == "webcam":
        check_frame_options(every, fps, start, end)
        last = float("-inf")
        with WebcamReader(source.webcam_index) as cam:
            for n, frame in enumerate(cam):
                if start is not None and frame.timestamp < start:
                    continue
                if end is not None and frame.timestamp > end:
                    break
                if n % every:
                    continue
                if fps is not None:
                    if frame.timestamp - last < 1.0 / fps:
                        continue
                    last = frame.timestamp
                yield frame
    else:
        raise InputError(source.path, f"unknown source kind {source.kind!r}")

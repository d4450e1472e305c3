"""Turning what a user names (files, folders, globs, webcams) into a list of media sources, and
any source into frames."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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


def printable_path(path: str | Path) -> str:
    """Returns ``path`` as text that encodes to UTF-8: bytes of a non-UTF-8 file name (which
    Python holds as surrogates) are written as ``\\xNN`` escapes, e.g. ``caf\\xe9.jpg``."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name byte gives
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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


_FTYP_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


def kind_by_content(path: str | Path) -> MediaKind | None:
    """Returns the kind a file's first bytes (its magic number) say, or None if they say nothing.

    Only a regular file should be given (a FIFO would be opened; it is opened non-blocking, so
    never waits). GIF counts as video, as for the suffix (:data:`VIDEO_EXTENSIONS`).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            head = os.read(fd, 192)
        finally:
            os.close(fd)
    except OSError:
        return None  # reported by the reader, with the file's name
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*")):
        return "image"
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00" and len(head) >= 26:
        return "image"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _FTYP_IMAGE_BRANDS else "video"
    if head[4:8] in (b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
        return "video"
    if head.startswith((b"GIF87a", b"GIF89a", b"\x1a\x45\xdf\xa3", b"FLV", b"OggS")):
        return "video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video"
    if head.startswith(
        (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")
    ):
        return "video"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "video"  # MPEG transport stream: a sync byte every 188 bytes
    return None


def _sniff(path: Path) -> MediaKind:
    """Returns the kind of a file with an unknown suffix and magic by trying the decoders."""
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


def _file_kind(path: Path, st: os.stat_result) -> MediaKind:
    """Returns the kind of a regular file: by content, else by suffix, else by decoding."""
    if st.st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    kind = kind_by_content(path)
    by_name = _kind_by_name(path)
    if kind is not None and by_name is not None and kind != by_name:
        log.info("%s: named like %s but its content is %s; read as %s", path, by_name, kind, kind)
    return kind or by_name or _sniff(path)


def _not_regular(path: Path, st: os.stat_result) -> InputError:
    kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket or device"
    return InputError(path, f"not a regular file ({kind})")


def _walk(folder: Path, max_depth: int | None, problems: list[InputError]) -> list[Path]:
    """Returns the files under ``folder`` (hidden ones and hidden folders skipped), at most
    ``max_depth`` folders down (None: any depth).

    Linked folders are followed, but each real folder is entered once: a link back up the tree
    (a loop) is never followed again. A folder that cannot be read is added to ``problems``.
    Non-regular entries (FIFOs, sockets, devices) are returned too; callers report them.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(folder, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            st = os.stat(d)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                log.debug("%s: a folder already walked (a link loop?); not entered again", d)
                continue
            seen.add(key)
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(
                InputError(
                    d, f"cannot read this folder ({e.strerror}); its files were not analysed"
                )
            )
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # links followed
            except OSError:
                is_dir = False
            if is_dir:
                if max_depth is None or depth < max_depth:
                    subdirs.append((Path(e.path), depth + 1))
            else:
                found.append(Path(e.path))
        stack.extend(reversed(subdirs))
    return found


def _is_magic(part: str) -> bool:
    return _GLOB_CHARS.search(part) is not None


def _match_parts(pat: Sequence[str], parts: Sequence[str]) -> bool:
    """Matches path components against glob components (``**`` = any number of folders)."""
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(_match_parts(pat[1:], parts[k:]) for k in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and _match_parts(pat[1:], parts[1:])
    )


def _glob(pattern: str, problems: list[InputError]) -> list[Path]:
    """Returns the files matching ``pattern`` (``*``, ``?``, ``[...]``, ``**``), hidden ones
    skipped, walking like :func:`_walk` (so a link loop cannot make it hang)."""
    parts = Path(pattern).parts
    k = next((n for n, part in enumerate(parts) if _is_magic(part)), len(parts))
    root = Path(*parts[:k]) if k else Path(".")
    rest = parts[k:]
    if not rest:
        return [root] if root.exists() else []
    depth = None if "**" in rest else len(rest) - 1
    if not root.is_dir():
        return []
    hits = []
    for f in _walk(root, depth, problems):
        rel = f.relative_to(root).parts
        if _match_parts(rest, rel):
            hits.append(root / Path(*rel) if k else Path(*rel))
    return hits


@dataclass
class InputScan:
    """What a list of inputs names.

    Attributes:
        sources: media sources in order, each real file once.
        problems: inputs (or parts of them) that cannot be used: missing, not media, unreadable
            folders, empty folders, FIFOs ...; the other inputs are still in ``sources``.
    """

    sources: list[MediaSource] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)


def scan_inputs(inputs: Sequence[str | Path], *, recursive: bool = True) -> InputScan:
    """Returns the media sources named by ``inputs`` and the problems found, without raising for
    a bad input (see :func:`expand_inputs` for what each input may be)."""
    scan = InputScan()
    seen: set[str] = set()

    def add(path: Path | str, kind: MediaKind) -> None:
        text = str(path)
        key = text if kind == "webcam" else os.path.normcase(os.path.realpath(text))
        if key not in seen:
            seen.add(key)
            scan.sources.append(MediaSource(path=text, kind=kind))

    def add_file(p: Path, named: bool) -> None:
        """Adds a file found (or ``named`` by the user), reporting what is not media."""
        try:
            st = os.stat(p)
        except OSError as e:
            why = "a broken symbolic link" if os.path.islink(p) else f"cannot read ({e.strerror})"
            scan.problems.append(InputError(p, why))
            return
        if not stat.S_ISREG(st.st_mode):
            scan.problems.append(_not_regular(p, st))
            return
        try:
            kind = _file_kind(p, st) if named or st.st_size else _kind_by_name(p)
        except InputError as e:
            scan.problems.append(e)
            return
        add(p, kind)  # type: ignore[arg-type]  # an empty file found in a folder: its reader says so

    for item in inputs:
        text = os.fsdecode(item) if isinstance(item, bytes) else str(item)
        m = _WEBCAM.match(text)
        p = Path(text).expanduser()
        try:
            st = os.stat(p)
        except OSError:
            st = None
        if st is None:
            if m:
                add(f"webcam:{int(m.group(1))}", "webcam")
            elif _GLOB_CHARS.search(text):
                problems: list[InputError] = []
                media = [q for q in _glob(os.path.expanduser(text), problems) if _kind_by_name(q)]
                scan.problems.extend(problems)
                if not media and not problems:
                    scan.problems.append(
                        InputError(text, "the pattern matches no image or video file")
                    )
                for q in sorted(media, key=lambda q: natural_key(q.as_posix())):
                    add_file(q, named=False)
            elif os.path.islink(p):
                scan.problems.append(InputError(text, "a broken symbolic link"))
            else:
                scan.problems.append(InputError(text, "file not found"))
        elif stat.S_ISDIR(st.st_mode):
            problems = []
            files = [f for f in _walk(p, None if recursive else 0, problems) if _kind_by_name(f)]
            scan.problems.extend(problems)
            if not files and not problems:
                scan.problems.append(InputError(p, "the folder has no image or video file"))
            files.sort(key=lambda f: natural_key(f.relative_to(p).as_posix()))
            for f in files:
                add_file(f, named=False)
        elif stat.S_ISREG(st.st_mode):
            add_file(p, named=True)
        else:
            scan.problems.append(_not_regular(p, st))
    return scan


def expand_inputs(inputs: Sequence[str | Path], *, recursive: bool = True) -> list[MediaSource]:
    """Returns the media sources named by ``inputs``, in order, without duplicates.

    Each input may be a file (its kind from its content's magic number, else its suffix, else by
    trying the decoders), a folder (media files by suffix, hidden files and folders skipped,
    natural order of the relative path; sub-folders too when ``recursive``; linked folders are
    followed but never in a loop), a glob pattern (``*``, ``?``, ``[...]``, ``**``; matches
    filtered like a folder's files, sorted naturally), or a webcam (``webcam:0`` or a bare
    ``0``). A file reached twice (named twice, through links, or ``a/./b``) is kept at its first
    place: duplicates are found by real path.

    Raises:
        InputError: the first problem :func:`scan_inputs` finds: a path does not exist, a glob
            matches no media file, a folder has none or cannot be read, a file is not a regular
            file, or an explicit file is neither an image nor a video.
    """
    scan = scan_inputs(inputs, recursive=recursive)
    if scan.problems:
        raise scan.problems[0]
    return scan.sources


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

"""Reading video frames and audio with PyAV (FFmpeg), and writing RGB frames to a video file.

:class:`VideoReader` streams frames one at a time (memory does not grow with the video's length),
with real presentation timestamps from the stream, so variable-frame-rate files are timed right.

Truncated files: when FFmpeg raises while decoding, the reader stops with an :class:`InputError`
naming the frame and time. When a file simply ends early (FFmpeg often decodes what is there
without error), the reader ends normally, sets ``reader.truncated`` and logs a warning naming how
many of the expected frames were decoded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.core.types import Frame
from facexpr.io._files import make_public

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}
)
"""Lower-case suffixes (with the dot) of the video files we pick up from folders.

``.gif`` counts as video: FFmpeg decodes every frame of an animation with its real delays, while
:func:`facexpr.io.images.read_image` would keep only the first.
"""

# A file counts as ended early when fewer than this share of the frames its header promises decode.
_TRUNCATED_SHARE = 0.98


def is_video_path(path: str | Path) -> bool:
    """Returns True if the file name has one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the container says about a video (and its first frame's rotation).

    Attributes:
        path: the file.
        width: coded frame width in px (before rotation).
        height: coded frame height in px (before rotation).
        fps: average frame rate, frames/s (0.0 if unknown).
        n_frames: frame count from the header, or estimated as duration * fps; 0 if unknown.
        duration: seconds (0.0 if unknown).
        codec: video codec name (``h264``, ``mpeg4`` ...).
        has_audio: whether the file has an audio stream.
        audio_sample_rate: Hz of the first audio stream, 0 if none.
        rotation: degrees counter-clockwise the frames must be turned to show upright (0, 90,
            180, 270), from the display matrix; the reader applies it.
    """

    path: str
    width: int
    height: int
    fps: float
    n_frames: int
    duration: float
    codec: str
    has_audio: bool
    audio_sample_rate: int
    rotation: int = 0


def check_frame_options(
    every: int, fps: float | None, start: float | None, end: float | None
) -> None:
    """Raises ConfigError unless every >= 1, fps > 0, start >= 0 and end > start (when given)."""
    if int(every) != every or every < 1:
        raise ConfigError(f"every must be an integer >= 1, got {every}")
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be > 0 frames/s, got {fps}")
    if start is not None and not start >= 0:
        raise ConfigError(f"start must be >= 0 s, got {start}")
    if end is not None and start is not None and not end > start:
        raise ConfigError(f"end ({end} s) must be after start ({start} s)")
    if end is not None and not end > 0:
        raise ConfigError(f"end must be > 0 s, got {end}")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")


def _open(path: Path) -> av.container.InputContainer:
    _check_file(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise InputError(path, f"not a video FFmpeg can read: {e}") from e


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream (audio only?)")
    return container.streams.video[0]


def _rotation_steps(degrees: float | int | None) -> int:
    """Returns how many quarter turns counter-clockwise (0-3) a display rotation asks for."""
    if not degrees:
        return 0
    return round(float(degrees) / 90.0) % 4


def probe_video(path: str | Path) -> VideoInfo:
    """Returns the stream facts of the video at ``path``; decodes at most its first frame.

    Raises:
        InputError: missing, empty, not a media file, or no video stream.
    """
    p = Path(path)
    container = _open(p)
    try:
        vs = _video_stream(container, p)
        cc = vs.codec_context
        fps = float(vs.average_rate) if vs.average_rate else float(vs.guessed_rate or 0)
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        n = int(vs.frames or 0)
        if n == 0 and duration > 0 and fps > 0:
            n = round(duration * fps)
        rotation = 0
        try:
            for frame in container.decode(vs):
                rotation = _rotation_steps(frame.rotation) * 90
                break
        except av.FFmpegError:
            pass  # the reader reports decode errors with their frame; probing only reads headers
        audio = container.streams.audio
        return VideoInfo(
            path=str(p),
            width=int(cc.width),
            height=int(cc.height),
            fps=fps,
            n_frames=n,
            duration=duration,
            codec=str(cc.name),
            has_audio=bool(audio),
            audio_sample_rate=int(audio[0].codec_context.sample_rate or 0) if audio else 0,
            rotation=rotation,
        )
    finally:
        container.close()


class VideoReader:
    """Iterates over the frames of a video file as :class:`Frame` (RGB uint8), streaming.

    ``Frame.index`` is the 0-based decode index of the frame in the stream; ``Frame.timestamp`` is
    its presentation time in seconds from the stream's start (pts * time_base - start_time). When
    ``start`` is given the reader seeks, so it cannot count the frames before it: their index is
    then ``round(timestamp * fps)`` (kept increasing), exact for constant-frame-rate files and an
    estimate for variable ones.

    Args:
        path: the video file.
        every: keep every Nth decoded frame (1 keeps all).
        fps: keep frames whose timestamps are at least 1/fps s after the last kept one (time-based,
            right for variable frame rate); combined with ``every``, both apply.
        start: seconds; frames before it are skipped (the reader seeks to the keyframe before).
        end: seconds; decoding stops after the last frame with timestamp <= end.

    Attributes:
        info: :class:`VideoInfo` of the file.
        frames_decoded: frames decoded so far (kept or not).
        truncated: True once a pass ended with clearly fewer frames than the header promised.

    Raises:
        ConfigError: every < 1, fps <= 0, start < 0, or end <= start.
        InputError: see :func:`probe_video`; while iterating, a decoding failure names its frame.

    Example:
        >>> with VideoReader("clip.mp4", fps=5) as reader:  # doctest: +SKIP
        ...     for frame in reader:
        ...         print(frame.index, frame.timestamp, frame.image.shape)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        every: int = 1,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        check_frame_options(every, fps, start, end)
        self.path = Path(path)
        self.every = int(every)
        self.fps = fps
        self.start = start
        self.end = end
        self.info = probe_video(self.path)
        self.frames_decoded = 0
        self.truncated = False
        self._container: av.container.InputContainer | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file if a pass is open; safe to call twice."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __len__(self) -> int:
        """Returns the expected number of frames this reader yields (from the header; an estimate
        for variable frame rate or when the header has no count)."""
        info = self.info
        n = info.n_frames
        if info.fps > 0:
            t0 = self.start or 0.0
            t1 = min(self.end, info.duration) if self.end is not None else info.duration
            if self.start is not None or self.end is not None:
                n = max(0, round((t1 - t0) * info.fps))
            if self.fps is not None and self.fps < info.fps:
                n = int(np.ceil(n * self.fps / info.fps))
        return int(np.ceil(n / self.every))

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        container = _open(self.path)
        self._container = container
        vs = _video_stream(container, self.path)
        vs.thread_type = "AUTO"
        tb = float(vs.time_base) if vs.time_base is not None else 0.0
        t_start = (vs.start_time or 0) * tb
        fps_avg = self.info.fps
        dt_fallback = 1.0 / fps_avg if fps_avg > 0 else 0.0
        source = str(self.path)
        seeking = self.start is not None and self.start > 0 and vs.time_base is not None
        if seeking:
            target = int((self.start + t_start) / vs.time_base)
            try:
                container.seek(target, stream=vs, backward=True, any_frame=False)
            except av.FFmpegError as e:
                # Unseekable (some GIFs, raw streams): decode from the start and drop frames.
                log.debug("%s: cannot seek (%s); decoding from the start", self.path, e)
                seeking = False
        min_gap = None if self.fps is None else 1.0 / self.fps - 1e-6
        end = self.end
        start = self.start if self.start else None
        every = self.every
        eps = 1e-6  # timestamps are pts * time_base; keep a frame at exactly `start`
        self.frames_decoded = 0
        self.truncated = False
        i = -1  # decode index
        n_seen = 0  # frames at or after start (for `every`)
        last_kept = -np.inf
        t = 0.0
        decoded = container.decode(vs)
        try:
            while True:
                try:
                    frame = next(decoded)
                except StopIteration:
                    break
                except av.FFmpegError as e:
                    raise InputError(
                        self.path,
                        f"decoding failed at frame {i + 1} ({t + dt_fallback:.2f} s): {e}",
                    ) from e
                self.frames_decoded += 1
                if frame.pts is not None:
                    t = frame.pts * tb - t_start
                elif self.frames_decoded > 1:
                    t += dt_fallback  # no timestamp: assume the average rate
                if seeking:
                    i = max(i + 1, round(t * fps_avg)) if fps_avg > 0 else i + 1
                else:
                    i += 1
                if start is not None and t < start - eps:
                    continue
                if end is not None and t > end + eps:
                    break
                n_seen += 1
                if (n_seen - 1) % every:
                    continue
                if min_gap is not None:
                    if t - last_kept < min_gap:
                        continue
                    last_kept = t
                image = frame.to_ndarray(format="rgb24")
                k = _rotation_steps(frame.rotation)
                if k:
                    image = np.ascontiguousarray(np.rot90(image, k))
                yield Frame(image=image, index=i, timestamp=float(t), source=source)
        finally:
            self.close()
        expected = self.info.n_frames
        if (
            start is None
            and end is None
            and expected > 0
            and self.frames_decoded < _TRUNCATED_SHARE * expected
        ):
            self.truncated = True
            log.warning(
                "%s: decoded %d of the %d frames the header promises; the file looks truncated",
                self.path,
                self.frames_decoded,
                expected,
            )


def read_audio(
    path: str | Path, *, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Returns the first audio stream of a media file as float32 samples and their rate.

    Args:
        path: any file FFmpeg reads (video or audio).
        sample_rate: resample to this many Hz; None keeps the file's rate.
        mono: mix the channels down to one.

    Returns:
        (samples, rate): samples (C, N) float32 in [-1, 1], C = 1 when ``mono``; rate in Hz.

    Raises:
        ConfigError: sample_rate <= 0.
        InputError: missing, empty, unreadable, no audio stream, or decoding failed.
    """
    if sample_rate is not None and not sample_rate > 0:
        raise ConfigError(f"sample_rate must be > 0 Hz, got {sample_rate}")
    p = Path(path)
    container = _open(p)
    try:
        if not container.streams.audio:
            raise InputError(p, "has no audio stream")
        ast = container.streams.audio[0]
        ast.thread_type = "AUTO"
        rate = int(sample_rate or ast.codec_context.sample_rate)
        layout = "mono" if mono else ast.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(ast):
                frame.pts = None  # let the resampler count samples; timestamps are not needed
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as e:
            n = sum(c.shape[1] for c in chunks)
            raise InputError(p, f"audio decoding failed at {n / rate:.2f} s: {e}") from e
    finally:
        container.close()
    n_ch = 1 if mono else len(ast.codec_context.layout.channels)
    if not chunks:
        return np.zeros((n_ch, 0), np.float32), rate
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples, rate


def _pick_codec(codec: str | None) -> str:
    if codec is not None:
        if codec not in av.codecs_available:
            raise ConfigError(f"video codec {codec!r} is not in this FFmpeg build")
        return codec
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class VideoWriter:
    """Writes RGB frames to a video file with PyAV; the file appears whole on :meth:`close`.

    Frames go to a temp file in the destination folder, renamed over ``path`` on a clean close and
    deleted if the ``with`` block raises. Odd sizes are padded (edge pixels repeated) to even,
    which yuv420p needs.

    Args:
        path: destination; the suffix picks the container (.mp4, .mkv, .avi, .mov ...).
        fps: frames/s.
        codec: FFmpeg encoder; default libx264 (yuv420p) when present, else mpeg4.
        crf: libx264 constant rate factor (0-51, lower is better); for other encoders it sets the
            bit rate (0.3 bits per pixel at crf 18, halved every 6 steps).

    Raises:
        ConfigError: fps <= 0, crf out of range, unknown codec, or frames of differing sizes.
    """

    def __init__(
        self, path: str | Path, fps: float, *, codec: str | None = None, crf: int = 18
    ) -> None:
        if not fps > 0:
            raise ConfigError(f"fps must be > 0 frames/s, got {fps}")
        if not 0 <= crf <= 51:
            raise ConfigError(f"crf must be in [0, 51], got {crf}")
        self.path = Path(path)
        self.fps = float(fps)
        self.codec = _pick_codec(codec)
        self.crf = int(crf)
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self._rate = Fraction(self.fps).limit_denominator(1001)
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except av.FFmpegError as e:
            self._tmp.unlink(missing_ok=True)
            raise ConfigError(f"{self.path}: cannot write a video with this suffix: {e}") from e
        self._stream: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (h, w) of the input frames
        self._closed = False

    def _open_stream(self, h: int, w: int) -> av.VideoStream:
        s = self._container.add_stream(self.codec, rate=self._rate)
        s.width = w + (w % 2)
        s.height = h + (h % 2)
        s.pix_fmt = "yuv420p"
        s.thread_type = "AUTO"
        s.codec_context.time_base = 1 / self._rate
        if self.codec == "libx264":
            s.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:
            # No CRF here: a bit rate that halves every 6 crf steps, as x264's quality roughly does.
            bits_per_px = 0.3 * 2.0 ** ((18 - self.crf) / 6)
            s.bit_rate = int(bits_per_px * s.width * s.height * self.fps)
        return s

    def write(self, rgb: np.ndarray) -> None:
        """Appends one frame, (H, W, 3) uint8 RGB; every frame must have the first one's size."""
        a = np.asarray(rgb)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ConfigError(
                f"{self.path}: frames must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}"
            )
        h, w = a.shape[:2]
        if self._stream is None:
            self._size = (h, w)
            self._stream = self._open_stream(h, w)
        elif self._size != (h, w):
            raise ConfigError(
                f"{self.path}: frame {self.frames_written} is {w}x{h} px but the video is "
                f"{self._size[1]}x{self._size[0]} px"
            )
        if h % 2 or w % 2:
            a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self._rate
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flushes the encoder and moves the finished file to ``path``; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream is not None:
                self._container.mux(self._stream.encode(None))
            self._container.close()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        if self._stream is None:
            self._tmp.unlink(missing_ok=True)
            raise ConfigError(f"{self.path}: no frames were written, so no video was made")
        make_public(self._tmp)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Closes without keeping anything: the temp file is removed, ``path`` is untouched."""
        if self._closed:
            return
        self._closed = True
        # The partial file is deleted below either way.
        with contextlib.suppress(av.FFmpegError):
            self._container.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

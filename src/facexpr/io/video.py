"""Reading video frames and audio with PyAV (FFmpeg), and writing RGB frames to a video file.

:class:`VideoReader` streams frames one at a time (memory does not grow with the video's length),
with real presentation timestamps from the stream, so variable-frame-rate files are timed right.

Damaged files: the reader keeps every frame it can decode. A packet FFmpeg cannot decode is
skipped and decoding goes on with the next one; a container that breaks off, or a file that ends
with clearly fewer frames than its header promises, ends the pass. In each case the reader first
yields every decodable frame, then raises :class:`~facexpr.core.errors.DamagedInputError` saying
what was lost, so a caller keeps what was decoded and still reports the file as failed. A video
without one decodable frame raises :class:`InputError`. Videos, like photos, must be 20 to 8000 px
on a side.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from facexpr.core.errors import ConfigError, DamagedInputError, InputError
from facexpr.core.types import Frame
from facexpr.io._files import commit_temp, unique_temp
from facexpr.io.images import MAX_SIDE, MIN_SIDE, check_input_file

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}
)
"""Lower-case suffixes (with the dot) of the video files we pick up from folders.

``.gif`` counts as video: FFmpeg decodes every frame of an animation with its real delays, while
:func:`facexpr.io.images.read_image` would keep only the first.
"""

# A file counts as ended early when fewer than this share of the frames its header counts decode,
# or, without a count, when the frames decoded cover less than this share of its duration.
_TRUNCATED_SHARE = 0.98
_TRUNCATED_SHARE_TIME = 0.9


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
        n_frames_exact: whether ``n_frames`` is the header's count (False: an estimate).
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
    n_frames_exact: bool = False


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
    check_input_file(path, "video")


def _open(path: Path) -> av.container.InputContainer:
    _check_file(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise InputError(path, f"not a video FFmpeg can read: {e}") from e


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """Returns the first video stream, its decoder bounded to MAX_SIDE**2 pixels a frame."""
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream (audio only?)")
    vs = container.streams.video[0]
    # FFmpeg refuses to allocate a picture over max_pixels, so a stream whose frames are larger
    # than its header said cannot make the decoder allocate more than one MAX_SIDE x MAX_SIDE frame.
    vs.codec_context.options = {**vs.codec_context.options, "max_pixels": str(MAX_SIDE * MAX_SIDE)}
    return vs


def _check_sides(path: Path, w: int, h: int) -> None:
    if max(w, h) > MAX_SIDE:
        raise InputError(path, f"video is {w}x{h} px; at most {MAX_SIDE} px per side is supported")
    if min(w, h) < MIN_SIDE:
        raise InputError(path, f"video is {w}x{h} px; at least {MIN_SIDE} px per side is needed")


def _rotation_steps(degrees: float | int | None) -> int:
    """Returns how many quarter turns counter-clockwise (0-3) a display rotation asks for."""
    if not degrees:
        return 0
    return round(float(degrees) / 90.0) % 4


def probe_video(path: str | Path) -> VideoInfo:
    """Returns the stream facts of the video at ``path``; decodes at most its first frame.

    Raises:
        InputError: missing, empty, not a media file, no video stream, or a side < 20 or > 8000
            px (checked from the stream header before any frame is decoded).
    """
    p = Path(path)
    container = _open(p)
    try:
        vs = _video_stream(container, p)
        cc = vs.codec_context
        if cc.width > 0 and cc.height > 0:
            _check_sides(p, int(cc.width), int(cc.height))
        fps = float(vs.average_rate) if vs.average_rate else float(vs.guessed_rate or 0)
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        n = int(vs.frames or 0)
        exact = n > 0
        if n == 0 and duration > 0 and fps > 0:
            n = round(duration * fps)
        rotation = 0
        try:
            for frame in container.decode(vs):
                rotation = _rotation_steps(frame.rotation) * 90
                break
        except av.FFmpegError:
            pass  # the reader reports decode errors with their frame; probing only reads headers
        _check_sides(p, int(cc.width), int(cc.height))
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
            n_frames_exact=exact,
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
        damage: after a pass, what was lost (None when nothing was), as in the error's message.

    Raises:
        ConfigError: every < 1, fps <= 0, start < 0, or end <= start.
        InputError: see :func:`probe_video`; a frame side < 20 or > 8000 px; while iterating, no
            decodable frame at all.
        DamagedInputError: after the last decodable frame of a pass, when packets could not be
            decoded, the container broke off, or the file ended early; it says what was lost.

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
        self.info = probe_video(self.path)  # checks the sides
        self.frames_decoded = 0
        self.truncated = False
        self.damage: str | None = None
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
        self.damage = None
        i = -1  # decode index
        n_seen = 0  # frames at or after start (for `every`)
        last_kept = -np.inf
        t = 0.0
        bad_packets = 0  # packets FFmpeg could not decode (skipped)
        bad_first: float | None = None  # time of the first one, s
        bad_size = 0  # frames outside the size limits (dropped)
        disordered = 0  # frames out of time order after damage (dropped)
        broken: str | None = None  # why the container broke off
        packets = container.demux(vs)
        pending: list[av.VideoFrame] = []
        kept = 0
        try:
            while True:
                if not pending:
                    try:
                        packet = next(packets)
                    except StopIteration:
                        break
                    except av.FFmpegError as e:
                        broken = f"the file breaks off after {t:.2f} s ({e})"
                        break
                    try:
                        pending = list(packet.decode())
                    except av.FFmpegError as e:
                        bad_packets += 1
                        if bad_first is None:
                            pt = packet.pts if packet.pts is not None else packet.dts
                            bad_first = pt * tb - t_start if pt is not None else t
                        log.debug("%s: skipped an undecodable packet (%s)", self.path, e)
                        continue
                    pending.reverse()  # popped from the end, in decode order
                    continue
                frame = pending.pop()
                self.frames_decoded += 1
                if frame.pts is not None:
                    t = frame.pts * tb - t_start
                elif self.frames_decoded > 1:
                    t += dt_fallback  # no timestamp: assume the average rate
                if seeking or bad_packets:
                    # Frames before a seek, or in skipped packets, were not counted: index by time.
                    j = round(t * fps_avg) if fps_avg > 0 else i + 1
                    if bad_packets and j <= i:
                        disordered += 1  # a stale frame the damaged decoder put out late
                        continue
                    i = max(i + 1, j)
                else:
                    i += 1
                if start is not None and t < start - eps:
                    continue
                if end is not None and t > end + eps:
                    break
                if (
                    min(frame.width, frame.height) < MIN_SIDE
                    or max(frame.width, frame.height) > MAX_SIDE
                ):
                    bad_size += 1  # e.g. a resolution switch to a huge size: never decoded
                    continue
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
                kept += 1
                yield Frame(image=image, index=i, timestamp=float(t), source=source)
        finally:
            self.close()
        if self.frames_decoded == 0 and start is None:
            why = f": {broken}" if broken else ""
            if bad_packets:
                why = f": none of its {bad_packets} packet(s) could be decoded"
            raise InputError(self.path, f"has no decodable video frame{why}")
        lost: list[str] = []
        if bad_packets:
            lost.append(
                f"{bad_packets} packet(s) could not be decoded and were skipped "
                f"(the first at {bad_first:.2f} s)"
            )
        if disordered:
            lost.append(f"{disordered} frame(s) out of time order after the damage were dropped")
        if broken:
            lost.append(broken)
        if bad_size:
            lost.append(
                f"{bad_size} frame(s) outside {MIN_SIDE}-{MAX_SIDE} px per side were dropped"
            )
        info = self.info
        if start is None and end is None:
            if info.n_frames_exact and self.frames_decoded < _TRUNCATED_SHARE * info.n_frames:
                self.truncated = True
                lost.append(
                    f"decoded {self.frames_decoded} of the {info.n_frames} frames the header "
                    "promises" + ("" if bad_packets or broken else "; the file looks truncated")
                )
            elif (
                not info.n_frames_exact and t + dt_fallback < _TRUNCATED_SHARE_TIME * info.duration
            ):
                # No frame count in the header (an estimate would be wrong for variable rates):
                # compare the time decoded with the duration.
                self.truncated = True
                lost.append(
                    f"decoded {t + dt_fallback:.2f} s of the {info.duration:.2f} s the header "
                    "promises" + ("" if bad_packets or broken else "; the file looks truncated")
                )
        if lost:
            self.damage = "; ".join(lost)
            log.warning("%s: %s", self.path, self.damage)
            raise DamagedInputError(
                self.path, f"damaged video, every decodable frame was kept: {self.damage}", kept
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


def _fit_into(a: np.ndarray, h0: int, w0: int) -> np.ndarray:
    """Returns ``a`` scaled to fit (h0, w0) with its aspect ratio kept, centred on black."""
    h, w = a.shape[:2]
    k = min(h0 / h, w0 / w)
    nh, nw = max(1, min(h0, round(h * k))), max(1, min(w0, round(w * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(a), (nw, nh), interpolation=interp)
    out = np.zeros((h0, w0, 3), np.uint8)
    y, x = (h0 - nh) // 2, (w0 - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


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
        ConfigError: fps <= 0, crf out of range, unknown codec, or a frame that is not
            (H, W, 3) uint8.

    A frame of another size than the first (a source whose resolution changes midway) is scaled
    to fit the first one's size, keeping its aspect ratio, centred on black; a warning says so
    once.
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
        # Unique, exclusive and short; the suffix tells FFmpeg the container.
        self._tmp = unique_temp(self.path, suffix=self.path.suffix or ".mp4")
        self._rate = Fraction(self.fps).limit_denominator(1001)
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except av.FFmpegError as e:
            self._tmp.unlink(missing_ok=True)
            raise ConfigError(f"{self.path}: cannot write a video with this suffix: {e}") from e
        self._stream: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (h, w) of the input frames
        self._rescaled = False
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
        """Appends one frame, (H, W, 3) uint8 RGB; scaled to fit the first frame's size if it has
        another."""
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
            if not self._rescaled:
                log.warning(
                    "%s: frame %d is %dx%d px but the video is %dx%d px; frames of other sizes "
                    "are scaled to fit",
                    self.path,
                    self.frames_written,
                    w,
                    h,
                    self._size[1],
                    self._size[0],
                )
                self._rescaled = True
            a = _fit_into(a, *self._size)
            h, w = self._size
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
        commit_temp(self._tmp, self.path)

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

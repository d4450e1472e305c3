"""Tests of facexpr.io.video on the real clips and on small files made here."""

from __future__ import annotations

import logging
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, DamagedInputError, InputError
from facexpr.io.video import (
    VideoInfo,
    VideoReader,
    VideoWriter,
    is_video_path,
    probe_video,
    read_audio,
)

WOLF = "WolfgangLanger_Pexels.mp4"
SINGLE = "single_face.mp4"


def test_probe_real_clip(media_dir: Path) -> None:
    info = probe_video(media_dir / WOLF)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(24000 / 1001)
    assert info.n_frames == 472
    assert info.duration == pytest.approx(19.7, abs=0.05)
    assert info.codec == "h264"
    assert info.has_audio
    assert info.audio_sample_rate == 48000
    assert info.rotation == 0


@pytest.mark.parametrize(("name", "n"), [(SINGLE, 72), (WOLF, 472)])
def test_frame_count(media_dir: Path, name: str, n: int) -> None:
    reader = VideoReader(media_dir / name)
    count = 0
    for frame in reader:
        assert frame.image.shape == (360, 640, 3)
        assert frame.image.dtype == np.uint8
        assert frame.index == count
        count += 1
    assert count == n
    assert reader.frames_decoded == n
    assert not reader.truncated
    assert len(reader) == n


def test_timestamps_cfr(media_dir: Path) -> None:
    fps = 30.0
    frames = list(VideoReader(media_dir / SINGLE))
    t = np.array([f.timestamp for f in frames])
    idx = np.array([f.index for f in frames])
    assert (np.diff(t) > 0).all()
    assert np.abs(t - idx / fps).max() < 0.5 / fps
    assert frames[0].source == str(media_dir / SINGLE)


def test_every(media_dir: Path) -> None:
    reader = VideoReader(media_dir / SINGLE, every=5)
    frames = list(reader)
    assert len(frames) == 15  # ceil(72 / 5)
    assert [f.index for f in frames[:3]] == [0, 5, 10]
    assert reader.frames_decoded == 72
    assert len(reader) == 15


def test_fps_spacing(media_dir: Path) -> None:
    frames = list(VideoReader(media_dir / WOLF, fps=5))
    t = np.array([f.timestamp for f in frames])
    assert (np.diff(t) >= 0.2 - 1e-6).all()
    assert np.diff(t).max() < 0.2 + 1.5 / 23.976  # never skips more than needed
    assert len(frames) == pytest.approx(19.7 * 5, abs=6)


def test_start_end_window(media_dir: Path) -> None:
    frame_dt = 1001 / 24000
    frames = list(VideoReader(media_dir / WOLF, start=5.0, end=7.0))
    t = np.array([f.timestamp for f in frames])
    assert t[0] >= 5.0
    assert t[0] - 5.0 < frame_dt
    assert t[-1] <= 7.0
    assert 7.0 - t[-1] < frame_dt
    assert len(frames) == pytest.approx(2.0 / frame_dt, abs=1)
    # CFR: the index of a frame after a seek matches its place in a full decode
    assert frames[0].index == round(t[0] / frame_dt)


def test_start_matches_full_decode(media_dir: Path) -> None:
    full = {f.index: f.image for f in VideoReader(media_dir / SINGLE)}
    part = list(VideoReader(media_dir / SINGLE, start=1.0))
    assert part[0].index == 30
    assert len(part) == 42
    assert np.array_equal(part[0].image, full[30])


def test_reader_can_iterate_twice_and_close(media_dir: Path) -> None:
    with VideoReader(media_dir / SINGLE, every=24) as reader:
        a = [f.index for f in reader]
        b = [f.index for f in reader]
    assert a == b == [0, 24, 48]


def test_truncated_moov_at_end_is_input_error(media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / SINGLE).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(InputError, match="not a video FFmpeg can read"):
        VideoReader(tmp_path / "cut.mp4")


def test_truncated_moov_at_start_keeps_every_frame_then_fails(
    media_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = (media_dir / WOLF).read_bytes()  # this one has its index at the start
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    reader = VideoReader(tmp_path / "cut.mp4")
    seen: list[int] = []
    with (
        caplog.at_level(logging.WARNING, logger="facexpr.io.video"),
        pytest.raises(
            DamagedInputError, match=r"cut\.mp4: damaged video, every decodable frame"
        ) as info,
    ):
        seen.extend(f.index for f in reader)
    n = len(seen)
    assert 0 < n < 472 * 0.5
    assert seen == list(range(n))
    assert reader.truncated
    assert reader.frames_decoded == n
    assert info.value.kept == n
    assert f"decoded {n} of the 472 frames the header promises; the file looks truncated" in str(
        info.value
    )
    assert f"decoded {n} of the 472 frames" in caplog.text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        VideoReader(tmp_path / "nope.mp4")


def test_zero_byte_mp4(tmp_path: Path) -> None:
    (tmp_path / "z.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        probe_video(tmp_path / "z.mp4")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        probe_video(tmp_path)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    (tmp_path / "t.mp4").write_text("hello, not a video\n" * 10)
    with pytest.raises(InputError, match="not a video FFmpeg can read"):
        VideoReader(tmp_path / "t.mp4")


def test_audio_only_has_no_video_stream(audio_only: Path) -> None:
    with pytest.raises(InputError, match=r"has no video stream \(audio only\?\)"):
        VideoReader(audio_only)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "every must be an integer >= 1"),
        ({"every": 1.5}, "every must be an integer >= 1"),
        ({"fps": 0}, "fps must be > 0"),
        ({"start": -1.0}, "start must be >= 0"),
        ({"start": 3.0, "end": 2.0}, r"end \(2.0 s\) must be after start \(3.0 s\)"),
        ({"end": 0.0}, "end must be > 0"),
    ],
)
def test_invalid_options(media_dir: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VideoReader(media_dir / SINGLE, **kwargs)


def test_read_audio_real_clip(media_dir: Path) -> None:
    samples, rate = read_audio(media_dir / WOLF)
    assert rate == 48000
    assert samples.dtype == np.float32
    assert samples.shape[0] == 1
    assert samples.shape[1] / rate == pytest.approx(19.7, abs=0.05)
    stereo, _ = read_audio(media_dir / WOLF, mono=False)
    assert stereo.shape[0] == 2


def test_read_audio_resamples(media_dir: Path) -> None:
    samples, rate = read_audio(media_dir / SINGLE, sample_rate=16000)
    assert rate == 16000
    assert samples.shape[1] / rate == pytest.approx(2.4, abs=0.05)
    assert 0 < np.abs(samples).max() <= 1.0  # this clip's track is not silent


def test_read_audio_sine(audio_only: Path) -> None:
    samples, rate = read_audio(audio_only)
    assert rate == 16000
    assert samples.shape == (1, 4800)
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.01)
    spectrum = np.abs(np.fft.rfft(samples[0]))
    assert np.fft.rfftfreq(4800, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=5)


def test_read_audio_errors(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "silent.mp4", 10) as w:
        w.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="has no audio stream"):
        read_audio(tmp_path / "silent.mp4")
    with pytest.raises(ConfigError, match="sample_rate must be > 0 Hz"):
        read_audio(tmp_path / "silent.mp4", sample_rate=0)


def test_writer_round_trip_odd_size(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    rng = np.random.default_rng(0)
    levels = rng.integers(20, 235, 10)
    with VideoWriter(path, 12.5) as w:
        for v in levels:
            w.write(np.full((51, 77, 3), v, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    info = probe_video(path)
    assert (info.width, info.height) == (78, 52)
    assert info.fps == pytest.approx(12.5)
    frames = list(VideoReader(path))
    assert len(frames) == 10
    assert frames[0].image.shape == (52, 78, 3)
    means = np.array([f.image.mean() for f in frames])
    assert np.abs(means - levels).max() < 3
    t = np.array([f.timestamp for f in frames])
    assert np.allclose(t, np.arange(10) / 12.5, atol=1e-3)


def test_writer_mpeg4_codec(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "m.avi", 10, codec="mpeg4") as w:
        for _ in range(3):
            w.write(np.full((32, 48, 3), 100, np.uint8))
    info = probe_video(tmp_path / "m.avi")
    assert info.codec == "mpeg4"
    assert len(list(VideoReader(tmp_path / "m.avi"))) == 3


def test_writer_removes_temp_on_exception(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"

    def write_then_fail() -> None:
        with VideoWriter(path, 10) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert list(tmp_path.iterdir()) == []


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fps must be > 0"):
        VideoWriter(tmp_path / "a.mp4", 0)
    with pytest.raises(ConfigError, match=r"crf must be in \[0, 51\]"):
        VideoWriter(tmp_path / "a.mp4", 10, crf=60)
    with pytest.raises(ConfigError, match="video codec 'nosuchcodec' is not in this FFmpeg"):
        VideoWriter(tmp_path / "a.mp4", 10, codec="nosuchcodec")
    w = VideoWriter(tmp_path / "a.mp4", 10)
    w.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"frames must be \(H, W, 3\) uint8 RGB"):
        w.write(np.zeros((32, 32), np.uint8))
    w.close()
    assert len(list(VideoReader(tmp_path / "a.mp4"))) == 1
    empty = VideoWriter(tmp_path / "b.mp4", 10)
    with pytest.raises(ConfigError, match="no frames were written"):
        empty.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_rotation_side_data_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rot.mp4"
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :32] = 200  # left half bright
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        for i in range(2):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    info = probe_video(path)
    if info.rotation == 0:
        pytest.skip("this FFmpeg build does not store display rotation in mp4")
    frames = list(VideoReader(path))
    assert frames[0].image.shape == (64, 32, 3)
    expected = np.rot90(img, info.rotation // 90)
    assert np.abs(frames[0].image.astype(int) - expected).mean() < 10


def test_video_extensions() -> None:
    assert is_video_path("a/B.MP4")
    assert is_video_path("c.webm")
    assert not is_video_path("c.jpg")


def _write_vfr(path: Path, pts_ms: list[int]) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=1000)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * k, np.uint8), format="rgb24")
            f.pts = ms
            f.time_base = Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def test_variable_frame_rate_timestamps(tmp_path: Path) -> None:
    pts_ms = [0, 40, 120, 130, 300, 310, 320, 700]
    _write_vfr(tmp_path / "vfr.mkv", pts_ms)
    frames = list(VideoReader(tmp_path / "vfr.mkv"))
    assert [f.index for f in frames] == list(range(8))
    assert np.allclose([f.timestamp for f in frames], np.array(pts_ms) / 1000, atol=1e-6)
    kept = [f.timestamp for f in VideoReader(tmp_path / "vfr.mkv", fps=10)]
    assert np.allclose(kept, [0.0, 0.12, 0.3, 0.7], atol=1e-6)


def test_memory_is_flat_in_video_length(media_dir: Path) -> None:
    tracemalloc.start()
    try:
        n = 0
        for frame in VideoReader(media_dir / SINGLE):
            n += frame.image.nbytes > 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 72
    assert peak < 8 * 640 * 360 * 3  # a few frames at a time, never all 72 (~50 MB)


def test_animated_gif_is_a_video(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (30, 30), (60 * i, 0, 0)) for i in range(4)]
    frames[0].save(
        tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=[100, 200, 100, 300]
    )
    got = list(VideoReader(tmp_path / "a.gif"))
    assert [round(f.timestamp, 3) for f in got] == [0.0, 0.1, 0.3, 0.4]
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 60, 120, 180]
    late = list(VideoReader(tmp_path / "a.gif", start=0.25))
    assert [round(f.timestamp, 3) for f in late] == [0.3, 0.4]
    assert late[0].index < late[1].index


def test_corrupt_middle_keeps_decoding_after_the_damage(media_dir: Path, tmp_path: Path) -> None:
    data = bytearray((media_dir / WOLF).read_bytes())
    mid = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8)
    data[mid : mid + noise.size] = noise.tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    full = {f.index: f.timestamp for f in VideoReader(media_dir / WOLF)}
    reader = VideoReader(tmp_path / "bad.mp4")
    seen = []
    with pytest.raises(
        DamagedInputError,
        match=r"bad\.mp4: .*packet\(s\) could not be decoded and were skipped "
        r"\(the first at \d+\.\d\d s\)",
    ) as info:
        seen.extend(reader)
    idx = [f.index for f in seen]
    assert idx == sorted(set(idx))  # increasing, no repeats
    assert idx[-1] == 471  # decoding went on to the end of the file
    assert 300 < len(seen) < 472  # the frames after the damage came through too
    gap = int(np.argmax(np.diff(idx)))
    assert idx[gap + 1] - idx[gap] > 10  # the damaged stretch is missing, not renumbered
    for f in seen:  # every kept frame is numbered and timed as in the intact file
        assert f.timestamp == pytest.approx(full[f.index], abs=1e-6)
    assert info.value.kept == len(seen)
    assert "of the 472 frames the header promises" in str(info.value)


def test_zero_frame_video_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        c.start_encoding()  # a header with a video stream and not one frame
    reader = VideoReader(path)
    with pytest.raises(InputError, match=r"zero\.avi: has no decodable video frame"):
        list(reader)


def _encode(path: Path, sizes: list[tuple[int, int]], fmt: str | None = None) -> Path:
    """Writes one tiny libx264 frame per (w, h), the stream declared at the first size."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height = sizes[0]
        s.pix_fmt = "yuv420p"
        for k, (w, h) in enumerate(sizes):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * k, np.uint8), format="rgb24")
            f.pts = k
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((16, 16), r"video is 16x16 px; at least 20 px per side is needed"),
        ((8200, 32), r"video is 8200x32 px; at most 8000 px per side is supported"),
    ],
)
def test_video_size_limits_match_the_image_ones(
    tmp_path: Path, size: tuple[int, int], message: str
) -> None:
    path = _encode(tmp_path / "v.mp4", [size] * 3)
    with pytest.raises(InputError, match=rf"v\.mp4: {message}"):
        VideoReader(path)


def test_resolution_change_midway_is_decoded(tmp_path: Path) -> None:
    a = _encode(tmp_path / "a.ts", [(64, 48)] * 4, fmt="mpegts")
    b = _encode(tmp_path / "b.ts", [(96, 80)] * 4, fmt="mpegts")
    ab = tmp_path / "ab.ts"
    ab.write_bytes(a.read_bytes() + b.read_bytes())  # MPEG-TS streams concatenate
    shapes = [f.image.shape for f in VideoReader(ab)]
    assert shapes == [(48, 64, 3)] * 4 + [(80, 96, 3)] * 4


def test_writer_fits_frames_of_another_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "w.mp4"
    with caplog.at_level(logging.WARNING, logger="facexpr.io.video"), VideoWriter(out, fps=10) as w:
        w.write(np.full((48, 64, 3), 200, np.uint8))
        w.write(np.full((96, 64, 3), 200, np.uint8))  # taller: scaled to 48 px high, centred
    frames = [f.image for f in VideoReader(out)]
    assert [f.shape for f in frames] == [(48, 64, 3)] * 2
    second = frames[1].astype(int)
    assert second[:, 28:36].mean() > 150  # the scaled frame in the middle
    assert second[:, :8].mean() < 40  # black on either side
    assert "frames of other sizes are scaled to fit" in caplog.text


def _gif_claiming(path: Path, w: int, h: int) -> Path:
    """Writes a 60-byte GIF whose screen and one frame claim w x h px (a decompression bomb)."""
    import struct

    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    desc = b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
    path.write_bytes(head + desc + b"\x02\x02\x4c\x01\x00" + b"\x3b")
    return path


def test_declared_size_is_checked_before_any_frame_is_decoded(tmp_path: Path) -> None:
    bomb = _gif_claiming(tmp_path / "bomb.gif", 16_000, 16_000)  # 768 MB as one RGB frame
    # probe_video used to decode the first frame (for its rotation) before any size check; the
    # peak memory of that is checked in a child process by tests/hostile (video-gif-bomb).
    with pytest.raises(InputError, match=r"bomb\.gif: video is 16000x16000 px; at most 8000"):
        probe_video(bomb)
    with pytest.raises(InputError, match=r"bomb\.gif: video is 16000x16000 px; at most 8000"):
        VideoReader(bomb)


def test_decoder_refuses_frames_over_max_side_squared_pixels(
    media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream whose header understates its frames: with the header check out of the way, the
    # decoder's own max_pixels bound (MAX_SIDE**2) still refuses to allocate the frames.
    import facexpr.io.video as video

    monkeypatch.setattr(video, "MAX_SIDE", 100)
    monkeypatch.setattr(video, "_check_sides", lambda *_: None)
    reader = VideoReader(media_dir / "single_face.mp4")
    with pytest.raises(InputError, match=r"single_face\.mp4: has no decodable video frame"):
        list(reader)

"""Hostile videos for ``facexpr analyze``: no frames, truncated, corrupt in the middle, frame size
changing, too small and too large, GIF bombs, videos and text under each other's names."""

from __future__ import annotations

import struct
from pathlib import Path

from cases_media import analyze
from corpus import MEDIA, Case, CaseDirs, Run, Setup, good_video, tables_in, write_video

_CORRUPT = (
    r"truncated|corrupt|broken|incomplete|invalid|cannot (read|decode|open)|decod"
    r"|ends (early|before)|\d+ of \d+ frames"
)
_NOT_VIDEO = r"not (a|an) (readable )?(video|image)|neither|cannot open|invalid data|unknown format"
_TOO_BIG = r"too (large|big)|at most \d[\d,]* ?px|exceeds"
_TOO_SMALL = r"at least \d+ ?px|too small"


def _rows(path: Path) -> int:
    return max(0, len(path.read_bytes().splitlines()) - 1)


def _table_with_rows(n: int, when_rc: tuple[int, ...] = (0, 2), widths: tuple[int, ...] = ()):
    """A post-check: when the run exits with one of ``when_rc``, out/ holds one table of >= n rows
    (the good frames are kept), with rows of every frame width in ``widths``."""

    def post(dirs: CaseDirs, run: Run) -> list[str]:
        if run.rc not in when_rc:
            return []
        found = tables_in(dirs.out)
        if len(found) != 1:
            return [f"{len(found)} tables in out/, expected 1 with the good frames"]
        got = _rows(found[0])
        if got < n:
            return [f"table has {got} rows, expected >= {n} (good frames lost)"]
        if widths:
            import pandas as pd

            seen = set(pd.read_csv(found[0])["frame_width"].dropna().astype(int))
            if not set(widths) <= seen:
                return [f"frame widths {sorted(seen)} in the table, expected {list(widths)}"]
        return []

    return post


def _zero_frames(dirs: CaseDirs) -> Setup:
    p = write_video(dirs.inp / "empty.mp4", [])
    return Setup(analyze(dirs, p), p)


def _truncated_faststart(dirs: CaseDirs) -> Setup:
    src = write_video(
        dirs.tmp / "full.mp4", [(96, 96)] * 72, options={"movflags": "faststart"}
    ).read_bytes()
    p = dirs.inp / "cut.mp4"
    p.write_bytes(src[: len(src) * 4 // 10])
    return Setup(analyze(dirs, p), p)


def _truncated_real(dirs: CaseDirs) -> Setup:
    src = (MEDIA / "single_face.mp4").read_bytes()
    p = dirs.inp / "cut_real.mp4"
    p.write_bytes(src[: len(src) // 2])
    return Setup(analyze(dirs, p), p)


def _truncated_to_header(dirs: CaseDirs) -> Setup:
    src = write_video(dirs.tmp / "full.mkv", [(64, 64)] * 20, fmt="matroska").read_bytes()
    p = dirs.inp / "header.mkv"
    p.write_bytes(src[:200])
    return Setup(analyze(dirs, p), p)


def _mid_corrupt(dirs: CaseDirs) -> Setup:
    # 2 KB of junk at 45% of the real 72-frame video: FFmpeg fails on frame 28 and decodes on.
    p = dirs.inp / "midbad.mp4"
    data = bytearray((MEDIA / "single_face.mp4").read_bytes())
    mid = len(data) * 45 // 100
    data[mid : mid + 2048] = b"\xff" * 2048
    p.write_bytes(bytes(data))
    return Setup(analyze(dirs, p), p)


def _size_change(dirs: CaseDirs) -> Setup:
    a = write_video(dirs.tmp / "a.mpg", [(96, 96)] * 20, codec="mpeg2video", fmt="mpeg")
    b = write_video(dirs.tmp / "b.mpg", [(160, 120)] * 20, codec="mpeg2video", fmt="mpeg")
    p = dirs.inp / "resize.mpg"
    p.write_bytes(a.read_bytes() + b.read_bytes())
    return Setup(analyze(dirs, p, extra=("--annotate", str(dirs.out / "annotated"))), p)


def _tiny(dirs: CaseDirs) -> Setup:
    p = write_video(dirs.inp / "tiny.mp4", [(16, 16)] * 10)
    return Setup(analyze(dirs, p), p)


def _huge(dirs: CaseDirs) -> Setup:
    p = write_video(dirs.inp / "wide.mkv", [(8200, 32)] * 2, codec="ffv1", fmt="matroska")
    return Setup(analyze(dirs, p), p)


def _video_named_jpg(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "clip.jpg"
    good_video(p)
    return Setup(analyze(dirs, p), p)


def _video_named_jpg_post(dirs: CaseDirs, run: Run) -> list[str]:
    # Recognised by its content: analysed as the 72-frame video it is (exit 0), or refused with
    # a message that says it is a video (exit 2, checked by the problem regex).
    if run.rc != 0:
        return []
    found = tables_in(dirs.out)
    if len(found) != 1 or _rows(found[0]) < 72:
        return ["a video named .jpg was not analysed as a video (expected >= 72 rows)"]
    return []


def _text_named_mp4(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    return Setup(analyze(dirs, p), p)


def _zero_byte_mp4(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "empty.mp4"
    p.write_bytes(b"")
    return Setup(analyze(dirs, p), p)


def _audio_only(dirs: CaseDirs) -> Setup:
    import av
    import numpy as np

    p = dirs.inp / "sound.mkv"
    with av.open(str(p), "w", format="matroska") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for pkt in s.encode(frame):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return Setup(analyze(dirs, p), p)


def _gif(w: int, h: int, frame_w: int, frame_h: int) -> bytes:
    """A GIF whose logical screen is w x h and whose one frame claims frame_w x frame_h."""
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    desc = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame_w, frame_h, 0)
    lzw = b"\x02\x02\x4c\x01\x00"  # min code size 2, one tiny sub-block, terminator
    return head + desc + lzw + b"\x3b"


def _gif_bomb(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "bomb.gif"
    p.write_bytes(_gif(16_000, 16_000, 16_000, 16_000))
    return Setup(analyze(dirs, p), p)


def _gif_1px(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "dot.gif"
    p.write_bytes(_gif(1, 1, 1, 1))
    return Setup(analyze(dirs, p), p)


def _mp4_garbage_after_ftyp(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "ftyp.mp4"
    p.write_bytes(struct.pack(">I", 24) + b"ftypisom\0\0\2\0isomiso2" + b"\xde\xad" * 500)
    return Setup(analyze(dirs, p), p)


def _mp4_huge_box(dirs: CaseDirs) -> Setup:
    # A moov box claiming 2^64-1 bytes: a reader that trusts box sizes allocates or seeks forever.
    p = dirs.inp / "bigbox.mp4"
    body = struct.pack(">I", 24) + b"ftypisom\0\0\2\0isomiso2"
    body += struct.pack(">I", 1) + b"moov" + struct.pack(">Q", 2**64 - 1) + b"\0" * 64
    p.write_bytes(body)
    return Setup(analyze(dirs, p), p)


def _case(name: str, build, problem: str, **kw) -> Case:
    return Case(name=name, family="video", build=build, problem=problem, **kw)


def _control(dirs: CaseDirs) -> Setup:
    p = good_video(dirs.inp / "good.mp4")
    return Setup(analyze(dirs, p), p)


CASES: list[Case] = [
    _case(
        "video-control-good-video",
        _control,
        r".",
        expect_rc=(0,),
        post=_table_with_rows(72),
        note="control: the 72-frame video is analysed (exit 0)",
    ),
    _case(
        "video-zero-frames",
        _zero_frames,
        r"no (video )?frames?|0 frames|empty|no frame",
        note="a valid MP4 header with no frame: the README calls it bad",
    ),
    _case(
        "video-truncated-faststart",
        _truncated_faststart,
        _CORRUPT,
        note="moov first, cut at 40%: decodes a part, must not pass as complete",
    ),
    _case("video-truncated-real", _truncated_real, _CORRUPT + "|" + _NOT_VIDEO),
    _case("video-truncated-to-header", _truncated_to_header, _CORRUPT + "|" + _NOT_VIDEO),
    _case(
        "video-mid-file-corrupt",
        _mid_corrupt,
        _CORRUPT,
        expect_rc=(0, 2),
        post=_table_with_rows(60),
        note="junk at frame 28 of 72: the frames after it must be kept",
    ),
    _case(
        "video-size-change-annotate",
        _size_change,
        r"size|changes|resolution",
        expect_rc=(0, 2),
        post=_table_with_rows(35, widths=(96, 160)),
        note="96x96 then 160x120 frames with --annotate: the table must survive",
    ),
    _case("video-16px", _tiny, _TOO_SMALL),
    _case("video-8200px", _huge, _TOO_BIG),
    _case(
        "video-named-jpg", _video_named_jpg, r"video", expect_rc=(0, 2), post=_video_named_jpg_post
    ),
    _case("video-text-named-mp4", _text_named_mp4, _NOT_VIDEO + "|" + _CORRUPT),
    _case("video-zero-byte-mp4", _zero_byte_mp4, r"empty|0 bytes"),
    _case("video-audio-only", _audio_only, r"no video|audio"),
    _case(
        "video-gif-bomb",
        _gif_bomb,
        _TOO_BIG + "|" + _CORRUPT,
        note="a 60-byte GIF claiming 16,000 x 16,000",
    ),
    _case("video-gif-1px", _gif_1px, _TOO_SMALL + "|" + _CORRUPT),
    _case("video-mp4-ftyp-garbage", _mp4_garbage_after_ftyp, _CORRUPT + "|" + _NOT_VIDEO),
    _case("video-mp4-huge-box", _mp4_huge_box, _CORRUPT + "|" + _NOT_VIDEO),
]

"""What ``--annotate`` writes under a face when the learned heads ran."""

from __future__ import annotations

import numpy as np

from facexpr.core.affect import EMOTIONS, HEAD_AUS
from facexpr.core.types import FaceResult, FrameResult
from facexpr.io.annotate import affect_lines, draw_frame


def _face(**kw) -> FaceResult:
    return FaceResult(
        box=np.array([20, 20, 80, 80], np.float32),
        score=0.9,
        landmarks=np.full((68, 2), 50, np.float32),
        **kw,
    )


def test_top_emotion_va_and_strongest_aus():
    emo = np.full(len(EMOTIONS), 0.02, np.float32)
    emo[EMOTIONS.index("happiness")] = 0.86
    au = np.zeros(len(HEAD_AUS), np.float32)
    au[HEAD_AUS.index("AU12")] = 3.2
    au[HEAD_AUS.index("AU06")] = 2.1
    au[HEAD_AUS.index("AU25")] = 0.5  # below FACS A: not shown
    face = _face(emotions=emo, valence_arousal=np.array([0.61, 0.2], np.float32), au_intensity=au)
    assert affect_lines(face) == ["happiness 0.86", "V +0.61  A +0.20", "AU12 3.2  AU06 2.1"]


def test_no_heads_no_lines_and_the_frame_is_unchanged_there():
    assert affect_lines(_face()) == []
    img = np.zeros((200, 200, 3), np.uint8)
    emo = np.eye(len(EMOTIONS), dtype=np.float32)[0]
    plain = draw_frame(img, FrameResult("x", 0, 0.0, 200, 200, (_face(),)))
    more = draw_frame(img, FrameResult("x", 0, 0.0, 200, 200, (_face(emotions=emo),)))
    assert (plain[85:110] != more[85:110]).any()  # the emotion label sits under the box
    assert (plain[:15] == more[:15]).all()

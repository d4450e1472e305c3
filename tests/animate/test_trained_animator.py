"""The animator trained by ``configs/animator_tiny.yaml`` on a real talking video (skipped when the
run, which is not committed, is absent): its jawOpen follows the mouth opening of the landmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.animate import AnimateOptions, Animator
from facexpr.core.arkit import ARKIT_NAMES

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "runs" / "animator_tiny" / "animator.safetensors"
ENCODER = REPO / "runs" / "encoder_heads_4000" / "expression.safetensors"


@pytest.mark.slow
def test_trained_animator_jaw_follows_the_mouth(shared_dir: Path) -> None:
    if not (RUN.is_file() and ENCODER.is_file()):
        pytest.skip(f"no trained animator run at {RUN} (and its encoder at {ENCODER})")
    video = shared_dir / "fixtures" / "media" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"fixture video not found at {video}")
    opts = AnimateOptions(method="animator", animator_weights=RUN, encoder_weights=ENCODER)
    anim = Animator(["ict", "ict_toon"], opts).retarget(video)
    jaw = anim.tracks[0].arkit[:, ARKIT_NAMES.index("jawOpen")]
    ok = np.isfinite(anim.mouth_open)
    assert ok.sum() == 72
    assert np.corrcoef(jaw[ok], anim.mouth_open[ok])[0, 1] > 0.5
    assert anim.tracks[1].weights.shape == (72, 53)

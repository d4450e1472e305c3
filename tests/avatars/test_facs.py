"""Tests of the ARKit-to-FACS mapping."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.avatars.facs import AU_NAMES, arkit_to_au, au_to_arkit, facs_table
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError

A = {n: i for i, n in enumerate(ARKIT_NAMES)}
U = {n: i for i, n in enumerate(AU_NAMES)}


def _w(**shapes: float) -> np.ndarray:
    w = np.zeros(52, np.float32)
    for k, v in shapes.items():
        w[A[k]] = v
    return w


def test_covers_bp4d_disfa_and_openface_aus() -> None:
    bp4d = {1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24}
    disfa = {1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26}
    openface = {1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45}
    have = {int(n[2:]) for n in AU_NAMES}
    assert bp4d | disfa | openface <= have


def test_every_au_has_a_justification() -> None:
    t = facs_table()
    assert len(t.why) == len(AU_NAMES)
    assert all(len(s.split()) >= 6 for s in t.why)


def test_neutral_is_all_zero() -> None:
    np.testing.assert_array_equal(arkit_to_au(np.zeros(52)), np.zeros(len(AU_NAMES)))


def test_full_smile_is_au12_high_and_nothing_else() -> None:
    au = arkit_to_au(_w(mouthSmileLeft=1.0, mouthSmileRight=1.0))
    assert au[U["AU12"]] >= 4.0
    assert np.count_nonzero(au) == 1


def test_unilateral_action_scores_acting_side() -> None:
    au = arkit_to_au(_w(mouthSmileRight=0.6))
    assert au[U["AU12"]] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("shape", "au"),
    [("mouthSmileLeft", "AU12"), ("browInnerUp", "AU01"), ("jawOpen", "AU26"),
     ("eyeBlinkLeft", "AU45"), ("mouthPressLeft", "AU24"), ("noseSneerRight", "AU09")],
)  # fmt: skip
def test_monotonic_in_weight(shape: str, au: str) -> None:
    levels = np.linspace(0, 1, 21)
    out = np.stack([arkit_to_au(_w(**{shape: x}))[U[au]] for x in levels])
    assert np.all(np.diff(out) >= 0)
    assert out[-1] > out[0]


def test_jaw_drop_vs_mouth_stretch() -> None:
    small = arkit_to_au(_w(jawOpen=0.25))
    wide = arkit_to_au(_w(jawOpen=1.0))
    assert small[U["AU26"]] == pytest.approx(2.5)
    assert small[U["AU27"]] == 0.0
    assert wide[U["AU27"]] == pytest.approx(5.0)
    assert small[U["AU25"]] > 0  # lips part with the jaw


def test_mouth_close_keeps_lips_together() -> None:
    au = arkit_to_au(_w(jawOpen=0.3, mouthClose=0.3))
    assert au[U["AU25"]] == 0.0
    assert au[U["AU26"]] == pytest.approx(3.0)


def test_blink_vs_eyes_closed() -> None:
    half = arkit_to_au(_w(eyeBlinkLeft=0.4, eyeBlinkRight=0.4))
    assert half[U["AU45"]] == pytest.approx(2.0)
    assert half[U["AU43"]] == 0.0


def test_batched_equals_one_by_one() -> None:
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (4, 3, 52)).astype(np.float32)
    batched = arkit_to_au(w)
    assert batched.shape == (4, 3, len(AU_NAMES))
    np.testing.assert_allclose(batched[2, 1], arkit_to_au(w[2, 1]))


@pytest.mark.parametrize(
    "au", ["AU01", "AU04", "AU12", "AU15", "AU17", "AU20", "AU23", "AU25", "AU27", "AU45", "AU61"]
)
@pytest.mark.parametrize("intensity", [1.0, 3.0, 5.0])
def test_inverse_round_trips(au: str, intensity: float) -> None:
    w = au_to_arkit({au: intensity})
    assert arkit_to_au(w)[U[au]] == pytest.approx(intensity, abs=1e-5)


def test_inverse_unilateral_sets_one_side() -> None:
    w = au_to_arkit({"AU12_R": 2.0, "AU14_R": 2.0})  # contempt R12A+R14A-ish
    assert w[A["mouthSmileRight"]] == pytest.approx(0.4)
    assert w[A["mouthSmileLeft"]] == 0.0
    assert w[A["mouthDimpleLeft"]] == 0.0


def test_inverse_of_au27_opens_jaw_wide() -> None:
    w = au_to_arkit({"AU27": 2.5})
    assert w[A["jawOpen"]] == pytest.approx(0.75)


def test_bad_shape_raises() -> None:
    with pytest.raises(ConfigError, match=r"shape \(\.\.\., 52\)"):
        arkit_to_au(np.zeros(53))


def test_unknown_au_raises() -> None:
    with pytest.raises(ConfigError, match="unknown AU 'AU99'"):
        au_to_arkit({"AU99": 1.0})


def test_intensity_out_of_range_raises() -> None:
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\]"):
        au_to_arkit({"AU12": 6.0})


def test_inverse_of_lip_tightener_is_mostly_press() -> None:
    w = au_to_arkit({"AU23": 4.0})
    assert w[A["mouthPressLeft"]] > 4 * w[A["mouthRollLower"]] > 0

"""Head targets from dataset fields (train/labels.py): every conversion, its mask, the derived
valence-arousal, blendshape mirroring, errors naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.core.affect import CIRCUMPLEX, EMOTIONS, HEAD_AUS, va_from_distribution
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError
from facexpr.io.datasets.ferplus import EMOTIONS as FERPLUS_EMOTIONS
from facexpr.io.datasets.ferplus import FER2013_TO_FERPLUS
from facexpr.synth.expressions import EMOTION_LABELS
from facexpr.train.labels import (
    HEAD_FIELDS,
    WIDTHS,
    check_labels,
    head_target,
    mirror_blendshapes,
)


def test_widths_and_the_emotion_order_are_ferplus():
    assert WIDTHS == {"emotion": 8, "va": 2, "blendshapes": 52, "aus": 20}
    assert tuple(FERPLUS_EMOTIONS) == EMOTIONS  # emotion_soft is stored in this order


def test_emotion_soft_is_taken_as_is():
    v = np.array([0.1, 0.5, 0.1, 0.0, 0.1, 0.1, 0.0, 0.1], np.float32)
    t, m = head_target("emotion", "emotion_soft", v)
    np.testing.assert_array_equal(t, v)
    assert m.all()


@pytest.mark.parametrize("k", range(8))
def test_emotion_mix_maps_the_synth_order_to_ferplus(k):
    v = np.zeros(8, np.float32)
    v[k] = 1.0
    t, m = head_target("emotion", "emotion_mix", v)
    assert m.all()
    assert t.sum() == 1.0
    assert EMOTIONS[int(t.argmax())] == EMOTION_LABELS[k]


def test_emotion_mix_blend_keeps_both_shares():
    v = np.zeros(8, np.float32)
    v[EMOTION_LABELS.index("sadness")] = 0.7
    v[EMOTION_LABELS.index("contempt")] = 0.3
    t, _ = head_target("emotion", "emotion_mix", v)
    assert t[EMOTIONS.index("sadness")] == pytest.approx(0.7)
    assert t[EMOTIONS.index("contempt")] == pytest.approx(0.3)
    assert t.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("k", range(7))
def test_emotion_teacher_maps_fer2013_order_and_masks_contempt(k):
    # FER2013: angry, disgust, fear, happy, sad, surprise, neutral.
    v = np.zeros(7, np.float32)
    v[k] = 1.0
    t, m = head_target("emotion", "emotion_teacher", v)
    assert int(t.argmax()) == FER2013_TO_FERPLUS[k]  # the FER+ reader's own table
    assert m.sum() == 7
    assert not m[EMOTIONS.index("contempt")]


def test_derived_va_of_a_pure_emotion_is_its_circumplex_point():
    happy = np.zeros(8, np.float32)
    happy[EMOTIONS.index("happiness")] = 1.0
    t, m = head_target("va", "emotion_soft", happy)
    np.testing.assert_allclose(t, CIRCUMPLEX[EMOTIONS.index("happiness")])
    assert m.all()
    assert t[0] > 0.5  # happiness: pleasant
    # A vote mix is the vote-weighted mean of the points (votes need not sum to 1).
    votes = np.array([2, 6, 0, 0, 0, 0, 2, 0], np.float32)
    t, _ = head_target("va", "emotion_soft", votes)
    want = (0.2 * CIRCUMPLEX[0] + 0.6 * CIRCUMPLEX[1] + 0.2 * CIRCUMPLEX[6]).astype(np.float32)
    np.testing.assert_allclose(t, want, rtol=1e-6)
    # FER2013's happy through the teacher field lands on the same point.
    fer = np.zeros(7, np.float32)
    fer[3] = 1.0
    t, _ = head_target("va", "emotion_teacher", fer)
    np.testing.assert_allclose(t, CIRCUMPLEX[EMOTIONS.index("happiness")])


def test_derived_va_from_synth_scales_with_the_faces_intensity():
    mix = np.zeros(8, np.float32)
    mix[EMOTION_LABELS.index("anger")] = 1.0
    point = CIRCUMPLEX[EMOTIONS.index("anger")]
    full, _ = head_target("va", "emotion_mix", mix)
    np.testing.assert_allclose(full, point)
    faint, _ = head_target("va", "emotion_mix", mix, intensity=0.25)
    np.testing.assert_allclose(faint, 0.25 * point, rtol=1e-6)
    # A blend of 0.7 sadness + 0.3 fear at overall intensity u stores intensity 0.7 * u.
    blend = np.zeros(8, np.float32)
    blend[EMOTION_LABELS.index("sadness")] = 0.7
    blend[EMOTION_LABELS.index("fear")] = 0.3
    t, _ = head_target("va", "emotion_mix", blend, intensity=0.7 * 0.5)
    want = 0.5 * (0.7 * CIRCUMPLEX[EMOTIONS.index("sadness")] + 0.3 * CIRCUMPLEX[6])
    np.testing.assert_allclose(t, want, rtol=1e-5)
    # The real VA field is taken as is.
    t, m = head_target("va", "valence_arousal", np.array([0.3, -0.2]))
    np.testing.assert_allclose(t, [0.3, -0.2])
    assert m.all()


def test_va_from_distribution_matches_a_hand_computation():
    p = np.array([[0.5, 0.5, 0, 0, 0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(
        va_from_distribution(p, 0.5), [0.5 * (0.5 * CIRCUMPLEX[0] + 0.5 * CIRCUMPLEX[1])]
    )


def test_blendshapes_as_is_and_teacher_with_tongue_out_masked():
    w = np.linspace(0, 1, 52, dtype=np.float32)
    t, m = head_target("blendshapes", "arkit_weights", w)
    np.testing.assert_array_equal(t, w)
    assert m.all()
    teacher = np.linspace(0.1, 0.9, 51, dtype=np.float32)
    t, m = head_target("blendshapes", "arkit_teacher", teacher)
    np.testing.assert_array_equal(t[:51], teacher)
    assert ARKIT_NAMES[51] == "tongueOut"
    assert not m[51]
    assert m[:51].all()


def test_aus_from_the_aus_field_pick_the_head_columns():
    v = np.arange(len(AU_NAMES), dtype=np.float32) / 10  # value = its column / 10
    t, m = head_target("aus", "aus", v)
    assert m.all()
    assert t.shape == (len(HEAD_AUS),)
    for j, au in enumerate(HEAD_AUS):
        assert t[j] == pytest.approx(AU_NAMES.index(au) / 10), au
    assert "AU11" not in HEAD_AUS
    assert t[HEAD_AUS.index("AU45")] == pytest.approx(AU_NAMES.index("AU45") / 10)


def test_aus_from_arkit_go_through_the_facs_table():
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, 52).astype(np.float32)
    t, m = head_target("aus", "arkit_weights", w)
    assert m.all()
    full = arkit_to_au(w)
    np.testing.assert_allclose(t, full[[AU_NAMES.index(a) for a in HEAD_AUS]])
    smile = np.zeros(52, np.float32)
    smile[[ARKIT_NAMES.index("mouthSmileLeft"), ARKIT_NAMES.index("mouthSmileRight")]] = 1.0
    t, _ = head_target("aus", "arkit", smile)
    assert t[HEAD_AUS.index("AU12")] > 1.0  # lip corner puller
    assert t[HEAD_AUS.index("AU04")] == 0.0
    # The teacher's 51 scores: tongueOut is read as 0, and no head AU depends on it.
    t51, _ = head_target("aus", "arkit_teacher", w[:51])
    w0 = w.copy()
    w0[51] = 0.0
    np.testing.assert_allclose(t51, head_target("aus", "arkit", w0)[0])


def test_head_aus_are_mirror_invariant_so_a_flip_leaves_them():
    # The recipe mirrors blendshape targets with a flipped image and leaves AU targets as they
    # are: right only if no head AU is one-sided.
    rng = np.random.default_rng(2)
    for _ in range(5):
        w = rng.uniform(0, 1, 52).astype(np.float32)
        a, _ = head_target("aus", "arkit_weights", w)
        b, _ = head_target("aus", "arkit_weights", mirror_blendshapes(w))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    one_sided = np.zeros(52, np.float32)
    one_sided[ARKIT_NAMES.index("mouthSmileLeft")] = 1.0
    assert head_target("aus", "arkit", one_sided)[0][HEAD_AUS.index("AU12")] > 0


def test_mirroring_swaps_left_and_right_and_is_an_involution():
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, (3, 52)).astype(np.float32)
    mw = mirror_blendshapes(w)
    names = list(ARKIT_NAMES)
    for i, n in enumerate(names):
        if n.endswith("Left"):
            j = names.index(n[:-4] + "Right")
        elif n.endswith("Right"):
            j = names.index(n[:-5] + "Left")
        else:
            j = i
        np.testing.assert_array_equal(mw[:, i], w[:, j])
    np.testing.assert_array_equal(mirror_blendshapes(mw), w)
    assert not np.array_equal(mw, w)
    i = names.index
    assert mw[0, i("mouthLeft")] == w[0, i("mouthRight")]
    assert mw[0, i("eyeBlinkLeft")] == w[0, i("eyeBlinkRight")]
    assert mw[0, i("jawOpen")] == w[0, i("jawOpen")]
    # 20 pairs swap; the 12 centre channels stay.
    centre = {"browInnerUp", "cheekPuff", "jawForward", "jawOpen", "mouthClose", "mouthFunnel",
              "mouthPucker", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
              "mouthShrugUpper", "tongueOut"}  # fmt: skip
    moved = {n for k, n in enumerate(names) if not np.array_equal(mw[:, k], w[:, k])}
    assert moved == set(names) - centre
    mask = np.ones(52, bool)
    mask[51] = False
    assert not mirror_blendshapes(mask)[51]


def test_errors_name_the_head_and_the_field():
    with pytest.raises(ConfigError, match=r"unknown head 'gaze'"):
        head_target("gaze", "aus", np.zeros(31))
    with pytest.raises(
        ConfigError, match=r"head 'aus' cannot be trained from field 'emotion_soft'"
    ):
        head_target("aus", "emotion_soft", np.zeros(8))
    with pytest.raises(ConfigError, match=r"field 'arkit_teacher' must have 51 values, got 52"):
        head_target("blendshapes", "arkit_teacher", np.zeros(52))
    with pytest.raises(ConfigError, match=r"field 'emotion_soft' must have 8 values, got 10"):
        head_target("emotion", "emotion_soft", np.zeros(10))
    with pytest.raises(ConfigError, match=r"src: unknown head 'gaze' \(known: emotion, va"):
        check_labels({"gaze": "aus"}, "src")
    with pytest.raises(ConfigError, match=r"src: head 'va' cannot be trained from 'aus'"):
        check_labels({"va": "aus"}, "src")
    check_labels({h: fields[0] for h, fields in HEAD_FIELDS.items()}, "src")  # all fine

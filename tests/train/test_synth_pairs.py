"""(a) end to end: the synth engine's expression groups give exact rig pairs across identities,
which RigTriplets finds as zero-distance positives (renders with the ICT FaceKit avatar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.io.shards import ShardDataset
from facexpr.synth import SynthOptions, generate
from facexpr.train.triplets import RigTriplets

moderngl = pytest.importorskip("moderngl", reason="the renderer (moderngl) is not available")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pairs") / "ds"
    generate(SynthOptions(n=8, size=64, render_size=96, seed=2, n_identities=3, pair_size=2), d)
    return d


def test_groups_share_the_rig_on_different_identities(pairs: Path) -> None:
    s = sorted(ShardDataset(pairs, shuffle_buffer=0), key=lambda x: x.key)
    for g in range(4):
        a, b = s[2 * g], s[2 * g + 1]
        np.testing.assert_array_equal(a.labels["arkit_weights"], b.labels["arkit_weights"])
        assert a.subject_id != b.subject_id
        assert a.provenance["expression_group"] == g
        assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(s[0].labels["arkit_weights"], s[2].labels["arkit_weights"])


def test_rig_triplets_find_the_exact_pairs(pairs: Path) -> None:
    src = RigTriplets(pairs, n=10, pos_max=0.0, margin=0.05, size=32)
    assert len(src) >= 1
    t = src[0]
    assert t.subjects[0] != t.subjects[1]


def test_pair_size_checked() -> None:
    with pytest.raises(ConfigError, match="pair_size must be >= 1"):
        SynthOptions(pair_size=0)

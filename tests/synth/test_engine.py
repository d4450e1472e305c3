"""Tests of synthetic dataset generation (renders with the ICT FaceKit avatar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.avatars.facs import AU_NAMES
from facexpr.io.shards import ShardDataset, read_manifest
from facexpr.synth import SynthOptions, generate


def _have_renderer() -> bool:
    try:
        import moderngl  # noqa: F401

        import facexpr.avatars.render  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _have_renderer(), reason="facexpr.avatars.render (moderngl) is not available"
)

OPTS = SynthOptions(n=8, size=96, render_size=128, seed=5, samples_per_shard=5, n_identities=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synth") / "a"
    generate(OPTS, d)
    return d


def _bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes(built: Path, tmp_path: Path) -> None:
    generate(OPTS, tmp_path / "b")
    assert _bytes(built) == _bytes(tmp_path / "b")


def test_workers_do_not_change_bytes(built: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    generate(replace(OPTS, workers=2), tmp_path / "c")
    assert _bytes(built) == _bytes(tmp_path / "c")


def test_other_seed_other_faces(built: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    generate(replace(OPTS, seed=6, n=2), tmp_path / "d")
    a = next(iter(ShardDataset(built, shuffle_buffer=0))).image
    b = next(iter(ShardDataset(tmp_path / "d", shuffle_buffer=0))).image
    assert not np.array_equal(a, b)


def test_labels_are_sane(built: Path) -> None:
    m = read_manifest(built)
    assert m.n_samples == 8
    assert [s.n_samples for s in m.shards] == [5, 3]
    samples = list(ShardDataset(built, shuffle_buffer=0))
    assert len(samples) == 8
    for s in samples:
        assert s.image.shape == (96, 96, 3)
        lm = s.labels["landmarks68"]
        assert lm.shape == (68, 2)
        assert np.all((lm > 0) & (lm < 96))
        for k in ("ict_weights", "arkit_weights"):
            assert 0 <= s.labels[k].min() <= s.labels[k].max() <= 1
        aus = s.labels["aus"]
        assert aus.shape == (len(AU_NAMES),)
        assert 0 <= aus.min() <= aus.max() <= 5
        p, y, r = s.provenance["render_pose"]
        assert abs(y) <= 30
        assert abs(p) <= 20
        assert abs(r) <= 15
        # in the crop, the alignment levelled the eyes: the roll left is small
        assert abs(s.labels["head_pose"][2]) < 12
        assert s.subject_id.startswith("ict-")
        assert ("emotion" in s.labels) == (s.provenance["expression"] != "random")
        # the face is in the crop: its centre is not background-flat
        centre = s.image[30:66, 30:66].astype(np.float32)
        assert centre.std() > 3


def test_splits_are_subject_exclusive(built: Path) -> None:
    m = read_manifest(built)
    sets = [set(v) for v in m.splits.values()]
    assert sum(len(s) for s in sets) == len(set().union(*sets))


def test_crop_pose_folds_alignment_roll_into_pose() -> None:
    from facexpr.synth.engine import _crop_pose

    np.testing.assert_allclose(_crop_pose((10, -20, 5), np.eye(2, 3)), [10, -20, 5], atol=1e-4)
    a = np.radians(12.0)  # the crop is rotated by 12 degrees (image y down)
    m = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0]])
    np.testing.assert_allclose(_crop_pose((0, 0, 12), m), [0, 0, 0], atol=1e-4)

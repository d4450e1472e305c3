"""Batch sources: DDP shares add up to the one-process batch; resume at a batch is the same tail."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.io.shards import LabelField, Sample, ShardWriter
from facexpr.train.data import IndexedBatches, ShardBatches, held_out


def _fetch(idx, rngs):
    return [(int(i), float(r.random())) for i, r in zip(idx, rngs, strict=True)]


def test_indexed_batches_split_and_resume():
    one = list(IndexedBatches(50, _fetch, 8, seed=3).batches(epoch=2))
    assert len(one) == 6  # 50 // 8, the partial batch dropped
    r0 = list(IndexedBatches(50, _fetch, 8, seed=3, rank=0, world_size=2).batches(2))
    r1 = list(IndexedBatches(50, _fetch, 8, seed=3, rank=1, world_size=2).batches(2))
    for b, (x0, x1) in enumerate(zip(r0, r1, strict=True)):
        assert sorted(x0 + x1) == sorted(one[b])  # same items, same augmentation draws
    assert list(IndexedBatches(50, _fetch, 8, seed=3).batches(2, start=4)) == one[4:]
    other = list(IndexedBatches(50, _fetch, 8, seed=3).batches(epoch=3))
    assert other != one
    with pytest.raises(ConfigError, match="must be a multiple of the 3 processes"):
        IndexedBatches(50, _fetch, 8, rank=0, world_size=3)


def _shards(path, n, prefix):
    schema = [LabelField("v", (), "float32", "index")]
    with ShardWriter(path, samples_per_shard=10, schema=schema) as w:
        for i in range(n):
            img = np.full((8, 8, 3), i % 256, np.uint8)
            w.write(Sample(f"{prefix}{i:03d}", img, {"v": float(i)}, prefix, f"{prefix}{i}"))
    return path


def _key(sample, rng):
    return sample.key


def test_shard_batches_split_resume_and_mix(tmp_path):
    a = _shards(tmp_path / "a", 60, "a")
    b = _shards(tmp_path / "b", 60, "b")

    def make(**kw):
        return ShardBatches([a, b], _key, list, 8, weights=[3, 1], seed=1, shuffle_buffer=20, **kw)

    one = list(make().batches(0))
    assert len(one) >= 5
    r0 = list(make(rank=0, world_size=2).batches(0))
    r1 = list(make(rank=1, world_size=2).batches(0))
    assert [sorted(x + y) for x, y in zip(r0, r1, strict=True)] == [sorted(x) for x in one]
    assert list(make().batches(0, start=3)) == one[3:]
    keys = [k for batch in one for k in batch]
    assert len(set(keys)) == len(keys)  # no sample twice in an epoch
    share_a = np.mean([k.startswith("a") for k in keys])
    assert 0.6 < share_a < 0.9  # mixed about 3 : 1
    with pytest.raises(ConfigError, match=r"data\.weights \[1\.0\] must be one positive ratio"):
        ShardBatches([a, b], _key, list, 8, weights=[1])


def test_held_out_is_stable_and_near_its_share():
    ids = [f"person-{i}" for i in range(5000)]
    out = [held_out(s, 10.0) for s in ids]
    assert out == [held_out(s, 10.0) for s in ids]
    assert 0.08 < np.mean(out) < 0.12
    assert not any(held_out(s, 0.0) for s in ids)

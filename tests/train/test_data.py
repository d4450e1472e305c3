"""Batch sources: DDP shares add up to the one-process batch; resume at a batch is the same tail."""

from __future__ import annotations

import numpy as np
import pytest

from facexpr.core.errors import ConfigError
from facexpr.train.data import IndexedBatches, held_out


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


def test_held_out_is_stable_and_near_its_share():
    ids = [f"person-{i}" for i in range(5000)]
    out = [held_out(s, 10.0) for s in ids]
    assert out == [held_out(s, 10.0) for s in ids]
    assert 0.08 < np.mean(out) < 0.12
    assert not any(held_out(s, 0.0) for s in ids)

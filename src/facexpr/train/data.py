"""Batch sources the training loop reads: deterministic per (seed, epoch), resumable at any batch.

The loop asks a source for ``batches(epoch, start)``: the micro-batches of ``epoch`` from global
batch index ``start`` on, each this process's share. Two rules make resume bit-exact and DDP
equal to one big process:

- the *global* batch ``b`` of an epoch is a function of ``(seed, epoch, b)`` only; process ``r``
  of ``N`` takes its items ``r, r + N, ...`` (so N processes together see exactly the batch one
  process would see with ``N`` times the batch size);
- a sample's augmentation draws from its own generator, seeded by ``(seed, epoch, b, i)``, never
  from a global RNG, so the same sample is augmented the same way however the run was split.

Every epoch has the same number of batches on every process (the last partial batch is dropped),
so DDP processes never wait on each other at an epoch's end.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facexpr.core.errors import ConfigError
from facexpr.io.shards import Sample, ShardDataset

__all__ = ["BatchSource", "IndexedBatches", "ShardBatches", "held_out"]


class BatchSource(Protocol):
    """What the loop reads batches from (see the module docstring)."""

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """Yields this process's micro-batches of ``epoch`` from global batch ``start`` on."""
        ...


def _check_split(batch_size: int, rank: int, world_size: int) -> None:
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, {world_size}), got {rank}")
    if batch_size < world_size or batch_size % world_size:
        raise ConfigError(
            f"run.batch_size={batch_size} must be a multiple of the {world_size} processes"
        )


class IndexedBatches:
    """Batches of an indexable collection of ``n`` items, shuffled per epoch.

    Args:
        n: number of items.
        fetch: ``fetch(indices, rngs) -> batch`` builds a batch from item indices (this
            process's share) with one generator per item for its augmentation.
        batch_size: global micro-batch size (over all processes).
        seed: order and augmentation seed.
        rank: this process's rank.
        world_size: number of processes.
        shuffle: shuffle the order each epoch (False: items in order, e.g. for evaluation).
    """

    def __init__(
        self,
        n: int,
        fetch: Callable[[np.ndarray, list[np.random.Generator]], Any],
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        _check_split(batch_size, rank, world_size)
        self.n, self.fetch, self.batch_size = n, fetch, batch_size
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle

    def __len__(self) -> int:
        """Returns the number of batches in an epoch."""
        return self.n // self.batch_size

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        for b in range(start, len(self)):
            pos = np.arange(b * self.batch_size, (b + 1) * self.batch_size)[
                self.rank :: self.world_size
            ]
            rngs = [np.random.default_rng([self.seed, epoch, b, int(i)]) for i in pos]
            yield self.fetch(order[pos], rngs)


def held_out(subject_id: str, percent: float) -> bool:
    """Returns True for the subjects (about ``percent`` % of them) held out for evaluation.

    A stable hash of the subject id, so the split is the same in every run and process, and no
    person is on both sides.
    """
    return zlib.crc32(subject_id.encode("utf-8")) % 10_000 < percent * 100


class ShardBatches:
    """Batches streamed from a shard dataset (``facexpr.io.shards``), shuffled per epoch.

    Every process reads the whole stream in the same order and keeps its share of each global
    batch, which costs ``world_size`` times the decoding but keeps the DDP and resume rules of the
    module docstring; resuming at batch ``start`` reads past the first ``start`` batches without
    transforming them.

    Args:
        dataset_dir: a folder with ``manifest.json``.
        transform: ``transform(sample, rng) -> item``; batches are lists of items passed to
            ``collate``.
        collate: ``collate(items) -> batch``.
        batch_size: global micro-batch size.
        keep: ``keep(sample) -> bool`` selects samples (a split), or None for all.
        seed: order and augmentation seed.
        rank: this process's rank.
        world_size: number of processes.
        shuffle_buffer: samples held for shuffling (0: stored order).
        max_batches: stop an epoch after this many batches (None: at the end of the data).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        transform: Callable[[Sample, np.random.Generator], Any],
        collate: Callable[[list[Any]], Any],
        batch_size: int,
        *,
        keep: Callable[[Sample], bool] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 2000,
        max_batches: int | None = None,
    ) -> None:
        _check_split(batch_size, rank, world_size)
        self.dataset = ShardDataset(dataset_dir, shuffle_buffer=shuffle_buffer, seed=seed)
        self.transform, self.collate, self.keep = transform, collate, keep
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size, self.max_batches = rank, world_size, max_batches

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        self.dataset.set_epoch(epoch)
        pending: list[Sample] = []
        b = 0
        for sample in self.dataset:
            if self.keep is not None and not self.keep(sample):
                continue
            pending.append(sample)
            if len(pending) < self.batch_size:
                continue
            if b >= start:
                mine = range(self.rank, self.batch_size, self.world_size)
                items = [
                    self.transform(pending[i], np.random.default_rng([self.seed, epoch, b, i]))
                    for i in mine
                ]
                yield self.collate(items)
            pending = []
            b += 1
            if self.max_batches is not None and b >= self.max_batches:
                return

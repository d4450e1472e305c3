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
from typing import Any, Protocol

import numpy as np

from facexpr.core.errors import ConfigError

__all__ = ["BatchSource", "IndexedBatches", "held_out"]


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

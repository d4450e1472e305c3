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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

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
    """Batches streamed from shard datasets (``facexpr.io.shards``), mixed by ratio.

    Each global batch draws its per-dataset counts from a multinomial with ``weights`` (seeded by
    ``(seed, epoch, b)``), takes that many samples from each dataset's shuffled stream and
    shuffles them together; an epoch ends when any stream runs out. Every process reads the
    whole streams in the same order and keeps its share of each global batch, which costs
    ``world_size`` times the decoding but keeps the DDP and resume rules of the module docstring;
    resuming at batch ``start`` reads past the first ``start`` batches without transforming them.

    Args:
        dataset_dirs: folders with ``manifest.json``.
        transform: ``transform(sample, rng) -> item``.
        collate: ``collate(items) -> batch``.
        batch_size: global micro-batch size.
        weights: mixing ratio per dataset (default: equal); normalised to sum to 1.
        keep: ``keep(sample) -> bool`` selects samples (a split), or None for all.
        seed: order and augmentation seed.
        rank: this process's rank.
        world_size: number of processes.
        shuffle_buffer: samples held for shuffling (0: stored order, no mixing shuffle).
        max_batches: stop an epoch after this many batches (None: when a stream ends).
        on_error: a missing or corrupt shard: 'raise', or 'skip' it (``ShardDataset``'s policy).

    Raises:
        ConfigError: no datasets, weights that do not match them or are not positive.
        InputError: a missing or corrupt dataset (named).
    """

    def __init__(
        self,
        dataset_dirs: Sequence[str | Path],
        transform: Callable[[Sample, np.random.Generator], Any],
        collate: Callable[[list[Any]], Any],
        batch_size: int,
        *,
        weights: Sequence[float] | None = None,
        keep: Callable[[Sample], bool] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 2000,
        max_batches: int | None = None,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        _check_split(batch_size, rank, world_size)
        if not dataset_dirs:
            raise ConfigError("no datasets given (data.shards is empty)")
        weights = [1.0] * len(dataset_dirs) if not weights else [float(w) for w in weights]
        if len(weights) != len(dataset_dirs) or any(w <= 0 for w in weights):
            raise ConfigError(
                f"data.weights {weights} must be one positive ratio per dataset "
                f"({len(dataset_dirs)} given)"
            )
        self.p = np.asarray(weights) / sum(weights)
        self.datasets = [
            ShardDataset(d, shuffle_buffer=shuffle_buffer, seed=seed + 7919 * i, on_error=on_error)
            for i, d in enumerate(dataset_dirs)
        ]
        self.shuffle = shuffle_buffer > 1
        self.transform, self.collate, self.keep = transform, collate, keep
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size, self.max_batches = rank, world_size, max_batches

    def _stream(self, i: int, epoch: int) -> Iterator[Sample]:
        ds = self.datasets[i]
        ds.set_epoch(epoch)
        for sample in ds:
            if self.keep is None or self.keep(sample):
                yield sample

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        streams = [self._stream(i, epoch) for i in range(len(self.datasets))]
        b = 0
        while self.max_batches is None or b < self.max_batches:
            rng = np.random.default_rng([self.seed, epoch, b, 2**31 - 1])
            counts = (
                rng.multinomial(self.batch_size, self.p) if len(streams) > 1 else [self.batch_size]
            )
            pending: list[Sample] = []
            for stream, c in zip(streams, counts, strict=True):
                for _ in range(int(c)):
                    s = next(stream, None)
                    if s is None:
                        return
                    pending.append(s)
            if self.shuffle and len(streams) > 1:
                pending = [pending[j] for j in rng.permutation(len(pending))]
            if b >= start:
                mine = range(self.rank, self.batch_size, self.world_size)
                yield self.collate(
                    [
                        self.transform(pending[i], np.random.default_rng([self.seed, epoch, b, i]))
                        for i in mine
                    ]
                )
            b += 1

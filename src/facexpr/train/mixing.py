"""Random access to shard datasets, and a corpus mixed from several of them by ratio.

:class:`ShardIndex` reads a dataset's tar headers and per-sample JSON once and keeps, per sample,
where its PNG lies in its shard, so any sample is one ``pread`` away: what triplet mining and
indexed, resumable batching (``train.data.IndexedBatches``) need, where
:class:`~facexpr.io.shards.ShardDataset` streams.

:class:`ShardMix` is the pretraining corpus: real faces (UTKFace, FER+, video frames) and
synthetic shards drawn by ratio, e.g. ``{"utk": 0.5, "fer": 0.2, "video": 0.1, "synth": 0.2}``.
Item ``i`` of a mix is a pure function of ``(seed, i)``, so an epoch's order and a resumed run
are reproducible. Images are resized to one ``size`` (FER+ is stored at 48 px, crops at 224).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._checks import BadJSON, loads_json
from facexpr.io.shards import LabelField, Manifest, Sample, decode_png, read_manifest

log = logging.getLogger(__name__)

__all__ = ["ShardIndex", "ShardMix", "resize_square"]


@dataclass(frozen=True, slots=True)
class _Loc:
    shard: int
    offset: int
    size: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resize_square(image: np.ndarray, size: int | None) -> np.ndarray:
    """Returns ``image`` resized to (size, size, 3) (area filter down, linear up), or as is."""
    if size is None or image.shape[:2] == (size, size):
        return image
    import cv2

    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


class ShardIndex:
    """Random access to the samples of one dataset (labels in memory, images read on demand).

    Args:
        dataset_dir: folder with ``manifest.json``.
        subjects: keep only these subject ids (None: all).
        verify: check every shard's sha256 against the manifest while indexing.

    Raises:
        InputError: missing or corrupt manifest, shard, or sample (named).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        *,
        subjects: Collection[str] | None = None,
        verify: bool = True,
    ) -> None:
        self.dir = Path(dataset_dir)
        self.manifest: Manifest = read_manifest(self.dir)
        self.fields: dict[str, LabelField] = {f.name: f for f in self.manifest.fields}
        keep = None if subjects is None else frozenset(subjects)
        self.keys: list[str] = []
        self.subject_ids: list[str] = []
        self.sources: list[str] = []
        self.labels: list[dict[str, Any]] = []
        self._locs: list[_Loc] = []
        self._paths: list[Path] = []
        for si, info in enumerate(self.manifest.shards):
            path = self.dir / info.name
            if not path.is_file():
                raise InputError(path, "shard listed in the manifest is missing")
            if verify and _sha256(path) != info.sha256:
                raise InputError(path, "sha256 does not match the manifest (corrupt shard)")
            self._paths.append(path)
            self._index_shard(si, path, keep)
        log.info("%s: indexed %d samples", self.dir, len(self.keys))

    def _index_shard(self, si: int, path: Path, keep: frozenset[str] | None) -> None:
        try:
            with tarfile.open(path, "r:") as tar:
                pngs: dict[str, _Loc] = {}
                metas: dict[str, bytes] = {}
                for m in tar:
                    if not m.isfile():
                        continue
                    key, _, ext = m.name.partition(".")
                    if ext == "png":
                        pngs[key] = _Loc(si, m.offset_data, m.size)
                    elif ext == "json":
                        f = tar.extractfile(m)
                        metas[key] = f.read() if f is not None else b""
        except (tarfile.TarError, OSError) as e:
            raise InputError(path, f"corrupt shard, not a readable tar ({e})") from e
        for key, raw in metas.items():
            if key not in pngs:
                raise InputError(path, f"sample '{key}' lacks its .png member")
            try:
                meta = loads_json(raw)
            except BadJSON as e:
                raise InputError(path, f"sample '{key}': corrupt JSON ({e})") from None
            subject = str(meta.get("subject_id", ""))
            if keep is not None and subject not in keep:
                continue
            labels: dict[str, Any] = {}
            for name, value in meta.get("labels", {}).items():
                if value is None:
                    continue
                f = self.fields.get(name)
                if f is None:
                    raise InputError(path, f"sample '{key}': label '{name}' is not in the manifest")
                labels[name] = (
                    str(value) if f.dtype == "str" else np.asarray(value, f.dtype).reshape(f.shape)
                )
            self.keys.append(key)
            self.subject_ids.append(subject)
            self.sources.append(str(meta.get("source", "")))
            self.labels.append(labels)
            self._locs.append(pngs[key])

    def __len__(self) -> int:
        return len(self.keys)

    def image(self, i: int) -> np.ndarray:
        """Returns sample ``i``'s (H, W, 3) uint8 RGB crop (read from its shard)."""
        loc = self._locs[i]
        path = self._paths[loc.shard]
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, loc.size, loc.offset)
        finally:
            os.close(fd)
        return decode_png(data, f"{path}:{self.keys[i]}.png")

    def sample(self, i: int) -> Sample:
        """Returns sample ``i`` with its image decoded."""
        return Sample(
            self.keys[i], self.image(i), self.labels[i], self.sources[i], self.subject_ids[i]
        )

    def vectors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(values, present)``: (N, D) float32 of a numeric label flattened (NaN rows
        where absent) and the (N,) bool mask of samples that have it.

        Raises:
            ConfigError: the dataset has no such numeric field.
        """
        f = self.fields.get(name)
        if f is None or f.dtype == "str":
            have = ", ".join(k for k, v in self.fields.items() if v.dtype != "str")
            raise ConfigError(f"{self.manifest.path}: no numeric label '{name}' (has: {have})")
        d = int(np.prod(f.shape)) if f.shape else 1
        out = np.full((len(self), d), np.nan, np.float32)
        present = np.zeros(len(self), bool)
        for i, lab in enumerate(self.labels):
            v = lab.get(name)
            if v is not None:
                out[i] = np.asarray(v, np.float32).reshape(-1)
                present[i] = np.all(np.isfinite(out[i]))
        return out, present


class ShardMix:
    """Samples drawn from several datasets by ratio: the pretraining corpus.

    Item ``i`` picks its dataset with probabilities ``ratios`` and a sample of it, both from
    ``(seed, i)``; within a dataset, samples are visited in a seeded permutation, so over
    ``ratio * n`` draws a dataset's samples repeat only once all were used.

    Args:
        datasets: name -> dataset folder or :class:`ShardIndex`.
        ratios: name -> share (positive; normalised to sum 1). Must name the same datasets.
        n: items per epoch (default: the total number of samples).
        size: side the images are resized to (None: as stored; then all must match).
        seed: draw seed.

    Raises:
        ConfigError: ratios that do not match the datasets or are not positive, bad ``n``/``size``.
    """

    def __init__(
        self,
        datasets: Mapping[str, str | Path | ShardIndex],
        ratios: Mapping[str, float],
        *,
        n: int | None = None,
        size: int | None = 224,
        seed: int = 0,
    ) -> None:
        if set(datasets) != set(ratios):
            raise ConfigError(
                f"ShardMix: ratios name {sorted(ratios)} but the datasets are {sorted(datasets)}"
            )
        if not datasets:
            raise ConfigError("ShardMix: no datasets")
        bad = {k: v for k, v in ratios.items() if not float(v) > 0}
        if bad:
            raise ConfigError(f"ShardMix: ratios must be > 0, got {bad}")
        if size is not None and size < 8:
            raise ConfigError(f"ShardMix: size must be >= 8 px, got {size}")
        self.names: list[str] = sorted(datasets)
        self.indexes: list[ShardIndex] = [
            d if isinstance(d, ShardIndex) else ShardIndex(d)
            for d in (datasets[k] for k in self.names)
        ]
        empty = [k for k, ix in zip(self.names, self.indexes, strict=True) if len(ix) == 0]
        if empty:
            raise ConfigError(f"ShardMix: datasets without samples: {empty}")
        p = np.array([float(ratios[k]) for k in self.names])
        self.ratios = p / p.sum()
        total = sum(len(ix) for ix in self.indexes)
        self.n = total if n is None else int(n)
        if self.n < 1:
            raise ConfigError(f"ShardMix: n must be >= 1, got {n}")
        self.size = size
        self.seed = seed
        rng = np.random.default_rng([seed, 0])
        self._which = rng.choice(len(self.names), size=self.n, p=self.ratios)
        self._pos = np.zeros(self.n, np.int64)
        for d, ix in enumerate(self.indexes):
            at = np.flatnonzero(self._which == d)
            perms = []
            need = len(at)
            r = np.random.default_rng([seed, 1, d])
            while sum(len(q) for q in perms) < need:
                perms.append(r.permutation(len(ix)))
            self._pos[at] = np.concatenate(perms)[:need] if perms else []

    def __len__(self) -> int:
        return self.n

    def counts(self) -> dict[str, int]:
        """Returns how many of the ``n`` items each dataset gives."""
        return {k: int((self._which == d).sum()) for d, k in enumerate(self.names)}

    def source(self, i: int) -> tuple[str, int]:
        """Returns (dataset name, sample index in it) of item ``i``."""
        d = int(self._which[i])
        return self.names[d], int(self._pos[i])

    def __getitem__(self, i: int) -> Sample:
        if not -self.n <= i < self.n:
            raise IndexError(f"ShardMix item {i} out of range ({self.n})")
        d = int(self._which[i])
        s = self.indexes[d].sample(int(self._pos[i]))
        img = resize_square(np.asarray(s.image), self.size)
        return Sample(s.key, img, s.labels, s.source or self.names[d], s.subject_id)

    def images(self, indices: Sequence[int]) -> np.ndarray:
        """Returns (B, size, size, 3) uint8 images of the given items (``size`` must be set)."""
        if self.size is None:
            raise ConfigError("ShardMix.images needs a size to stack images of several datasets")
        return np.stack([np.asarray(self[int(i)].image) for i in indices])

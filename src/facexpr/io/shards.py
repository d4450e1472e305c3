"""The one on-disk format of every facexpr dataset: WebDataset-style tar shards plus a manifest.

A dataset is a folder::

    manifest.json            schema version, creator, counts, label fields, shards with sha256
    shard-000000.tar         samples 0 .. N-1: {key}.png (RGB crop) + {key}.json (labels)
    shard-000001.tar         ...

Why tar shards (WebDataset's layout) and not Parquet: a tar is read front to back with one
sequential read per shard, so it streams from local disk, NFS or object stores alike; the PNG bytes
are stored as they are (no re-encoding, nothing decoded until used); any WebDataset reader can read
the shards, and ``tar tf`` can inspect them. Parquet's column chunks would force loading a whole row
group of images and need pyarrow in every DataLoader worker.

Per-sample JSON::

    {"key": "000000042", "source": "synth:ict", "subject_id": "ict-000017",
     "provenance": {...}, "labels": {"ict_weights": [...53 floats], "emotion": "happiness", ...}}

A label that a sample does not have is **absent** from ``labels`` (or ``null``), never 0: a real
photo may carry an emotion and no rig weights, a synthetic face rig weights and no valence.

Shards are written to ``*.tmp`` and renamed when complete; ``manifest.json`` is written last, so a
crashed build never looks complete. Tar headers carry no time or owner, so the same samples give the
same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tarfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from facexpr.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "LabelField",
    "Manifest",
    "Sample",
    "ShardDataset",
    "ShardInfo",
    "ShardWriter",
    "collate_samples",
    "decode_png",
    "encode_png",
    "read_manifest",
    "subject_split",
]

MANIFEST = "manifest.json"
FORMAT = "facexpr-shards"
SCHEMA_VERSION = 1
Dtype = Literal["float32", "float64", "int32", "int64", "str"]
_DTYPES = ("float32", "float64", "int32", "int64", "str")


@dataclass(frozen=True, slots=True)
class LabelField:
    """One per-sample label: name, shape, dtype and meaning.

    Attributes:
        name: key in the sample's ``labels``.
        shape: array shape, ``()`` for a scalar.
        dtype: 'float32', 'float64', 'int32', 'int64' or 'str' (``shape`` must be ``()``).
        description: meaning and units, written to the manifest for users of the data.
    """

    name: str
    shape: tuple[int, ...]
    dtype: Dtype
    description: str

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"label field '{self.name}': dtype must be one of {_DTYPES}")
        if self.dtype == "str" and self.shape != ():
            raise ConfigError(f"label field '{self.name}': a 'str' field must have shape ()")
        if any(int(d) < 0 for d in self.shape):
            raise ConfigError(f"label field '{self.name}': negative dimension in {self.shape}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a dataset.

    Attributes:
        key: unique id within the dataset, no '.' or '/' (WebDataset groups files by it).
        image: (H, W, 3) uint8 RGB aligned crop (decoded on read; may be PNG bytes when writing).
        labels: field name -> (shape) array or str; a missing label is absent, never 0.
        source: where the sample comes from ('synth:ict', 'ferplus', ...).
        subject_id: identity of the person (or synthetic identity), for subject-exclusive splits.
        provenance: free JSON-able details (seeds, generator version, original file).
    """

    key: str
    image: np.ndarray | bytes
    labels: Mapping[str, Any]
    source: str
    subject_id: str
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One shard file in the manifest: name, sha256 (hex), sample count and size in bytes."""

    name: str
    sha256: str
    n_samples: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A dataset's ``manifest.json``.

    Attributes:
        path: the manifest file.
        schema_version: format version (:data:`SCHEMA_VERSION`).
        created_by: program that wrote the dataset.
        n_samples: total samples.
        shards: the shard files in order.
        fields: the label fields.
        splits: split name -> subject ids in it (may be empty).
        attributes: free JSON-able dataset details (generator options, ...).
    """

    path: Path
    schema_version: int
    created_by: str
    n_samples: int
    shards: tuple[ShardInfo, ...]
    fields: tuple[LabelField, ...]
    splits: dict[str, tuple[str, ...]]
    attributes: dict[str, Any]


def encode_png(image: np.ndarray, compression: int = 3) -> bytes:
    """Returns PNG bytes of an (H, W, 3) uint8 RGB image (deterministic; zlib level 0-9)."""
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"encode_png: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    ok, buf = cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ConfigError("encode_png: OpenCV could not encode the image")
    return buf.tobytes()


def decode_png(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Returns the (H, W, 3) uint8 RGB image of PNG bytes; ``where`` names them in errors."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputError(where, "not a readable PNG image")
    return np.ascontiguousarray(arr[:, :, ::-1])


def _check_key(key: str) -> None:
    if not key or "." in key or "/" in key:
        raise ConfigError(f"sample key '{key}' must be non-empty without '.' or '/'")


def _encode_label(f: LabelField, key: str, value: Any) -> Any:
    if f.dtype == "str":
        if not isinstance(value, str):
            raise ConfigError(f"sample '{key}': label '{f.name}' must be a str, got {value!r}")
        return value
    arr = np.asarray(value)
    if arr.shape != f.shape:
        raise ConfigError(
            f"sample '{key}': label '{f.name}' has shape {arr.shape}, the schema says {f.shape}"
        )
    return arr.astype(f.dtype).tolist()


def _decode_label(f: LabelField, value: Any) -> Any:
    if f.dtype == "str":
        return str(value)
    return np.asarray(value, dtype=f.dtype).reshape(f.shape)


class ShardWriter:
    """Writes samples into tar shards of ``samples_per_shard`` and the manifest on close.

    Use as a context manager; the manifest is written only by a clean ``close()``, so a dataset
    folder with a manifest is complete.

    Args:
        out_dir: dataset folder (created).
        samples_per_shard: samples per shard file (the last may hold fewer).
        schema: the label fields samples may carry.
        created_by: program name written to the manifest.
        attributes: JSON-able dataset details written to the manifest.
        overwrite: replace an existing dataset in ``out_dir``; otherwise that is an error.

    Raises:
        ConfigError: bad options, or ``out_dir`` already holds a dataset and not ``overwrite``.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        samples_per_shard: int,
        schema: Sequence[LabelField],
        created_by: str = "facexpr",
        attributes: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        if samples_per_shard < 1:
            raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        names = [f.name for f in schema]
        if len(set(names)) != len(names):
            raise ConfigError(f"schema has duplicate field names: {names}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = [self.out_dir / MANIFEST, *sorted(self.out_dir.glob("shard-*.tar"))]
        existing = [p for p in existing if p.exists()]
        if existing and not overwrite:
            raise ConfigError(
                f"{self.out_dir}: already holds a dataset ({existing[0].name}); "
                "pass overwrite=True or use another folder"
            )
        for p in existing:
            p.unlink()
        self.samples_per_shard = samples_per_shard
        self.fields = {f.name: f for f in schema}
        self.created_by = created_by
        self.attributes = dict(attributes or {})
        self.splits: dict[str, list[str]] = {}
        self._shards: list[ShardInfo] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._count_in_shard = 0
        self._keys: set[str] = set()
        self._closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def n_samples(self) -> int:
        """Samples written so far."""
        return len(self._keys)

    def set_splits(self, splits: Mapping[str, Collection[str]]) -> None:
        """Records named subject-exclusive splits (name -> subject ids) in the manifest."""
        seen: dict[str, str] = {}
        for name, ids in splits.items():
            for s in ids:
                if s in seen and seen[s] != name:
                    raise ConfigError(f"subject '{s}' is in splits '{seen[s]}' and '{name}'")
                seen[s] = name
        self.splits = {k: sorted(v) for k, v in splits.items()}

    def _add(self, tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    def write(self, sample: Sample) -> None:
        """Appends one sample.

        Raises:
            ConfigError: duplicate or bad key, unknown label field, or a label of the wrong shape.
        """
        if self._closed:
            raise ConfigError(f"{self.out_dir}: write() after close()")
        _check_key(sample.key)
        if sample.key in self._keys:
            raise ConfigError(f"{self.out_dir}: duplicate sample key '{sample.key}'")
        labels: dict[str, Any] = {}
        for name, value in sample.labels.items():
            if name not in self.fields:
                raise ConfigError(
                    f"sample '{sample.key}': label '{name}' is not in the schema "
                    f"({', '.join(self.fields)})"
                )
            if value is not None:
                labels[name] = _encode_label(self.fields[name], sample.key, value)
        png = sample.image if isinstance(sample.image, bytes) else encode_png(sample.image)
        meta = {
            "key": sample.key,
            "source": sample.source,
            "subject_id": sample.subject_id,
            "provenance": dict(sample.provenance),
            "labels": labels,
        }
        if self._tar is None:
            self._tmp = self.out_dir / f"shard-{len(self._shards):06d}.tar.tmp"
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self._count_in_shard = 0
        self._add(self._tar, f"{sample.key}.png", png)
        self._add(self._tar, f"{sample.key}.json", json.dumps(meta).encode())
        self._keys.add(sample.key)
        self._count_in_shard += 1
        if self._count_in_shard >= self.samples_per_shard:
            self._finish_shard()

    def _finish_shard(self) -> None:
        assert self._tar is not None
        assert self._tmp is not None
        self._tar.close()
        final = self._tmp.with_suffix("")  # drop .tmp
        h = hashlib.sha256()
        with open(self._tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        os.replace(self._tmp, final)
        self._shards.append(
            ShardInfo(final.name, h.hexdigest(), self._count_in_shard, final.stat().st_size)
        )
        self._tar, self._tmp = None, None

    def close(self) -> Manifest:
        """Finishes the last shard and writes ``manifest.json``; returns the manifest."""
        if not self._closed:
            if self._tar is not None:
                self._finish_shard()
            data = {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "created_by": self.created_by,
                "n_samples": len(self._keys),
                "n_shards": len(self._shards),
                "image": {"file": "png", "mode": "RGB"},
                "fields": [f.to_json() for f in self.fields.values()],
                "missing": "a label a sample lacks is absent from its 'labels' (or null), never 0",
                "shards": [
                    {
                        "name": s.name,
                        "sha256": s.sha256,
                        "n_samples": s.n_samples,
                        "n_bytes": s.n_bytes,
                    }
                    for s in self._shards
                ],
                "splits": self.splits,
                "attributes": self.attributes,
            }
            tmp = self.out_dir / (MANIFEST + ".tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, self.out_dir / MANIFEST)
            self._closed = True
            log.info("%s: wrote %d samples in %d shards", self.out_dir, len(self._keys),
                     len(self._shards))  # fmt: skip
        return read_manifest(self.out_dir)

    def abort(self) -> None:
        """Drops the unfinished shard and writes no manifest (the folder stays incomplete)."""
        if self._tar is not None:
            self._tar.close()
            with contextlib.suppress(FileNotFoundError):
                assert self._tmp is not None
                self._tmp.unlink()
            self._tar, self._tmp = None, None
        self._closed = True


def read_manifest(dataset_dir: str | Path) -> Manifest:
    """Returns the manifest of a dataset folder.

    Raises:
        InputError: the manifest is missing, not JSON, of another format or version, or lacks keys.
    """
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise InputError(path, "missing: not a facexpr dataset, or its build did not finish")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"corrupt manifest, not valid JSON ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, f"not a facexpr dataset manifest (format is not '{FORMAT}')")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            path,
            f"schema version {data.get('schema_version')} is not supported "
            f"(this facexpr reads {SCHEMA_VERSION})",
        )
    try:
        shards = tuple(
            ShardInfo(s["name"], s["sha256"], int(s["n_samples"]), int(s["n_bytes"]))
            for s in data["shards"]
        )
        fields = tuple(
            LabelField(f["name"], tuple(f["shape"]), f["dtype"], f.get("description", ""))
            for f in data["fields"]
        )
        return Manifest(
            path=path,
            schema_version=int(data["schema_version"]),
            created_by=str(data["created_by"]),
            n_samples=int(data["n_samples"]),
            shards=shards,
            fields=fields,
            splits={k: tuple(v) for k, v in data.get("splits", {}).items()},
            attributes=dict(data.get("attributes", {})),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise InputError(path, f"corrupt manifest, bad or missing entry ({e!r})") from e


def _read_shard(path: Path, info: ShardInfo, verify: bool) -> bytes:
    if not path.is_file():
        raise InputError(path, "shard listed in the manifest is missing")
    data = path.read_bytes()
    if verify:
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise InputError(
                path, f"sha256 mismatch: file has {digest}, manifest says {info.sha256} (corrupt)"
            )
    return data


def iter_shard(
    path: str | Path, fields: Sequence[LabelField], data: bytes | None = None
) -> Iterator[Sample]:
    """Yields the decoded samples of one shard file in stored order.

    Raises:
        InputError: the tar is unreadable, or a sample lacks its .png or .json.
    """
    path = Path(path)
    by_name = {f.name: f for f in fields}
    raw = path.read_bytes() if data is None else data
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")  # noqa: SIM115
        members = tar.getmembers()
    except (tarfile.TarError, OSError) as e:
        raise InputError(path, f"corrupt shard, not a readable tar ({e})") from e
    groups: dict[str, dict[str, bytes]] = {}
    for m in members:
        if not m.isfile():
            continue
        key, _, ext = m.name.partition(".")
        f = tar.extractfile(m)
        assert f is not None
        groups.setdefault(key, {})[ext] = f.read()
    for key, parts in groups.items():
        if "png" not in parts or "json" not in parts:
            raise InputError(path, f"sample '{key}' lacks its .png or .json member")
        try:
            meta = json.loads(parts["json"])
        except json.JSONDecodeError as e:
            raise InputError(path, f"sample '{key}': corrupt JSON ({e})") from e
        labels = {}
        for name, value in meta.get("labels", {}).items():
            if value is None:
                continue
            if name not in by_name:
                raise InputError(path, f"sample '{key}': label '{name}' is not in the manifest")
            labels[name] = _decode_label(by_name[name], value)
        yield Sample(
            key=key,
            image=decode_png(parts["png"], f"{path}:{key}.png"),
            labels=labels,
            source=meta.get("source", ""),
            subject_id=meta.get("subject_id", ""),
            provenance=meta.get("provenance", {}),
        )


class ShardDataset(IterableDataset):
    """Streams a dataset's samples, shuffled across shards, split across workers and ranks.

    Each epoch, the shard order is shuffled with ``(seed, epoch)``; shards are dealt to the
    ``world_size * num_workers`` readers round-robin (rank-major), and each reader shuffles its
    samples through a buffer of ``shuffle_buffer``. Over one epoch, every sample of the selected
    subjects is yielded exactly once by exactly one reader. Call :meth:`set_epoch` per epoch.

    Args:
        dataset_dir: folder with ``manifest.json``.
        shuffle_buffer: samples held for shuffling; 0 or 1 keeps stored order (no shuffle).
        seed: shuffle seed.
        split: name of a split recorded in the manifest; only its subjects are yielded.
        subjects: alternatively, the subject ids to keep.
        rank: this process's rank in distributed training.
        world_size: number of ranks.
        verify: check each shard's sha256 against the manifest when it is read.
        on_error: 'raise' on a missing or corrupt shard, or 'skip' it with a warning (counted
            in ``n_skipped`` of the reading process), as WebDataset's ``handler=``.

    Yields:
        :class:`Sample` with ``image`` decoded to (H, W, 3) uint8 RGB.

    Raises:
        InputError: missing or corrupt manifest or shard (named), sha256 mismatch.
        ConfigError: unknown split name, bad rank/world_size.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        *,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        split: str | None = None,
        subjects: Collection[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        verify: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        super().__init__()
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.n_skipped = 0
        self.dir = Path(dataset_dir)
        self.manifest = read_manifest(self.dir)
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        if split is not None and subjects is not None:
            raise ConfigError("give either split or subjects, not both")
        self.subjects: frozenset[str] | None = None
        if split is not None:
            if split not in self.manifest.splits:
                raise ConfigError(
                    f"{self.manifest.path}: no split '{split}' "
                    f"(has: {', '.join(self.manifest.splits) or 'none'})"
                )
            self.subjects = frozenset(self.manifest.splits[split])
        elif subjects is not None:
            self.subjects = frozenset(subjects)
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.verify = verify
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which changes the shuffle order (same epoch, same order)."""
        self.epoch = epoch

    def _my_shards(self) -> list[ShardInfo]:
        shards = list(self.manifest.shards)
        if self.shuffle_buffer > 1:
            rng = np.random.default_rng([self.seed, self.epoch])
            shards = [shards[i] for i in rng.permutation(len(shards))]
        wi = get_worker_info()
        n_workers, worker = (1, 0) if wi is None else (wi.num_workers, wi.id)
        reader = self.rank * n_workers + worker
        n_readers = self.world_size * n_workers
        if len(shards) < n_readers:
            log.warning(
                "%s: %d shards for %d readers; some readers get no data",
                self.dir, len(shards), n_readers,
            )  # fmt: skip
        return shards[reader::n_readers]

    def _samples(self) -> Iterator[Sample]:
        """Yields this reader's samples in shard order, applying the ``on_error`` policy."""
        for info in self._my_shards():
            path = self.dir / info.name
            try:
                data = _read_shard(path, info, self.verify)
                it = iter_shard(path, self.manifest.fields, data)
                while True:
                    try:
                        sample = next(it)
                    except StopIteration:
                        break
                    yield sample
            except InputError as e:
                if self.on_error == "raise":
                    raise
                self.n_skipped += 1
                log.warning("skipping the rest of a shard: %s", e)

    def __iter__(self) -> Iterator[Sample]:
        wi = get_worker_info()
        worker = 0 if wi is None else wi.id
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])
        buffer: list[Sample] = []
        for sample in self._samples():
            if self.subjects is not None and sample.subject_id not in self.subjects:
                continue
            if self.shuffle_buffer <= 1:
                yield sample
                continue
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], sample = sample, buffer[j]
            yield sample
        order = rng.permutation(len(buffer)) if buffer else []
        for j in order:
            yield buffer[j]


def collate_samples(
    batch: Sequence[Sample], fields: Sequence[LabelField]
) -> dict[str, torch.Tensor | list[Any]]:
    """Returns a training batch of samples, with masks for missing labels.

    Args:
        batch: samples with decoded images of equal size.
        fields: the label fields to stack (``Manifest.fields``).

    Returns:
        ``image``: (B, 3, H, W) uint8; per numeric field ``name``: (B, *shape) float32 or int64
        with NaN (float) or -1 (int) where missing, and ``name_mask``: (B,) bool, True where
        present; per 'str' field a list with ``None`` where missing; ``key``, ``subject_id``:
        lists of str.
    """
    images = np.stack([np.asarray(s.image) for s in batch])
    out: dict[str, torch.Tensor | list[Any]] = {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        "key": [s.key for s in batch],
        "subject_id": [s.subject_id for s in batch],
    }
    for f in fields:
        if f.dtype == "str":
            out[f.name] = [s.labels.get(f.name) for s in batch]
            continue
        is_float = f.dtype.startswith("float")
        arr = np.full(
            (len(batch), *f.shape), np.nan if is_float else -1, np.float32 if is_float else np.int64
        )
        mask = np.zeros(len(batch), bool)
        for i, s in enumerate(batch):
            if f.name in s.labels:
                arr[i] = s.labels[f.name]
                mask[i] = True
        out[f.name] = torch.from_numpy(arr)
        out[f.name + "_mask"] = torch.from_numpy(mask)
    return out


def subject_split(
    subject_ids: Sequence[str], folds: int | Mapping[str, float], seed: int = 0
) -> dict[str, list[str]]:
    """Returns subject-exclusive folds: no subject is in two folds.

    Subjects are shuffled with ``seed`` and dealt greedily to the fold furthest below its target
    share of *samples* (a subject counts as many samples as it appears in ``subject_ids``).

    Args:
        subject_ids: one subject id per sample (repeats allowed), or the unique ids.
        folds: ``k`` for k equal folds named '0'..'k-1', or name -> fraction (summing to 1),
            e.g. ``{"train": 0.8, "val": 0.1, "test": 0.1}``.
        seed: shuffle seed.

    Returns:
        fold name -> sorted subject ids.

    Raises:
        ConfigError: fewer than 2 folds, non-positive fractions, or more folds than subjects.
    """
    if isinstance(folds, int):
        if folds < 2:
            raise ConfigError(f"subject_split: need at least 2 folds, got {folds}")
        shares = {str(i): 1.0 / folds for i in range(folds)}
    else:
        shares = {str(k): float(v) for k, v in folds.items()}
        if len(shares) < 2 or any(v <= 0 for v in shares.values()):
            raise ConfigError(f"subject_split: need >= 2 folds with positive shares, got {folds}")
        total = sum(shares.values())
        shares = {k: v / total for k, v in shares.items()}
    counts: dict[str, int] = {}
    for s in subject_ids:
        counts[s] = counts.get(s, 0) + 1
    uniq = sorted(counts)
    if len(uniq) < len(shares):
        raise ConfigError(f"subject_split: {len(uniq)} subjects cannot fill {len(shares)} folds")
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    n_total = sum(counts.values())
    filled = dict.fromkeys(shares, 0)
    out: dict[str, list[str]] = {k: [] for k in shares}
    for i, s in enumerate(order):
        empty = [k for k in shares if not out[k]]
        if empty and len(order) - i <= len(empty):
            k = empty[0]  # every fold gets at least one subject
        else:
            k = max(shares, key=lambda k: shares[k] * n_total - filled[k])
        out[k].append(s)
        filled[k] += counts[s]
    return {k: sorted(v) for k, v in out.items()}

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

Writing: one writer per folder (:class:`facexpr.io._files.FolderLock`); shards and the manifest
are written to unique temporary files and renamed when complete; ``manifest.json`` is written last,
so a crashed build never looks complete. While a build runs, ``.progress.json`` lists its finished
shards with their sha256, so an interrupted build can be resumed (``resume=True``): the finished
shards are verified and kept and writing continues after them. Tar headers carry no time or owner,
so the same samples give the same bytes, resumed or not.

Reading treats a dataset folder as untrusted: the manifest and every sample JSON are checked
against the schema (errors name the file, the shard member and the key); shards must be plain file
names resolving to regular files inside the folder; shards are streamed member by member (never
read whole), member sizes and image sizes are bounded before anything is decoded.

``ShardDataset`` (a ``torch.utils.data.IterableDataset``) is built on first use, so importing this
module does not import torch; :class:`ShardReader` is the same reader without torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import sys
import tarfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._checks import (
    BadJSON,
    Problem,
    check_int,
    check_list,
    check_obj,
    check_str,
    kind,
    loads_json,
    open_regular,
    read_json_file,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST",
    "MAX_IMAGE_PIXELS",
    "SCHEMA_VERSION",
    "LabelField",
    "Manifest",
    "Sample",
    "ShardDataset",  # noqa: F822 - built on first use by __getattr__
    "ShardInfo",
    "ShardReader",
    "ShardWriter",  # noqa: F822 - facexpr.io.shard_writer, by __getattr__
    "collate_samples",
    "decode_png",
    "encode_png",
    "iter_shard",
    "read_manifest",
    "subject_split",
]

MANIFEST = "manifest.json"
PROGRESS = ".progress.json"
FORMAT = "facexpr-shards"
PROGRESS_FORMAT = "facexpr-shards-progress"
SCHEMA_VERSION = 1
Dtype = Literal["float32", "float64", "int32", "int64", "str"]
_DTYPES = ("float32", "float64", "int32", "int64", "str")

MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image (width x height) a shard may hold; checked in the PNG header before decoding."""
MAX_PNG_BYTES = 64 << 20
"""Largest ``.png`` member of a shard, bytes."""
MAX_JSON_BYTES = 4 << 20
"""Largest ``.json`` member of a shard, bytes."""
MAX_LABEL_VALUES = 1 << 20
"""Most values one label field may hold (product of its shape)."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SHA256_HEX = frozenset("0123456789abcdef")


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
        if int(np.prod(self.shape, dtype=np.float64)) > MAX_LABEL_VALUES:
            raise ConfigError(
                f"label field '{self.name}': shape {self.shape} holds more than "
                f"{MAX_LABEL_VALUES} values"
            )

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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "n_samples": self.n_samples,
            "n_bytes": self.n_bytes,
        }


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


def png_size(data: bytes, where: str = "<bytes>") -> tuple[int, int]:
    """Returns (width, height) in px from a PNG's IHDR header, without decoding the image.

    Raises:
        InputError: the bytes do not start with a PNG signature and IHDR chunk.
    """
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise InputError(where, "not a readable PNG image (no PNG signature and IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def decode_png(
    data: bytes, where: str = "<bytes>", max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Returns the (H, W, 3) uint8 RGB image of PNG bytes; ``where`` names them in errors.

    The size in the PNG header is checked against ``max_pixels`` before decoding, so a small file
    claiming a huge image (a decompression bomb) is refused without allocating it.

    Raises:
        InputError: not a PNG, an empty or too large image, or undecodable data.
    """
    import cv2

    width, height = png_size(data, where)
    if width == 0 or height == 0:
        raise InputError(where, f"PNG image of {width}x{height} px is empty")
    if width * height > max_pixels:
        raise InputError(
            where,
            f"PNG image of {width}x{height} px is larger than the {max_pixels}-pixel limit "
            "(a decompression bomb, or not a face crop); refused before decoding",
        )
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None or arr.shape[:2] != (height, width):
        raise InputError(where, "not a readable PNG image (corrupt image data)")
    return np.ascontiguousarray(arr[:, :, ::-1])


def _check_key(key: str) -> None:
    if not key or "." in key or "/" in key or "\\" in key or "\x00" in key:
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
    """Returns a label value checked against its field; raises ValueError with the problem."""
    if f.dtype == "str":
        if not isinstance(value, str):
            raise ValueError(f"label '{f.name}' must be a string, got {kind(value)}")
        return value
    if isinstance(value, str | dict | bool):
        raise ValueError(f"label '{f.name}' must be numbers of shape {f.shape}, got {kind(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"label '{f.name}' is not an array of shape {f.shape} ({e})") from None
    allowed = "iu" if f.dtype.startswith("int") else "iuf"
    if arr.dtype.kind not in allowed:
        what = "integers" if allowed == "iu" else "numbers"
        raise ValueError(
            f"label '{f.name}' must hold {what} ({f.dtype}), not {arr.dtype.name} values"
        )
    if arr.shape != f.shape:
        raise ValueError(f"label '{f.name}' has shape {arr.shape}, the manifest says {f.shape}")
    if allowed == "iu" and arr.size:
        info = np.iinfo(f.dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise ValueError(f"label '{f.name}' has values outside the {f.dtype} range")
    return arr.astype(f.dtype)


# --- reading, with a dataset folder treated as untrusted ---------------------------------------


def _shard_name_problem(name: str) -> str | None:
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
    ):
        return "must be a plain file name inside the dataset folder (no '/', '..' or absolute path)"
    return None


def _parse_shards(value: Any, key: str = "'shards'") -> tuple[ShardInfo, ...]:
    out: list[ShardInfo] = []
    seen: set[str] = set()
    for i, s in enumerate(check_list(value, key)):
        where = f"{key}[{i}]"
        s = check_obj(s, where)
        for k in ("name", "sha256", "n_samples", "n_bytes"):
            if k not in s:
                raise Problem(f"{where} lacks '{k}'")
        name = check_str(s["name"], f"{where}.name")
        problem = _shard_name_problem(name)
        if problem:
            raise Problem(f"{where}.name {name!r} {problem}")
        if name in seen:
            raise Problem(f"{where}.name {name!r} is listed twice")
        seen.add(name)
        digest = check_str(s["sha256"], f"{where}.sha256")
        if len(digest) != 64 or not set(digest) <= _SHA256_HEX:
            raise Problem(f"{where}.sha256 must be 64 lowercase hex digits")
        out.append(
            ShardInfo(
                name,
                digest,
                check_int(s["n_samples"], f"{where}.n_samples"),
                check_int(s["n_bytes"], f"{where}.n_bytes"),
            )
        )
    return tuple(out)


def _parse_fields(value: Any) -> tuple[LabelField, ...]:
    out: list[LabelField] = []
    for i, f in enumerate(check_list(value, "'fields'")):
        where = f"'fields'[{i}]"
        f = check_obj(f, where)
        for k in ("name", "shape", "dtype"):
            if k not in f:
                raise Problem(f"{where} lacks '{k}'")
        name = check_str(f["name"], f"{where}.name")
        shape = tuple(
            check_int(d, f"{where}.shape[{j}]")
            for j, d in enumerate(check_list(f["shape"], f"{where}.shape"))
        )
        if len(shape) > 8:
            raise Problem(f"{where}.shape has {len(shape)} dimensions (at most 8)")
        dtype = check_str(f["dtype"], f"{where}.dtype")
        description = check_str(f.get("description", ""), f"{where}.description")
        try:
            out.append(LabelField(name, shape, dtype, description))  # type: ignore[arg-type]
        except ConfigError as e:
            raise Problem(f"{where}: {e}") from None
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise Problem(f"'fields' has duplicate names: {names}")
    return tuple(out)


def _parse_splits(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise Problem(
            f"'splits' must be an object (split name -> list of subject ids), got {kind(value)}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for name, ids in value.items():
        ids = check_list(ids, f"'splits'.{name}")
        out[name] = tuple(check_str(s, f"'splits'.{name}[{j}]") for j, s in enumerate(ids))
    return out


def read_manifest(dataset_dir: str | Path) -> Manifest:
    """Returns the manifest of a dataset folder, checked against the schema.

    Raises:
        InputError: the manifest is missing, not a regular file, too large, not JSON, of another
            format or version, or an entry is missing or of the wrong type (the message names it).
    """
    path = Path(dataset_dir) / MANIFEST
    if not os.path.lexists(path):
        raise InputError(path, "missing: not a facexpr dataset, or its build did not finish")
    data = read_json_file(path, "manifest")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, f"not a facexpr dataset manifest (format is not '{FORMAT}')")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            path,
            f"schema version {data.get('schema_version')} is not supported "
            f"(this facexpr reads {SCHEMA_VERSION})",
        )
    try:
        for k in ("created_by", "n_samples", "shards", "fields"):
            if k not in data:
                raise Problem(f"lacks '{k}'")
        shards = _parse_shards(data["shards"])
        n_samples = check_int(data["n_samples"], "'n_samples'")
        if n_samples != sum(s.n_samples for s in shards):
            raise Problem(
                f"'n_samples' is {n_samples} but the shards hold {sum(s.n_samples for s in shards)}"
            )
        if "n_shards" in data and check_int(data["n_shards"], "'n_shards'") != len(shards):
            raise Problem(f"'n_shards' is {data['n_shards']} but {len(shards)} shards are listed")
        return Manifest(
            path=path,
            schema_version=SCHEMA_VERSION,
            created_by=check_str(data["created_by"], "'created_by'"),
            n_samples=n_samples,
            shards=shards,
            fields=_parse_fields(data["fields"]),
            splits=_parse_splits(data.get("splits", {})),
            attributes=check_obj(data.get("attributes", {}), "'attributes'"),
        )
    except Problem as e:
        raise InputError(path, f"corrupt manifest, bad or missing entry: {e}") from None


def shard_path(dataset_dir: str | Path, info: ShardInfo) -> Path:
    """Returns the path of a manifest's shard, confined to the dataset folder.

    Raises:
        InputError: the name is not a plain file name, or it resolves (through a symbolic link)
            to a file outside the dataset folder.
    """
    folder = Path(dataset_dir)
    path = folder / info.name
    problem = _shard_name_problem(info.name)
    if problem:
        raise InputError(folder / MANIFEST, f"shard name {info.name!r} {problem}")
    try:
        root = folder.resolve()
        real = path.resolve()
    except (OSError, RuntimeError) as e:  # a link loop (RuntimeError before Python 3.13)
        raise InputError(path, f"cannot be resolved ({e}); never read") from None
    if real.parent != root:
        raise InputError(
            path,
            "is a symbolic link to a file outside the dataset folder; shards must be inside it "
            "(never read)",
        )
    return real


def _open_shard(dataset_dir: Path, info: ShardInfo, verify: bool) -> IO[bytes]:
    """Opens a confined shard; with ``verify``, checks its size and sha256 first."""
    path = shard_path(dataset_dir, info)
    shown = dataset_dir / info.name
    if not os.path.lexists(path):
        raise InputError(shown, "shard listed in the manifest is missing")
    fh = open_regular(path, "shard", follow=False)
    try:
        if verify:
            size = os.fstat(fh.fileno()).st_size
            if size != info.n_bytes:
                raise InputError(
                    shown,
                    f"has {size} bytes, the manifest says {info.n_bytes} (truncated or changed)",
                )
            h = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
            if h.hexdigest() != info.sha256:
                raise InputError(
                    shown,
                    f"sha256 mismatch: file has {h.hexdigest()}, manifest says {info.sha256} "
                    "(corrupt)",
                )
            fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


def _iter_groups(path: Path, fh: IO[bytes]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yields (key, {'png': bytes, 'json': bytes}) per sample, streaming the tar member by member.

    Members of one sample must be consecutive (WebDataset's rule); members with other extensions
    are skipped unread; sizes are checked before reading.
    """
    try:
        tar = tarfile.open(fileobj=fh, mode="r|")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(path, f"corrupt shard, not a readable tar ({e})") from e
    limits = {"png": MAX_PNG_BYTES, "json": MAX_JSON_BYTES}
    key: str | None = None
    parts: dict[str, bytes] = {}
    done: set[str] = set()
    members = iter(tar)
    while True:
        try:
            m = next(members)
        except StopIteration:
            break
        except (tarfile.TarError, OSError, EOFError, UnicodeError) as e:
            raise InputError(path, f"corrupt shard, not a readable tar ({e})") from e
        if not m.isfile():
            continue
        k, dot, ext = m.name.partition(".")
        if not dot or not k or "/" in k or "\\" in k:
            raise InputError(path, f"member {m.name!r} is not named KEY.EXT with a plain key")
        if k != key:
            if key is not None:
                yield key, parts
                done.add(key)
            if k in done:
                raise InputError(path, f"sample '{k}': its members are not next to each other")
            key, parts = k, {}
        if ext not in limits:
            continue
        if m.size > limits[ext]:
            raise InputError(
                f"{path}:{m.name}",
                f"member of {m.size} bytes is larger than the {limits[ext]}-byte limit of a "
                f".{ext} member; refused",
            )
        if ext in parts:
            raise InputError(path, f"sample '{k}' has two .{ext} members")
        try:
            f = tar.extractfile(m)
            parts[ext] = f.read() if f is not None else b""
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InputError(f"{path}:{m.name}", f"unreadable member ({e})") from e
    if key is not None:
        yield key, parts


def _parse_meta(path: Path, key: str, parts: dict[str, bytes]) -> dict[str, Any]:
    if "png" not in parts or "json" not in parts:
        raise InputError(path, f"sample '{key}' lacks its .png or .json member")
    where = f"{path}:{key}.json"
    try:
        meta = loads_json(parts["json"])
    except BadJSON as e:
        raise InputError(where, f"sample '{key}': corrupt JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(where, f"sample '{key}': must be a JSON object, got {kind(meta)}")
    if "key" in meta and meta["key"] != key:
        raise InputError(where, f"sample '{key}': its JSON says key {meta['key']!r}")
    for k in ("source", "subject_id"):
        if not isinstance(meta.get(k, ""), str):
            raise InputError(where, f"sample '{key}': '{k}' must be a string, got {kind(meta[k])}")
    for k in ("provenance", "labels"):
        if meta.get(k) is None:
            meta[k] = {}
        if not isinstance(meta[k], dict):
            raise InputError(where, f"sample '{key}': '{k}' must be an object, got {kind(meta[k])}")
    return meta


def _make_sample(
    path: Path, key: str, parts: dict[str, bytes], by_name: Mapping[str, LabelField]
) -> Sample:
    meta = _parse_meta(path, key, parts)
    labels = {}
    for name, value in meta["labels"].items():
        if value is None:
            continue
        if name not in by_name:
            raise InputError(
                f"{path}:{key}.json", f"sample '{key}': label '{name}' is not in the manifest"
            )
        try:
            labels[name] = _decode_label(by_name[name], value)
        except ValueError as e:
            raise InputError(f"{path}:{key}.json", f"sample '{key}': {e}") from None
    return Sample(
        key=key,
        image=decode_png(parts["png"], f"{path}:{key}.png"),
        labels=labels,
        source=meta.get("source", ""),
        subject_id=meta.get("subject_id", ""),
        provenance=meta["provenance"],
    )


def iter_shard(
    path: str | Path, fields: Sequence[LabelField], *, fileobj: IO[bytes] | None = None
) -> Iterator[Sample]:
    """Yields the decoded samples of one shard file in stored order, streaming it.

    Args:
        path: the shard (named in errors; opened when ``fileobj`` is not given).
        fields: the label fields of the dataset.
        fileobj: an open binary file of the shard, read from its current position.

    Raises:
        InputError: the tar is unreadable, a member is too large or misnamed, a sample lacks its
            .png or .json, its JSON does not match the schema, or its image is not a PNG within
            :data:`MAX_IMAGE_PIXELS`.
    """
    path = Path(path)
    by_name = {f.name: f for f in fields}
    if fileobj is None:
        with open_regular(path, "shard") as fh:
            for key, parts in _iter_groups(path, fh):
                yield _make_sample(path, key, parts, by_name)
        return
    for key, parts in _iter_groups(path, fileobj):
        yield _make_sample(path, key, parts, by_name)


def _worker() -> tuple[int, int]:
    """Returns (number of DataLoader workers, this worker's id); (1, 0) outside a worker."""
    data = sys.modules.get("torch.utils.data")  # a worker has imported torch; never import it here
    wi = data.get_worker_info() if data is not None else None
    return (1, 0) if wi is None else (wi.num_workers, wi.id)


class ShardReader:
    """Streams a dataset's samples, shuffled across shards, split across workers and ranks.

    Each epoch, the shard order is shuffled with ``(seed, epoch)``; shards are dealt to the
    ``world_size * num_workers`` readers round-robin (rank-major), and each reader shuffles its
    samples through a buffer of ``shuffle_buffer``. Over one epoch, every sample of the selected
    subjects is yielded exactly once by exactly one reader. Call :meth:`set_epoch` per epoch.

    :class:`ShardDataset` is this reader as a ``torch.utils.data.IterableDataset`` (for a
    ``DataLoader``); this class itself needs no torch.

    Args:
        dataset_dir: folder with ``manifest.json``.
        shuffle_buffer: samples held for shuffling; 0 or 1 keeps stored order (no shuffle).
        seed: shuffle seed.
        split: name of a split recorded in the manifest; only its subjects are yielded.
        subjects: alternatively, the subject ids to keep.
        rank: this process's rank in distributed training.
        world_size: number of ranks.
        verify: check each shard's size and sha256 against the manifest before reading it.
        on_error: 'raise' on a missing or corrupt shard, or 'skip' it with a warning (counted
            in ``n_skipped`` of the reading process), as WebDataset's ``handler=``.

    Yields:
        :class:`Sample` with ``image`` decoded to (H, W, 3) uint8 RGB.

    Raises:
        InputError: missing or corrupt manifest or shard (named), a shard outside the folder,
            sha256 mismatch, a sample that does not match the schema (shard, member and key named).
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
        n_workers, worker = _worker()
        reader = self.rank * n_workers + worker
        n_readers = self.world_size * n_workers
        if len(shards) < n_readers:
            log.warning(
                "%s: %d shards for %d readers; some readers get no data",
                self.dir, len(shards), n_readers,
            )  # fmt: skip
        return shards[reader::n_readers]

    def _shard_samples(self, info: ShardInfo) -> Iterator[Sample]:
        shown = self.dir / info.name
        with _open_shard(self.dir, info, self.verify) as fh:
            n = 0
            for sample in iter_shard(shown, self.manifest.fields, fileobj=fh):
                n += 1
                yield sample
        if n != info.n_samples:
            raise InputError(shown, f"holds {n} samples, the manifest says {info.n_samples}")

    def _samples(self) -> Iterator[Sample]:
        """Yields this reader's samples in shard order, applying the ``on_error`` policy."""
        for info in self._my_shards():
            try:
                yield from self._shard_samples(info)
            except InputError as e:
                if self.on_error == "raise":
                    raise
                self.n_skipped += 1
                log.warning("skipping the rest of a shard: %s", e)

    def __iter__(self) -> Iterator[Sample]:
        _, worker = _worker()
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


def _torch_dataset() -> type:
    from torch.utils.data import IterableDataset

    class ShardDataset(ShardReader, IterableDataset):
        __doc__ = (ShardReader.__doc__ or "").replace(
            ":class:`ShardDataset` is this reader as a", "This is :class:`ShardReader` as a"
        )

    ShardDataset.__module__ = __name__
    ShardDataset.__qualname__ = "ShardDataset"
    return ShardDataset


def __getattr__(name: str) -> Any:
    # ShardDataset subclasses torch's IterableDataset: build it on first use, so that importing
    # facexpr.io.shards (analyze, dataset info) never imports torch. ShardWriter lives in
    # facexpr.io.shard_writer (which imports this module).
    if name == "ShardDataset":
        cls = _torch_dataset()
        globals()[name] = cls
        return cls
    if name == "ShardWriter":
        from facexpr.io.shard_writer import ShardWriter

        return ShardWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    import torch

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

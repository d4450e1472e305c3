"""Writing facexpr datasets: :class:`ShardWriter` (the format is described in
:mod:`facexpr.io.shards`).

One writer per folder (:class:`facexpr.io._files.FolderLock`, held from construction to close);
every file is written to a unique temporary name (``O_EXCL``, never through a planted link) and
renamed when complete; the manifest comes last. While a build runs, ``.progress.json`` lists its
finished shards with their sha256, so an interrupted build is resumed (``resume=True``) from its
verified shards and gives the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tarfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._checks import Problem, check_obj, read_json_file
from facexpr.io._files import FolderLock, commit_temp, unique_temp, write_text_atomic
from facexpr.io.shards import (
    FORMAT,
    MANIFEST,
    PROGRESS,
    PROGRESS_FORMAT,
    SCHEMA_VERSION,
    LabelField,
    Manifest,
    Sample,
    ShardInfo,
    _check_key,
    _encode_label,
    _iter_groups,
    _open_shard,
    _parse_meta,
    _parse_shards,
    encode_png,
    read_manifest,
)

log = logging.getLogger(__name__)

__all__ = ["ShardWriter"]


def _json_normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Returns the key path where two JSON values first differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else k)
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return (
        None if a == b else f"{where or 'settings'}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}"
    )


class ShardWriter:
    """Writes samples into tar shards of ``samples_per_shard`` and the manifest on close.

    Use as a context manager; the manifest is written only by a clean ``close()``, so a dataset
    folder with a manifest is complete. The writer holds ``out_dir``'s :class:`FolderLock` from
    construction to ``close()``/``abort()``: a second writer into the same folder is refused.

    Args:
        out_dir: dataset folder (created).
        samples_per_shard: samples per shard file (the last may hold fewer).
        schema: the label fields samples may carry.
        created_by: program name written to the manifest.
        attributes: JSON-able dataset details written to the manifest.
        overwrite: replace an existing dataset in ``out_dir``; otherwise that is an error.
        resume: continue an interrupted build with the same settings: its finished shards are
            verified (size, sha256, samples) and kept, and :attr:`n_samples` samples are already
            written; the caller writes the rest, in the same order. A finished dataset with the
            same settings is kept whole.

    Raises:
        ConfigError: bad options; ``out_dir`` already holds a dataset and neither ``overwrite``
            nor ``resume``; ``resume`` with other settings than the interrupted build's.
        InputError: another run is writing into ``out_dir``.
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
        resume: bool = False,
    ) -> None:
        if samples_per_shard < 1:
            raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        if overwrite and resume:
            raise ConfigError("give either overwrite or resume, not both")
        names = [f.name for f in schema]
        if len(set(names)) != len(names):
            raise ConfigError(f"schema has duplicate field names: {names}")
        self.out_dir = Path(out_dir)
        self.samples_per_shard = samples_per_shard
        self.fields = {f.name: f for f in schema}
        self.created_by = created_by
        self.attributes = _json_normal(dict(attributes or {}))
        self.splits: dict[str, list[str]] = {}
        self._shards: list[ShardInfo] = []
        self._tar: tarfile.TarFile | None = None
        self._fh: IO[bytes] | None = None
        self._tmp: Path | None = None
        self._count_in_shard = 0
        self._keys: set[str] = set()
        self.resumed_subjects: list[str] = []
        self._closed = False
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(self.out_dir, "is not a folder; a dataset is written into a folder")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(
                self.out_dir, f"cannot create the dataset folder ({e.strerror})"
            ) from e
        self._lock = FolderLock(self.out_dir, created_by).acquire()
        try:
            self._prepare(overwrite, resume)
        except BaseException:
            self._lock.release()
            raise

    # -- folder state ---------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {
            "created_by": self.created_by,
            "samples_per_shard": self.samples_per_shard,
            "fields": [f.to_json() for f in self.fields.values()],
            "attributes": self.attributes,
        }

    def _prepare(self, overwrite: bool, resume: bool) -> None:
        d = self.out_dir
        for p in d.iterdir():  # temporary files of an interrupted run (we hold the lock)
            if p.name.startswith((".shard-", f".{MANIFEST}.", f"{PROGRESS}.")) and p.name.endswith(
                ".tmp"
            ):
                with contextlib.suppress(OSError):
                    p.unlink()
        manifest, progress = d / MANIFEST, d / PROGRESS
        shards = sorted(d.glob("shard-*.tar"))
        finished = os.path.lexists(manifest)
        existing = finished or os.path.lexists(progress) or bool(shards)
        if not existing:
            return
        if overwrite:
            for p in [manifest, progress, *shards]:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            return
        if not resume:
            if finished:
                raise ConfigError(
                    f"{d}: already holds a dataset ({MANIFEST}); choose another folder, or "
                    "replace it (--overwrite; overwrite=True in Python)"
                )
            raise ConfigError(
                f"{d}: holds an unfinished dataset (an interrupted run); continue it (--resume; "
                "resume=True in Python) or replace it (--overwrite; overwrite=True in Python)"
            )
        self._resume(finished)

    def _resume(self, finished: bool) -> None:
        d = self.out_dir
        if finished:
            m = read_manifest(d)
            state = {
                "created_by": m.created_by,
                "samples_per_shard": None,  # not recorded in a manifest; the shards show it
                "fields": [f.to_json() for f in m.fields],
                "attributes": m.attributes,
            }
            listed = list(m.shards)
            self.splits = {k: list(v) for k, v in m.splits.items()}
            where = d / MANIFEST
        else:
            where = d / PROGRESS
            if not os.path.lexists(where):
                raise ConfigError(
                    f"{d}: holds shard files but no {MANIFEST} or {PROGRESS}; it cannot be "
                    "resumed: replace it (--overwrite; overwrite=True in Python)"
                )
            data = read_json_file(where, "progress record")
            try:
                data = check_obj(data, "the progress record")
                if data.get("format") != PROGRESS_FORMAT:
                    raise Problem(f"format is not '{PROGRESS_FORMAT}'")
                state = check_obj(data.get("settings"), "'settings'")
                listed = list(_parse_shards(data.get("shards"), "'shards'"))
            except Problem as e:
                raise InputError(where, f"corrupt progress record: {e}") from None
        mine = self._settings()
        if finished:
            state["samples_per_shard"] = mine["samples_per_shard"]
        diff = _first_difference(state, mine)
        if diff is not None:
            raise ConfigError(
                f"{d}: cannot resume, the dataset there was written with other settings "
                f"({diff}); use the same options, another folder, or --overwrite"
            )
        kept: list[ShardInfo] = []
        for i, info in enumerate(listed):
            if info.name != f"shard-{i:06d}.tar":
                log.warning("%s: listed as shard %d; it and what follows are written again",
                            info.name, i)  # fmt: skip
                break
            try:
                keys, subjects = self._verify_shard(info)
            except InputError as e:
                log.warning("%s: not kept, written again: %s", info.name, e)
                break
            kept.append(info)
            self._keys.update(keys)
            self.resumed_subjects.extend(subjects)
        if finished and len(kept) != len(listed):
            with contextlib.suppress(FileNotFoundError):
                (d / MANIFEST).unlink()
        names = {s.name for s in kept}
        for p in d.glob("shard-*.tar"):
            if p.name not in names:
                p.unlink()
        self._shards = kept
        if not finished or len(kept) != len(listed):
            self._write_progress()
        log.info("%s: resuming after %d samples in %d shards", d, len(self._keys), len(kept))

    def _verify_shard(self, info: ShardInfo) -> tuple[list[str], list[str]]:
        path = self.out_dir / info.name
        keys, subjects = [], []
        with _open_shard(self.out_dir, info, verify=True) as fh:
            for key, parts in _iter_groups(path, fh):
                meta = _parse_meta(path, key, parts)
                keys.append(key)
                subjects.append(meta.get("subject_id", ""))
        if len(keys) != info.n_samples:
            raise InputError(path, f"holds {len(keys)} samples, the record says {info.n_samples}")
        return keys, subjects

    def _write_progress(self) -> None:
        data = {
            "format": PROGRESS_FORMAT,
            "settings": self._settings(),
            "shards": [s.to_json() for s in self._shards],
        }
        write_text_atomic(self.out_dir / PROGRESS, json.dumps(data, indent=1) + "\n")

    # -- writing --------------------------------------------------------------------------------

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def n_samples(self) -> int:
        """Samples written so far (including those kept by ``resume``)."""
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
            final = self.out_dir / f"shard-{len(self._shards):06d}.tar"
            self._tmp = unique_temp(final)
            self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in _finish_shard/abort
            self._tar = tarfile.open(fileobj=self._fh, mode="w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self._count_in_shard = 0
        self._add(self._tar, f"{sample.key}.png", png)
        self._add(self._tar, f"{sample.key}.json", json.dumps(meta).encode())
        self._keys.add(sample.key)
        self._count_in_shard += 1
        if self._count_in_shard >= self.samples_per_shard:
            self._finish_shard()

    def _finish_shard(self) -> None:
        assert self._tar is not None
        assert self._fh is not None
        assert self._tmp is not None
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        name = f"shard-{len(self._shards):06d}.tar"
        h = hashlib.sha256()
        with open(self._tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        size = self._tmp.stat().st_size
        commit_temp(self._tmp, self.out_dir / name)
        self._shards.append(ShardInfo(name, h.hexdigest(), self._count_in_shard, size))
        self._tar, self._fh, self._tmp = None, None, None
        self._write_progress()

    def close(self) -> Manifest:
        """Finishes the last shard and writes ``manifest.json``; returns the manifest."""
        if not self._closed:
            try:
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
                    "missing": "a label a sample lacks is absent from its 'labels' (or null), "
                    "never 0",
                    "shards": [s.to_json() for s in self._shards],
                    "splits": self.splits,
                    "attributes": self.attributes,
                }
                write_text_atomic(self.out_dir / MANIFEST, json.dumps(data, indent=1) + "\n")
                with contextlib.suppress(FileNotFoundError):
                    (self.out_dir / PROGRESS).unlink()
                self._closed = True
                log.info("%s: wrote %d samples in %d shards", self.out_dir, len(self._keys),
                         len(self._shards))  # fmt: skip
            finally:
                if not self._closed:
                    self.abort()
                self._lock.release()
        return read_manifest(self.out_dir)

    def abort(self) -> None:
        """Drops the unfinished shard and writes no manifest; finished shards and the progress
        record stay, so the build can be resumed."""
        if self._tar is not None:
            with contextlib.suppress(Exception):
                self._tar.close()
            if self._fh is not None:
                self._fh.close()
            with contextlib.suppress(FileNotFoundError):
                assert self._tmp is not None
                self._tmp.unlink()
            self._tar, self._fh, self._tmp = None, None, None
        self._closed = True
        self._lock.release()

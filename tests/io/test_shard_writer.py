"""Tests of ShardWriter: one writer per folder, temporary files never through links, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._files import FolderLock
from facexpr.io.shard_writer import ShardWriter
from facexpr.io.shards import LabelField, Sample, ShardReader, read_manifest

SCHEMA = [LabelField("w", (2,), "float32", "weights")]


def _samples(n: int) -> list[Sample]:
    rng = np.random.default_rng(3)
    return [
        Sample(
            f"{i:04d}",
            rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
            {"w": rng.random(2).astype(np.float32)},
            "test",
            f"s{i % 4}",
        )
        for i in range(n)
    ]


def _writer(d: Path, **kw) -> ShardWriter:
    kw.setdefault("attributes", {"seed": 1})
    return ShardWriter(d, samples_per_shard=3, schema=SCHEMA, created_by="test", **kw)


def _write_all(d: Path, n: int = 10) -> None:
    with _writer(d) as w:
        for s in _samples(n):
            w.write(s)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_planted_links_at_old_temp_names_are_not_followed(tmp_path: Path) -> None:
    d, victim = tmp_path / "ds", tmp_path / "victim.txt"
    victim.write_text("keep me")
    d.mkdir()
    for name in ("shard-000000.tar.tmp", "manifest.json.tmp", ".progress.json.tmp"):
        os.symlink(victim, d / name)
    _write_all(d)
    assert victim.read_text() == "keep me"
    assert read_manifest(d).n_samples == 10
    assert len(list(ShardReader(d, shuffle_buffer=0))) == 10


def test_a_second_writer_into_the_folder_is_refused(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.write(_samples(1)[0])
    with pytest.raises(InputError, match=r"another run \(pid \d+\) is writing into this folder"):
        _writer(tmp_path, overwrite=True)
    w.close()
    _writer(tmp_path, overwrite=True).close()  # the lock went with close()
    assert read_manifest(tmp_path).n_samples == 0


def test_a_held_folder_lock_refuses_the_writer(tmp_path: Path) -> None:
    with FolderLock(tmp_path, "other"), pytest.raises(InputError, match="another run"):
        _writer(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def _interrupt(d: Path, after: int) -> None:
    """Writes ``after`` samples and stops as an interrupted run does (``__exit__`` on Ctrl-C)."""
    w = _writer(d)
    for s in _samples(10)[:after]:
        w.write(s)
    w.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)


def test_resume_gives_the_bytes_of_an_uninterrupted_run(tmp_path: Path) -> None:
    _write_all(tmp_path / "ref")
    d = tmp_path / "ds"
    _interrupt(d, after=7)
    assert not (d / "manifest.json").exists()
    assert sorted(p.name for p in d.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ConfigError, match=r"holds an unfinished dataset .*--resume"):
        _writer(d)
    with _writer(d, resume=True) as w:
        assert w.n_samples == 6
        assert w.resumed_subjects == [s.subject_id for s in _samples(6)]
        for s in _samples(10)[w.n_samples :]:
            w.write(s)
    assert _files(d) == _files(tmp_path / "ref")
    # resuming a finished dataset keeps it as it is
    with _writer(d, resume=True) as w:
        assert w.n_samples == 10
    assert _files(d) == _files(tmp_path / "ref")


def test_resume_rewrites_a_damaged_shard_and_what_follows(tmp_path: Path) -> None:
    _write_all(tmp_path / "ref")
    d = tmp_path / "ds"
    _interrupt(d, after=9)
    p = d / "shard-000001.tar"
    data = bytearray(p.read_bytes())
    data[700] ^= 0xFF
    p.write_bytes(bytes(data))
    (d / ".shard-000003.tar.leftover.tmp").write_bytes(b"x")  # a killed run's temporary file
    with _writer(d, resume=True) as w:
        assert w.n_samples == 3
        for s in _samples(10)[3:]:
            w.write(s)
    assert _files(d) == _files(tmp_path / "ref")


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    _interrupt(tmp_path, after=4)
    with pytest.raises(ConfigError, match=r"other settings \(attributes\.seed: 1 -> 2\)"):
        _writer(tmp_path, resume=True, attributes={"seed": 2})
    with pytest.raises(ConfigError, match=r"other settings \(samples_per_shard: 3 -> 4\)"):
        ShardWriter(tmp_path, samples_per_shard=4, schema=SCHEMA, created_by="test",
                    attributes={"seed": 1}, resume=True)  # fmt: skip
    with pytest.raises(ConfigError, match="either overwrite or resume"):
        _writer(tmp_path, resume=True, overwrite=True)


def test_resume_without_a_progress_record_is_refused(tmp_path: Path) -> None:
    _interrupt(tmp_path, after=4)
    (tmp_path / ".progress.json").unlink()
    with pytest.raises(ConfigError, match=r"no manifest\.json or \.progress\.json; it cannot be"):
        _writer(tmp_path, resume=True)
    (tmp_path / ".progress.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(InputError, match=r"\.progress\.json: corrupt progress record: format"):
        _writer(tmp_path, resume=True)


def test_finished_dataset_needs_overwrite(tmp_path: Path) -> None:
    _write_all(tmp_path)
    with pytest.raises(ConfigError, match=r"already holds a dataset .*--overwrite"):
        _writer(tmp_path)
    with _writer(tmp_path, overwrite=True) as w:
        w.write(_samples(1)[0])
    assert read_manifest(tmp_path).n_samples == 1
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-000000.tar"]


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"f: is not a folder"):
        _writer(tmp_path / "f")
    with pytest.raises(InputError, match=r"cannot create the dataset folder"):
        _writer(tmp_path / "f" / "sub")

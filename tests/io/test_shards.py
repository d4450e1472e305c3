"""Tests of the dataset shard format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import (
    LabelField,
    Sample,
    ShardDataset,
    ShardWriter,
    collate_samples,
    read_manifest,
    subject_split,
)

SCHEMA = [
    LabelField("weights", (4,), "float32", "rig weights in [0, 1]"),
    LabelField("landmarks", (3, 2), "float32", "px"),
    LabelField("emotion", (), "str", "basic emotion"),
    LabelField("intensity", (), "float32", "emotion intensity in [0, 1]"),
]


def _samples(n: int) -> list[Sample]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        labels: dict = {"weights": rng.random(4).astype(np.float32)}
        if i % 3 == 0:
            labels["emotion"] = "happiness"
            labels["intensity"] = np.float32(rng.random())
        if i % 2 == 0:
            labels["landmarks"] = rng.random((3, 2)).astype(np.float32) * 10
        out.append(
            Sample(
                key=f"{i:05d}",
                image=rng.integers(0, 256, (8, 6, 3), dtype=np.uint8),
                labels=labels,
                source="test",
                subject_id=f"s{i % 5}",
                provenance={"i": i},
            )
        )
    return out


def _write(d: Path, n: int = 23, per: int = 4) -> list[Sample]:
    samples = _samples(n)
    with ShardWriter(d, samples_per_shard=per, schema=SCHEMA, created_by="test") as w:
        for s in samples:
            w.write(s)
    return samples


def test_round_trip_keeps_missing_labels_missing(tmp_path: Path) -> None:
    samples = _write(tmp_path)
    m = read_manifest(tmp_path)
    assert m.n_samples == 23
    assert [s.n_samples for s in m.shards] == [4, 4, 4, 4, 4, 3]
    got = {s.key: s for s in ShardDataset(tmp_path, shuffle_buffer=0)}
    assert sorted(got) == [s.key for s in samples]
    for s in samples:
        g = got[s.key]
        np.testing.assert_array_equal(g.image, s.image)
        assert set(g.labels) == set(s.labels)
        for k, v in s.labels.items():
            if isinstance(v, str):
                assert g.labels[k] == v
            else:
                np.testing.assert_array_equal(g.labels[k], v)
        assert g.subject_id == s.subject_id
        assert g.provenance == {"i": int(s.key)}


def test_same_samples_same_bytes(tmp_path: Path) -> None:
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    for name in ["manifest.json", "shard-000000.tar", "shard-000005.tar"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_shuffle_covers_every_sample_once_with_two_workers(tmp_path: Path) -> None:
    _write(tmp_path)
    ds = ShardDataset(tmp_path, shuffle_buffer=5, seed=3)
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda s: s)
    keys = [s.key for s in loader]
    assert sorted(keys) == [f"{i:05d}" for i in range(23)]
    assert keys != sorted(keys)
    ds.set_epoch(1)
    keys2 = [s.key for s in DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda s: s)]
    assert sorted(keys2) == sorted(keys)
    assert keys2 != keys


def test_ranks_partition_the_data(tmp_path: Path) -> None:
    _write(tmp_path)
    k0 = [s.key for s in ShardDataset(tmp_path, seed=1, rank=0, world_size=2)]
    k1 = [s.key for s in ShardDataset(tmp_path, seed=1, rank=1, world_size=2)]
    assert not set(k0) & set(k1)
    assert len(k0) + len(k1) == 23


def test_subject_split_is_disjoint_and_complete() -> None:
    ids = [f"p{i % 37}" for i in range(1000)]
    folds = subject_split(ids, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    sets = [set(v) for v in folds.values()]
    assert sum(len(s) for s in sets) == 37
    assert set().union(*sets) == set(ids)
    n_train = sum(1 for i in ids if i in sets[0])
    assert 700 <= n_train <= 900
    five = subject_split(ids, 5, seed=1)
    assert all(len(v) >= 7 for v in five.values())


def test_split_filters_subjects(tmp_path: Path) -> None:
    samples = _samples(10)
    with ShardWriter(tmp_path, samples_per_shard=3, schema=SCHEMA) as w:
        for s in samples:
            w.write(s)
        w.set_splits({"train": ["s0", "s1", "s2"], "test": ["s3", "s4"]})
    got = [s.subject_id for s in ShardDataset(tmp_path, split="test")]
    assert sorted(got) == ["s3", "s3", "s4", "s4"]


def test_collate_masks_missing(tmp_path: Path) -> None:
    _write(tmp_path, n=6, per=6)
    batch = list(ShardDataset(tmp_path, shuffle_buffer=0))
    out = collate_samples(batch, read_manifest(tmp_path).fields)
    assert tuple(out["image"].shape) == (6, 3, 8, 6)
    assert out["landmarks_mask"].tolist() == [True, False, True, False, True, False]
    assert bool(out["landmarks"][1].isnan().all())
    assert out["emotion"] == ["happiness", None, None, "happiness", None, None]


def test_missing_manifest_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"manifest\.json: missing"):
        read_manifest(tmp_path)


def test_crash_leaves_no_manifest(tmp_path: Path) -> None:
    def build() -> None:
        with ShardWriter(tmp_path, samples_per_shard=2, schema=SCHEMA) as w:
            for s in _samples(5):
                w.write(s)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build()
    assert not (tmp_path / "manifest.json").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_manifest_raises(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt manifest, not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "facexpr-shards"}))
    with pytest.raises(InputError, match="schema version None is not supported"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(InputError, match="not a facexpr dataset manifest"):
        read_manifest(tmp_path)
    data = {"format": "facexpr-shards", "schema_version": 1}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="bad or missing entry"):
        read_manifest(tmp_path)


def test_corrupt_shard_reports_sha256_mismatch(tmp_path: Path) -> None:
    _write(tmp_path)
    p = tmp_path / "shard-000002.tar"
    data = bytearray(p.read_bytes())
    data[600] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"shard-000002\.tar: sha256 mismatch"):
        list(ShardDataset(tmp_path, shuffle_buffer=0))


def test_unreadable_shard_and_missing_shard_raise(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "shard-000001.tar").write_bytes(b"garbage" * 10)
    with pytest.raises(InputError, match=r"shard-000001\.tar: corrupt shard"):
        list(ShardDataset(tmp_path, shuffle_buffer=0, verify=False))
    (tmp_path / "shard-000001.tar").unlink()
    with pytest.raises(
        InputError, match=r"shard-000001\.tar: shard listed in the manifest is missing"
    ):
        list(ShardDataset(tmp_path, shuffle_buffer=0))


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    with ShardWriter(tmp_path, samples_per_shard=2, schema=SCHEMA) as w:
        with pytest.raises(ConfigError, match="label 'valence' is not in the schema"):
            w.write(Sample("a", img, {"valence": 0.1}, "t", "s"))
        with pytest.raises(ConfigError, match=r"has shape \(3,\), the schema says \(4,\)"):
            w.write(Sample("a", img, {"weights": np.zeros(3)}, "t", "s"))
        with pytest.raises(ConfigError, match=r"without '\.' or '/'"):
            w.write(Sample("a.b", img, {}, "t", "s"))
        w.write(Sample("a", img, {}, "t", "s"))
        with pytest.raises(ConfigError, match="duplicate sample key 'a'"):
            w.write(Sample("a", img, {}, "t", "s"))
    with pytest.raises(ConfigError, match="already holds a dataset"):
        ShardWriter(tmp_path, samples_per_shard=2, schema=SCHEMA)
    with pytest.raises(ConfigError, match="samples_per_shard must be >= 1"):
        ShardWriter(tmp_path / "x", samples_per_shard=0, schema=SCHEMA)


def test_dataset_option_errors(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(ConfigError, match="no split 'val'"):
        ShardDataset(tmp_path, split="val")
    with pytest.raises(ConfigError, match="rank must be in"):
        ShardDataset(tmp_path, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="in splits 'a' and 'b'"):
        ShardWriter(tmp_path / "y", samples_per_shard=2, schema=SCHEMA).set_splits(
            {"a": ["s1"], "b": ["s1"]}
        )
    with pytest.raises(ConfigError, match="cannot fill 3 folds"):
        subject_split(["a", "b"], 3)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        subject_split(["a", "b"], 1)


def test_skip_policy_drops_corrupt_shard(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "shard-000001.tar").write_bytes(b"garbage")
    ds = ShardDataset(tmp_path, shuffle_buffer=0, on_error="skip")
    keys = [s.key for s in ds]
    assert len(keys) == 23 - 4
    assert ds.n_skipped == 1
    with pytest.raises(ConfigError, match="on_error must be 'raise' or 'skip'"):
        ShardDataset(tmp_path, on_error="ignore")  # type: ignore[arg-type]


def test_label_field_and_codec_errors(tmp_path: Path) -> None:
    from facexpr.io.shards import decode_png, encode_png

    with pytest.raises(ConfigError, match="dtype must be one of"):
        LabelField("x", (), "bool", "")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a 'str' field must have shape"):
        LabelField("x", (2,), "str", "")
    with pytest.raises(ConfigError, match="negative dimension"):
        LabelField("x", (-1,), "float32", "")
    with pytest.raises(ConfigError, match="duplicate field names"):
        ShardWriter(tmp_path / "d", samples_per_shard=1, schema=[SCHEMA[0], SCHEMA[0]])
    with pytest.raises(ConfigError, match=r"expected \(H, W, 3\) uint8"):
        encode_png(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match=r"x\.png: not a readable PNG image"):
        decode_png(b"nope", "x.png")
    w = ShardWriter(tmp_path / "e", samples_per_shard=1, schema=SCHEMA)
    w.close()
    with pytest.raises(ConfigError, match=r"write\(\) after close\(\)"):
        w.write(Sample("a", np.zeros((2, 2, 3), np.uint8), {}, "t", "s"))
    with pytest.raises(ConfigError, match="must be a str"):
        ShardWriter(tmp_path / "f", samples_per_shard=1, schema=SCHEMA).write(
            Sample("a", np.zeros((2, 2, 3), np.uint8), {"emotion": 3}, "t", "s")
        )


def _tar_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    p = tmp_path / "x.tar"
    with tarfile.open(p, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return p


def test_bad_samples_in_shard_raise(tmp_path: Path) -> None:
    from facexpr.io.shards import encode_png, iter_shard

    png = encode_png(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match=r"sample 'a' lacks its \.png or \.json"):
        list(iter_shard(_tar_with(tmp_path, {"a.png": png}), SCHEMA))
    with pytest.raises(InputError, match="sample 'a': corrupt JSON"):
        list(iter_shard(_tar_with(tmp_path, {"a.png": png, "a.json": b"{"}), SCHEMA))
    bad = json.dumps({"labels": {"valence": 0.3}}).encode()
    with pytest.raises(InputError, match="label 'valence' is not in the manifest"):
        list(iter_shard(_tar_with(tmp_path, {"a.png": png, "a.json": bad}), SCHEMA))


def test_more_dataset_option_errors(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(ConfigError, match="shuffle_buffer must be >= 0"):
        ShardDataset(tmp_path, shuffle_buffer=-1)
    with pytest.raises(ConfigError, match="either split or subjects"):
        ShardDataset(tmp_path, split="a", subjects=["s1"])
    with pytest.raises(ConfigError, match="positive shares"):
        subject_split(["a", "b"], {"train": 1.0, "test": 0.0})
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["schema_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="schema version 99 is not supported"):
        read_manifest(tmp_path)

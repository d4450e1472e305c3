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
    return _tar_items(tmp_path, list(members.items()))


def _tar_items(tmp_path: Path, members: list[tuple[str, bytes]]) -> Path:
    import io
    import tarfile

    p = tmp_path / "x.tar"
    with tarfile.open(p, "w") as tar:
        for name, data in members:
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


# --- hostile dataset folders (generated here: no committed binaries) ---------------------------


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _set_manifest(d: Path, m: dict) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def _one_sample_tar(tmp_path: Path, meta: object, png: bytes | None = None) -> Path:
    from facexpr.io.shards import encode_png

    png = encode_png(np.zeros((2, 2, 3), np.uint8)) if png is None else png
    return _tar_with(tmp_path, {"a.png": png, "a.json": json.dumps(meta).encode()})


def test_deeply_nested_manifest_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=r"manifest\.json: corrupt manifest.*nested too deeply"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"splits": ["train", "test"]}, r"'splits' must be an object .*got a list"),
        ({"splits": {"train": "s0"}}, r"'splits'\.train must be a list, got a string"),
        ({"fields": {"a": 1}}, r"'fields' must be a list, got an object"),
        ({"n_samples": "23"}, r"'n_samples' must be an integer, got a string"),
        ({"n_samples": 24}, r"'n_samples' is 24 but the shards hold 23"),
        ({"n_shards": 2}, r"'n_shards' is 2 but 6 shards are listed"),
        ({"attributes": [1]}, r"'attributes' must be an object, got a list"),
        ({"created_by": None}, r"'created_by' must be a string, got null"),
        ({"shards": "shard-000000.tar"}, r"'shards' must be a list, got a string"),
    ],
)
def test_manifest_entries_are_checked(tmp_path: Path, change: dict, message: str) -> None:
    _write(tmp_path)
    _set_manifest(tmp_path, {**_manifest(tmp_path), **change})
    with pytest.raises(
        InputError, match=r"manifest\.json: corrupt manifest, bad or missing entry: "
    ):
        read_manifest(tmp_path)
    with pytest.raises(InputError, match=message):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("shard", "field", "message"),
    [
        ({"sha256": "abc"}, None, r"'shards'\[0\]\.sha256 must be 64 lowercase hex digits"),
        ({"n_bytes": -1}, None, r"'shards'\[0\]\.n_bytes must be >= 0"),
        ({"n_samples": True}, None, r"'shards'\[0\]\.n_samples must be an integer, got a boolean"),
        (
            {"name": "../x.tar"},
            None,
            r"'shards'\[0\]\.name '\.\./x\.tar' must be a plain file name",
        ),
        ({"name": "/etc/passwd"}, None, r"'shards'\[0\]\.name '/etc/passwd' must be a plain file"),
        ({"name": "shard-000001.tar"}, None, r"'shards'\[1\]\.name .* is listed twice"),
        (None, {"shape": [-1]}, r"'fields'\[0\]\.shape\[0\] must be >= 0"),
        (None, {"dtype": "object"}, r"'fields'\[0\]: label field 'weights': dtype must be"),
        (None, {"shape": [1 << 30]}, r"holds more than \d+ values"),
        (None, {"name": 3}, r"'fields'\[0\]\.name must be a string, got a int"),
    ],
)
def test_manifest_shards_and_fields_are_checked(
    tmp_path: Path, shard: dict | None, field: dict | None, message: str
) -> None:
    _write(tmp_path)
    m = _manifest(tmp_path)
    if shard is not None:
        m["shards"][0].update(shard)
    if field is not None:
        m["fields"][0].update(field)
    _set_manifest(tmp_path, m)
    with pytest.raises(InputError, match=message):
        read_manifest(tmp_path)


def test_manifest_that_is_a_fifo_or_folder_is_refused(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(InputError, match=r"manifest\.json: manifest is not a regular file"):
        read_manifest(tmp_path)  # returns at once: a FIFO is never opened for a blocking read
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(InputError, match=r"manifest\.json: manifest is a directory"):
        read_manifest(tmp_path)


def test_shards_outside_the_folder_are_never_read(tmp_path: Path) -> None:
    import os

    other, ds = tmp_path / "other", tmp_path / "ds"
    _write(other)
    _write(ds)
    outside = other / "shard-000000.tar"
    # a manifest naming another dataset's shard, with its true sha256
    m = _manifest(ds)
    m["shards"][0] = {**_manifest(other)["shards"][0], "name": "../other/shard-000000.tar"}
    _set_manifest(ds, m)
    with pytest.raises(InputError, match=r"must be a plain file name inside the dataset folder"):
        ShardDataset(ds)
    # a symbolic link inside the folder to a file outside it
    _write(ds / "b")
    (ds / "b" / "shard-000000.tar").unlink()
    os.symlink(outside, ds / "b" / "shard-000000.tar")
    with pytest.raises(
        InputError, match=r"shard-000000\.tar: is a symbolic link to a file outside"
    ):
        list(ShardDataset(ds / "b", shuffle_buffer=0))
    # a link to /etc/passwd: refused before hashing, so its hash is never shown
    os.unlink(ds / "b" / "shard-000000.tar")
    os.symlink("/etc/passwd", ds / "b" / "shard-000000.tar")
    with pytest.raises(InputError, match="outside the dataset folder") as e:
        list(ShardDataset(ds / "b", shuffle_buffer=0))
    assert "sha256" not in str(e.value)
    # a link within the folder is fine
    os.unlink(ds / "b" / "shard-000000.tar")
    os.rename(ds / "b" / "shard-000001.tar", ds / "b" / "real-000001.tar")
    os.symlink("real-000001.tar", ds / "b" / "shard-000001.tar")
    (ds / "b" / "shard-000000.tar").write_bytes(outside.read_bytes())  # same samples as b's own
    assert len(list(ShardDataset(ds / "b", shuffle_buffer=0))) == 23


def test_shard_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    _write(tmp_path)
    (tmp_path / "shard-000003.tar").unlink()
    os.mkfifo(tmp_path / "shard-000003.tar")
    with pytest.raises(InputError, match=r"shard-000003\.tar: shard is not a regular file"):
        list(ShardDataset(tmp_path, shuffle_buffer=0))
    (tmp_path / "shard-000003.tar").unlink()
    os.symlink("shard-000003.tar", tmp_path / "shard-000003.tar")  # a link to itself
    with pytest.raises(InputError, match=r"shard-000003\.tar: cannot be resolved"):
        list(ShardDataset(tmp_path, shuffle_buffer=0))


def test_truncated_shard_is_named_by_its_size(tmp_path: Path) -> None:
    _write(tmp_path)
    p = tmp_path / "shard-000004.tar"
    p.write_bytes(p.read_bytes()[:-1024])
    with pytest.raises(InputError, match=r"shard-000004\.tar: has \d+ bytes, the manifest says"):
        list(ShardDataset(tmp_path, shuffle_buffer=0))


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ([1, 2], r"x\.tar:a\.json: sample 'a': must be a JSON object, got a list"),
        ({"labels": [1]}, r"sample 'a': 'labels' must be an object, got a list"),
        (
            {"labels": {"weights": [1, 2, 3]}},
            r"label 'weights' has shape \(3,\), the manifest says",
        ),
        ({"labels": {"weights": ["a", "b", "c", "d"]}}, r"label 'weights' must hold numbers"),
        ({"labels": {"weights": [[1], [2, 3]]}}, r"label 'weights' is not an array of shape"),
        ({"labels": {"weights": {"x": 1}}}, r"label 'weights' must be numbers .*got an object"),
        ({"labels": {"weights": [True] * 4}}, r"label 'weights' must hold numbers"),
        ({"labels": {"emotion": 3}}, r"label 'emotion' must be a string, got a int"),
        ({"labels": {"valence": 0.3}}, r"label 'valence' is not in the manifest"),
        ({"subject_id": 7}, r"'subject_id' must be a string, got a int"),
        ({"provenance": "x"}, r"'provenance' must be an object, got a string"),
        ({"key": "b"}, r"sample 'a': its JSON says key 'b'"),
    ],
)
def test_sample_json_is_checked_against_the_schema(
    tmp_path: Path, meta: object, message: str
) -> None:
    from facexpr.io.shards import iter_shard

    with pytest.raises(InputError, match=message):
        list(iter_shard(_one_sample_tar(tmp_path, meta), SCHEMA))


def test_integer_labels_are_checked(tmp_path: Path) -> None:
    from facexpr.io.shards import iter_shard

    fields = [LabelField("n", (), "int32", "count")]
    with pytest.raises(InputError, match=r"label 'n' must hold integers \(int32\), not float64"):
        list(iter_shard(_one_sample_tar(tmp_path, {"labels": {"n": 1.5}}), fields))
    with pytest.raises(InputError, match=r"label 'n' has values outside the int32 range"):
        list(iter_shard(_one_sample_tar(tmp_path, {"labels": {"n": 1 << 40}}), fields))
    got = list(iter_shard(_one_sample_tar(tmp_path, {"labels": {"n": 7}}), fields))
    assert got[0].labels["n"] == 7
    assert got[0].labels["n"].dtype == np.int32


def test_deeply_nested_sample_json_is_a_named_error(tmp_path: Path) -> None:
    from facexpr.io.shards import encode_png, iter_shard

    png = encode_png(np.zeros((2, 2, 3), np.uint8))
    p = _tar_with(tmp_path, {"a.png": png, "a.json": b"[" * 100_000 + b"]" * 100_000})
    with pytest.raises(InputError, match=r"a\.json: sample 'a': corrupt JSON \(nested too deeply"):
        list(iter_shard(p, SCHEMA))


def test_png_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    from facexpr.io.shards import decode_png, iter_shard

    with pytest.raises(InputError, match=r"x\.png: PNG image of 100000x100000 px is larger than"):
        decode_png(_png_header_only(100_000, 100_000), "x.png")
    with pytest.raises(InputError, match=r"PNG image of 0x5 px is empty"):
        decode_png(_png_header_only(0, 5), "x.png")
    p = _one_sample_tar(tmp_path, {"labels": {}}, png=_png_header_only(60_000, 60_000))
    with pytest.raises(InputError, match=r"x\.tar:a\.png: PNG image of 60000x60000 px"):
        list(iter_shard(p, SCHEMA))


def test_real_png_bomb_in_a_shard_stays_in_bounded_memory(tmp_path: Path) -> None:
    """A 20000 x 20000 px PNG of zeros compresses to ~0.4 MB; decoding it would take 1.2 GB."""
    import subprocess
    import sys
    import textwrap
    import zlib

    width = height = 20_000
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width)  # filter byte + grey pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    assert len(png) < 1_000_000
    shard = _one_sample_tar(tmp_path, {"labels": {}}, png=png)
    code = textwrap.dedent(
        f"""
        import resource, sys
        from facexpr.io.shards import LabelField, iter_shard
        from facexpr.core.errors import InputError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            list(iter_shard({str(shard)!r}, []))
        except InputError as e:
            print("ERR", e)
        print("MB", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "ERR" in out
    assert "a.png: PNG image of 20000x20000 px is larger than" in out
    grown = float(out.split("MB")[-1])
    assert grown < 100, out


def test_member_sizes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import facexpr.io.shards as shards

    monkeypatch.setattr(shards, "MAX_JSON_BYTES", 64)
    p = _one_sample_tar(tmp_path, {"labels": {}, "provenance": {"pad": "x" * 100}})
    with pytest.raises(
        InputError, match=r"x\.tar:a\.json: member of \d+ bytes is larger than the 64"
    ):
        list(shards.iter_shard(p, SCHEMA))


def test_members_of_a_sample_must_be_together(tmp_path: Path) -> None:
    from facexpr.io.shards import encode_png, iter_shard

    png = encode_png(np.zeros((2, 2, 3), np.uint8))
    meta = json.dumps({"labels": {}}).encode()
    p = _tar_with(tmp_path, {"a.png": png, "b.png": png, "b.json": meta, "a.json": meta})
    with pytest.raises(InputError, match=r"sample 'a' lacks its \.png or \.json"):
        list(iter_shard(p, SCHEMA))
    names = [("a.png", png), ("a.json", meta), ("b.png", png), ("b.json", meta), ("a.png", png)]
    p = _tar_items(tmp_path, names)
    with pytest.raises(InputError, match=r"sample 'a': its members are not next to each other"):
        list(iter_shard(p, SCHEMA))
    p = _tar_with(tmp_path, {"a.png": png, "a.json": meta, "b.png": png, "b.json": meta})
    assert [s.key for s in iter_shard(p, SCHEMA)] == ["a", "b"]
    p = _tar_with(tmp_path, {"../a.png": png})
    with pytest.raises(InputError, match=r"member '\.\./a\.png' is not named KEY\.EXT"):
        list(iter_shard(p, SCHEMA))


def test_shards_are_streamed_not_read_whole(tmp_path: Path) -> None:
    """Reading works from a stream that cannot seek, and reads it in small pieces."""
    from facexpr.io.shards import encode_png, iter_shard

    rng = np.random.default_rng(0)
    items = []
    for i in range(6):
        items.append((f"{i}.png", encode_png(rng.integers(0, 256, (150, 150, 3), np.uint8))))
        items.append((f"{i}.json", b"{}"))
    data = _tar_items(tmp_path, items).read_bytes()
    assert len(data) > 6 * 60_000
    reads: list[int] = []

    class Pipe:
        def __init__(self) -> None:
            self.pos = 0

        def read(self, n: int = -1) -> bytes:
            n = len(data) - self.pos if n is None or n < 0 else n
            reads.append(n)
            out = data[self.pos : self.pos + n]
            self.pos += len(out)
            return out

    keys = [s.key for s in iter_shard(tmp_path / "x.tar", SCHEMA, fileobj=Pipe())]  # type: ignore[arg-type]
    assert keys == [str(i) for i in range(6)]
    assert max(reads) < 2 * 70_000  # a member at a time, not the 400 KB shard


def test_shard_sample_count_must_match_the_manifest(tmp_path: Path) -> None:
    _write(tmp_path)
    m = _manifest(tmp_path)
    m["shards"][0]["n_samples"] = 5
    m["n_samples"] = 24
    _set_manifest(tmp_path, m)
    with pytest.raises(
        InputError, match=r"shard-000000\.tar: holds 4 samples, the manifest says 5"
    ):
        list(ShardDataset(tmp_path, shuffle_buffer=0))


def test_importing_shards_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import facexpr.io.shards as s, facexpr.io.inspect, facexpr.synth; "
        "r = s.ShardReader; print('torch' in sys.modules); s.ShardDataset; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out == ["False", "True"]


def test_more_hostile_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import facexpr.io._checks
    from facexpr.io.shards import ShardInfo, decode_png, encode_png, iter_shard, shard_path

    with pytest.raises(InputError, match=r"x\.png: not a readable PNG image \(corrupt image data"):
        decode_png(_png_header_only(4, 4) + b"\x00" * 64, "x.png")
    with pytest.raises(InputError, match=r"shard name '\.\./x\.tar' must be a plain file name"):
        shard_path(tmp_path, ShardInfo("../x.tar", "0" * 64, 1, 1))
    png = encode_png(np.zeros((2, 2, 3), np.uint8))
    p = _tar_items(tmp_path, [("a.png", png), ("a.png", png)])
    with pytest.raises(InputError, match=r"sample 'a' has two \.png members"):
        list(iter_shard(p, SCHEMA))
    p = _tar_items(tmp_path, [("a.png", png * 50), ("a.json", b"{}")])
    p.write_bytes(p.read_bytes()[:1500])  # ends inside the first member's data
    with pytest.raises(InputError, match=r"x\.tar:a\.png: unreadable member \(unexpected end"):
        list(iter_shard(p, SCHEMA))
    _write(tmp_path / "ds")
    monkeypatch.setattr(facexpr.io._checks, "MAX_JSON_FILE_BYTES", 100)
    with pytest.raises(InputError, match=r"manifest\.json: manifest is larger than 100 bytes"):
        read_manifest(tmp_path / "ds")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["shards"][0].pop("name"), r"'shards'\[0\] lacks 'name'"),
        (lambda m: m["fields"][0].pop("dtype"), r"'fields'\[0\] lacks 'dtype'"),
        (lambda m: m["fields"][0].update(shape=[1] * 9), r"'fields'\[0\]\.shape has 9 dim"),
        (lambda m: m["fields"].append(m["fields"][0]), r"'fields' has duplicate names"),
        (lambda m: m.pop("shards"), r"lacks 'shards'"),
    ],
)
def test_manifest_missing_entries_are_named(tmp_path: Path, change, message: str) -> None:
    _write(tmp_path)
    m = _manifest(tmp_path)
    change(m)
    _set_manifest(tmp_path, m)
    with pytest.raises(InputError, match=message):
        read_manifest(tmp_path)

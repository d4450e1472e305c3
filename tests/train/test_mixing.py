"""ShardIndex random access and ShardMix ratios, on small datasets written at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import LabelField, Sample, ShardDataset, ShardWriter
from facexpr.train.mixing import ShardIndex, ShardMix


def write_dataset(
    out: Path, n: int, size: int, *, subjects: int = 4, vec_dim: int = 3, seed: int = 0,
    per_shard: int = 7, source: str = "test",
) -> Path:  # fmt: skip
    """Writes ``n`` samples: noise images of ``size`` px, a ``vec`` label, ``subjects`` ids."""
    rng = np.random.default_rng(seed)
    schema = [
        LabelField("vec", (vec_dim,), "float32", "a test vector"),
        LabelField("name", (), "str", "a test string"),
    ]
    with ShardWriter(out, samples_per_shard=per_shard, schema=schema) as w:
        for i in range(n):
            labels: dict[str, object] = {"name": f"s{i}"}
            if i % 5 != 4:  # every fifth sample lacks the vector
                labels["vec"] = rng.random(vec_dim).astype(np.float32)
            w.write(
                Sample(
                    f"{source}{i:04d}",
                    rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                    labels,
                    source,
                    f"subj{i % subjects}",
                )
            )
    return out


def test_index_matches_the_streaming_reader(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "a", 20, 16)
    ix = ShardIndex(d)
    stream = {s.key: s for s in ShardDataset(d, shuffle_buffer=0)}
    assert len(ix) == 20
    for i in (0, 7, 19):
        s = stream[ix.keys[i]]
        np.testing.assert_array_equal(ix.image(i), s.image)
        assert ix.subject_ids[i] == s.subject_id
        assert ix.labels[i]["name"] == s.labels["name"]
    v, present = ix.vectors("vec")
    assert v.shape == (20, 3)
    assert int(present.sum()) == 16
    assert np.isnan(v[~present]).all()
    sub = ShardIndex(d, subjects={"subj1"})
    assert set(sub.subject_ids) == {"subj1"}
    assert len(sub) == 5


def test_index_errors(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "a", 10, 8)
    with pytest.raises(ConfigError, match="no numeric label 'name'"):
        ShardIndex(d).vectors("name")
    shard = sorted(d.glob("shard-*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 does not match the manifest"):
        ShardIndex(d)
    shard.unlink()
    with pytest.raises(InputError, match="shard listed in the manifest is missing"):
        ShardIndex(d)


def test_mix_follows_the_ratios_and_is_deterministic(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 30, 16, source="a")
    b = write_dataset(tmp_path / "b", 12, 48, source="b", seed=1)
    mix = ShardMix({"a": a, "b": b}, {"a": 3, "b": 1}, n=400, size=24, seed=5)
    c = mix.counts()
    assert c["a"] + c["b"] == 400
    assert 0.65 < c["a"] / 400 < 0.85
    again = ShardMix({"a": a, "b": b}, {"a": 3, "b": 1}, n=400, size=24, seed=5)
    assert [mix.source(i) for i in range(400)] == [again.source(i) for i in range(400)]
    # Within a dataset the samples are all used before any repeats.
    b_items = [mix.source(i)[1] for i in range(400) if mix.source(i)[0] == "b"]
    assert sorted(b_items[:12]) == list(range(12))
    s = mix[3]
    assert s.image.shape == (24, 24, 3)
    batch = mix.images([0, 1, 2])
    assert batch.shape == (3, 24, 24, 3)
    other = ShardMix({"a": a, "b": b}, {"a": 3, "b": 1}, n=400, size=24, seed=6)
    assert [mix.source(i) for i in range(50)] != [other.source(i) for i in range(50)]


def test_mix_errors(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 5, 8)
    with pytest.raises(ConfigError, match=r"ratios name \['b'\] but the datasets are \['a'\]"):
        ShardMix({"a": a}, {"b": 1.0})
    with pytest.raises(ConfigError, match="ratios must be > 0"):
        ShardMix({"a": a}, {"a": 0.0})
    with pytest.raises(ConfigError, match="size must be >= 8"):
        ShardMix({"a": a}, {"a": 1.0}, size=2)
    with pytest.raises(ConfigError, match="n must be >= 1"):
        ShardMix({"a": a}, {"a": 1.0}, n=0)
    with pytest.raises(ConfigError, match="no datasets"):
        ShardMix({}, {})
    with pytest.raises(ConfigError, match="needs a size"):
        ShardMix({"a": a}, {"a": 1.0}, size=None).images([0])
    with pytest.raises(IndexError, match="out of range"):
        ShardMix({"a": a}, {"a": 1.0}, n=3)[3]

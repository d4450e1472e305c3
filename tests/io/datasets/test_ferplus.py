"""FER+ readers: real shared data (skipped if absent), tiny packed and upstream fixtures, shards."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets import (
    EMOTIONS,
    VOTE_COLUMNS,
    FerPlus,
    FerPlusUpstream,
    majority_label,
    soft_label,
    to_shards,
)
from facexpr.io.shards import ShardDataset, read_manifest

# ---------------------------------------------------------------- real data (../shared)


@pytest.fixture(scope="session")
def ferplus_dir(shared_dir: Path) -> Path:
    d = shared_dir / "datasets" / "ferplus"
    if not (d / "Test_labels.csv").is_file():
        pytest.skip(f"FER+ data not found at {d}")
    return d


@pytest.fixture(scope="session")
def test_split(ferplus_dir: Path) -> FerPlus:
    return FerPlus(ferplus_dir, "Test")


@pytest.mark.parametrize(("split", "n"), [("Train", 28558), ("Valid", 3579), ("Test", 3573)])
def test_real_counts_and_majority_rule(ferplus_dir: Path, split: str, n: int) -> None:
    data = FerPlus(ferplus_dir, split)
    assert len(data) == n
    assert data.csv_majority is not None
    ours = np.array([majority_label(v) for v in data.votes])
    # our implementation of the official rule reproduces the CSV on every row
    np.testing.assert_array_equal(ours, data.csv_majority)


def test_real_test_class_counts_match_readme(test_split: FerPlus) -> None:
    counts = np.bincount([majority_label(v) for v in test_split.votes], minlength=10)
    assert counts.tolist() == [1089, 893, 396, 384, 273, 18, 83, 16, 420, 1]


def test_real_samples(test_split: FerPlus) -> None:
    n_soft = 0
    for s in test_split:
        assert s.image.shape == (48, 48)
        assert s.image.dtype == np.uint8
        emotion_votes = int(s.votes[:8].sum())
        if s.soft_label is None:
            assert emotion_votes == 0
        else:
            n_soft += 1
            assert abs(float(s.soft_label.sum()) - 1.0) < 1e-5
            np.testing.assert_allclose(s.soft_label, s.votes[:8] / emotion_votes, atol=1e-6)
        maj = majority_label(s.votes)
        assert s.majority_label == (maj if maj < 8 else None)
    assert n_soft >= len(test_split) - 20
    first = test_split[0]
    assert first.row_index == 32298
    assert first.image_name == "fer0032220.png"
    assert first.majority_label == EMOTIONS.index("contempt")
    assert first.fer2013_emotion == 0
    assert test_split[-1].row_index == test_split.row_index[-1]
    assert float(first.image.std()) > 5.0  # a face, not a blank decode


def test_real_train_soft_labels(ferplus_dir: Path) -> None:
    data = FerPlus(ferplus_dir, "Train")
    sums = [soft_label(v) for v in data.votes]
    present = np.array([s.sum() for s in sums if s is not None])
    np.testing.assert_allclose(present, 1.0, atol=1e-5)
    assert sum(s is None for s in sums) == int((data.votes[:, :8].sum(1) == 0).sum())


# ---------------------------------------------------------------- rule unit cases


@pytest.mark.parametrize(
    ("votes", "label"),
    [
        ([0, 0, 0, 0, 2, 1, 0, 7, 0, 0], 7),  # contempt 7 of 9 kept votes
        ([3, 0, 0, 5, 0, 0, 0, 0, 2, 0], 8),  # sadness 5 of 10: not > 50%
        ([4, 6, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 8),  # every vote is a lone outlier
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], 9),  # not a face
        ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], 0),  # 5 of 5 after outlier removal
    ],
)
def test_majority_rule_cases(votes: list[int], label: int) -> None:
    assert majority_label(votes) == label


def test_soft_label_none_without_emotion_votes() -> None:
    assert soft_label([0] * 8 + [3, 7]) is None
    np.testing.assert_allclose(soft_label([2, 2] + [0] * 6 + [6, 0]), [0.5, 0.5] + [0.0] * 6)


@pytest.mark.parametrize("fn", [majority_label, soft_label])
def test_rule_rejects_wrong_length(fn) -> None:
    with pytest.raises(ConfigError, match="expected 10 vote counts"):
        fn([1, 2, 3])


# ---------------------------------------------------------------- tiny packed layout


def _webp(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def _write_packed(root: Path, images: np.ndarray, rows: list[int], votes: np.ndarray) -> None:
    blobs = [_webp(im) for im in images]
    off = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    data = np.frombuffer(b"".join(blobs), np.uint8)
    np.savez(root / "Test_images.npz", webp=data, offsets=off, row_index=np.array(rows, np.int32))
    with open(root / "Test_labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "row_index",
                "image_name",
                "usage",
                *VOTE_COLUMNS,
                "majority_label",
                "fer2013_emotion",
                "fer2013_match_score",
            ]
        )
        for r, v in zip(rows, votes, strict=True):
            w.writerow([r, f"fer{r:07d}.png", "PrivateTest", *v, majority_label(v), 3, 1.0])


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    votes = np.array(
        [
            [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
            [3, 0, 0, 5, 0, 0, 0, 0, 2, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        ]
    )
    _write_packed(tmp_path, images, [5, 7, 9], votes)
    return tmp_path, images


def test_packed_fixture(packed: tuple[Path, np.ndarray]) -> None:
    root, images = packed
    data = FerPlus(root, "Test")
    assert len(data) == 3
    np.testing.assert_array_equal(data[1].image, images[1])  # lossless round trip
    assert data[0].majority_label == 1
    assert data[1].majority_label is None
    assert data[2].soft_label is None
    assert [s.row_index for s in data] == [5, 7, 9]
    with pytest.raises(IndexError, match="out of range"):
        data[3]


def test_packed_missing_npz(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Valid_images\.npz: FER\+ image file not found"):
        FerPlus(tmp_path, "Valid")


def test_packed_corrupt_npz(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    (root / "Test_images.npz").write_bytes(b"not an npz at all")
    with pytest.raises(InputError, match=r"Test_images\.npz: corrupt FER\+ image file"):
        FerPlus(root, "Test")


def test_packed_bad_offsets(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    d = dict(np.load(root / "Test_images.npz"))
    np.savez(
        root / "Test_images.npz",
        webp=d["webp"],
        offsets=d["offsets"][:-1],
        row_index=d["row_index"],
    )
    with pytest.raises(InputError, match=r"Test_images\.npz: offsets .* do not match"):
        FerPlus(root, "Test")


def test_packed_missing_csv(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    (root / "Test_labels.csv").unlink()
    with pytest.raises(InputError, match=r"Test_labels\.csv: FER\+ labels CSV not found"):
        FerPlus(root, "Test")


def test_packed_csv_missing_columns(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    (root / "Test_labels.csv").write_text("row_index,image_name\n5,a.png\n")
    with pytest.raises(InputError, match=r"Test_labels\.csv: labels CSV lacks columns"):
        FerPlus(root, "Test")


def test_packed_csv_non_integer(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    p = root / "Test_labels.csv"
    p.write_text(
        p.read_text().replace("fer0000005.png,PrivateTest,0,", "fer0000005.png,PrivateTest,x,")
    )
    with pytest.raises(InputError, match=r"Test_labels\.csv: non-integer value"):
        FerPlus(root, "Test")


def test_packed_row_count_mismatch(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    p = root / "Test_labels.csv"
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(InputError, match=r"Test_labels\.csv: 2 label rows but 3 images"):
        FerPlus(root, "Test")


def test_packed_row_index_mismatch(tmp_path: Path) -> None:
    images = np.zeros((2, 48, 48), np.uint8)
    _write_packed(tmp_path, images, [1, 2], np.array([[10] + [0] * 9] * 2))
    d = dict(np.load(tmp_path / "Test_images.npz"))
    np.savez(
        tmp_path / "Test_images.npz",
        webp=d["webp"],
        offsets=d["offsets"],
        row_index=np.array([1, 3], np.int32),
    )
    with pytest.raises(InputError, match=r"row 1: row_index 2 but the image has row_index 3"):
        FerPlus(tmp_path, "Test")


def test_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split must be one of"):
        FerPlus(tmp_path, "Training")  # type: ignore[arg-type]


# ---------------------------------------------------------------- upstream layout


def _upstream(root: Path, rng: np.random.Generator) -> tuple[Path, Path, np.ndarray]:
    """Writes fer2013.csv + fer2013new.csv (7 rows) in the exact upstream column layout."""
    pixels = rng.integers(0, 256, (7, 48 * 48))
    usage = [
        "Training",
        "Training",
        "Training",
        "Training",
        "PublicTest",
        "PrivateTest",
        "PrivateTest",
    ]
    names = [
        "fer0000000.png",
        "",
        "fer0000002.png",
        "fer0000002.png",
        "fer0000004.png",
        "fer0000005.png",
        "fer0000006.png",
    ]
    votes = [
        [4, 0, 0, 1, 5, 0, 0, 0, 0, 0],
        [0] * 9 + [10],
        [0, 10] + [0] * 8,
        [0, 0, 10] + [0] * 7,
        [2, 2, 2, 2, 2, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        [10] + [0] * 9,
    ]
    fer = root / "fer2013.csv"
    with open(fer, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i in range(7):
            w.writerow([i % 7, " ".join(map(str, pixels[i])), usage[i]])
    new = root / "fer2013new.csv"
    with open(new, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        for i in range(7):
            w.writerow([usage[i], names[i], *votes[i]])
    return fer, new, pixels.reshape(7, 48, 48).astype(np.uint8)


def test_upstream_fixture(tmp_path: Path) -> None:
    fer, new, pixels = _upstream(tmp_path, np.random.default_rng(1))
    train = FerPlusUpstream(fer, new, "Train")
    # the empty-name row is left out; of the duplicate name only the later row stays
    assert [s.row_index for s in train] == [0, 3]
    assert train[1].majority_label == EMOTIONS.index("surprise")
    assert train[0].majority_label == EMOTIONS.index("anger")  # 5 of 9 after dropping the lone 1
    np.testing.assert_array_equal(train[0].image, pixels[0])
    assert train[1].fer2013_emotion == 3
    valid = FerPlusUpstream(fer, new, "Valid")
    assert len(valid) == 1
    assert valid[0].majority_label is None
    np.testing.assert_allclose(valid[0].soft_label, [0.2] * 5 + [0.0] * 3)
    test = FerPlusUpstream(fer, new, "Test")
    assert [s.image_name for s in test] == ["fer0000005.png", "fer0000006.png"]
    assert test[0].soft_label is None
    assert test[1].majority_label == 0


def test_upstream_missing_file(tmp_path: Path) -> None:
    fer, _, _ = _upstream(tmp_path, np.random.default_rng(1))
    with pytest.raises(InputError, match=r"nope\.csv: CSV file not found"):
        FerPlusUpstream(fer, tmp_path / "nope.csv", "Test")


def test_upstream_missing_columns(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    fer.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(InputError, match=r"fer2013\.csv: CSV lacks columns \['pixels'\]"):
        FerPlusUpstream(fer, new, "Test")


def test_upstream_row_count_mismatch(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    new.write_text("\n".join(new.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(InputError, match=r"fer2013new\.csv: 6 rows but .* has 7"):
        FerPlusUpstream(fer, new, "Test")


def test_upstream_usage_mismatch(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    new.write_text(new.read_text().replace("PublicTest", "PrivateTest"))
    with pytest.raises(InputError, match=r"row 4: Usage 'PrivateTest' but .* says 'PublicTest'"):
        FerPlusUpstream(fer, new, "Test")


def test_upstream_bad_pixels(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    lines = fer.read_text().splitlines()
    lines[6] = '5,"1 2 3",PrivateTest'
    fer.write_text("\n".join(lines) + "\n")
    data = FerPlusUpstream(fer, new, "Test")
    with pytest.raises(InputError, match=r"row 5: pixels must be 2304 values"):
        data[0]


# ---------------------------------------------------------------- shards


def test_to_shards_round_trip(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(2))
    reader = FerPlusUpstream(fer, new, "Test")
    out = to_shards(reader, tmp_path / "shards", samples_per_shard=1)
    manifest = read_manifest(out)
    assert manifest.n_samples == 2
    assert len(manifest.shards) == 2
    assert manifest.attributes["crop_size"] == 48
    samples = list(ShardDataset(out, shuffle_buffer=0))
    assert [s.key for s in samples] == ["ferplus-00005", "ferplus-00006"]
    for s, src in zip(samples, reader, strict=True):
        assert s.source == "ferplus"
        assert s.subject_id == ""  # FER has no subject ids: explicit missing
        assert s.image.shape == (48, 48, 3)
        for c in range(3):
            np.testing.assert_array_equal(s.image[:, :, c], src.image)
        np.testing.assert_array_equal(s.labels["votes"], src.votes)
        assert s.labels["ferplus_split"] == "Test"
        assert s.provenance["row_index"] == src.row_index
    nf, neutral = samples
    assert "emotion" not in nf.labels  # NF: no majority emotion, absent, not 0
    assert "emotion_soft" not in nf.labels
    assert int(neutral.labels["emotion"]) == 0
    assert neutral.labels["emotion_name"] == "neutral"
    np.testing.assert_allclose(neutral.labels["emotion_soft"], [1.0] + [0.0] * 7)


def test_to_shards_bad_options(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(2))
    with pytest.raises(ConfigError, match="samples_per_shard must be >= 1"):
        to_shards(FerPlusUpstream(fer, new, "Test"), tmp_path / "s", samples_per_shard=0)


def test_packed_undecodable_image(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    d = dict(np.load(root / "Test_images.npz"))
    webp = d["webp"].copy()
    webp[d["offsets"][1] : d["offsets"][2]] = 0
    np.savez(root / "Test_images.npz", webp=webp, offsets=d["offsets"], row_index=d["row_index"])
    data = FerPlus(root, "Test")
    with pytest.raises(InputError, match=r"Test image 1: undecodable WebP"):
        data[1]


def test_packed_csv_not_text(packed: tuple[Path, np.ndarray]) -> None:
    root, _ = packed
    (root / "Test_labels.csv").write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(InputError, match=r"Test_labels\.csv: unreadable labels CSV"):
        FerPlus(root, "Test")


def test_upstream_csv_not_text(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    new.write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(InputError, match=r"fer2013new\.csv: unreadable CSV"):
        FerPlusUpstream(fer, new, "Test")


def test_upstream_non_numeric(tmp_path: Path) -> None:
    fer, new, _ = _upstream(tmp_path, np.random.default_rng(1))
    lines = new.read_text().splitlines()
    lines[7] = "PrivateTest,fer0000006.png,ten,0,0,0,0,0,0,0,0,0"
    new.write_text("\n".join(lines) + "\n")
    data = FerPlusUpstream(fer, new, "Test")
    with pytest.raises(InputError, match=r"fer2013new\.csv: row 6: non-numeric vote"):
        data[1]
    lines = fer.read_text().splitlines()
    lines[6] = lines[6].replace("5,", "x,", 1)
    fer.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"fer2013\.csv: row 5: non-numeric value"):
        FerPlusUpstream(fer, new, "Test")[0]


def test_packed_image_size_is_bounded_before_decoding(
    packed: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import facexpr.io.shards

    root, images = packed
    data = FerPlus(root, "Test")
    np.testing.assert_array_equal(data[0].image, images[0])
    monkeypatch.setattr(facexpr.io.shards, "MAX_IMAGE_PIXELS", 48 * 48 - 1)
    with pytest.raises(InputError, match=r"Test image 0: 48x48 px is larger than the 2303-pixel"):
        data[0]
    monkeypatch.setattr(facexpr.io.shards, "MAX_IMAGE_PIXELS", 48 * 48)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own bomb check, 2x over it
    with pytest.raises(InputError, match=r"Test image 0: undecodable WebP \(Image size"):
        data[0]

"""FER+ readers: FER2013 48x48 faces with Microsoft's 10-annotator FER+ votes.

Barsoum, Zhang, Canton Ferrer, Zhang, "Training Deep Networks for Facial Expression Recognition
with Crowd-Sourced Label Distribution", ICMI 2016 (arXiv:1608.01041).

Two layouts are read:

* :class:`FerPlus`: the packed layout (``{split}_images*.npz`` with concatenated WebP streams +
  ``{split}_labels.csv``), as kept in the project's shared data folder.
* :class:`FerPlusUpstream`: the original upstream layout, Microsoft's ``fer2013new.csv``
  (``Usage,Image name,neutral,...,NF``) beside Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``).

Both give :class:`FerPlusSample` and can be converted to the facexpr shard format with
:func:`to_shards`. FER2013 images are research-use data: never copy them into the repository.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "EMOTIONS",
    "FER2013_EMOTIONS",
    "FER2013_TO_FERPLUS",
    "SPLITS",
    "VOTE_COLUMNS",
    "FerPlus",
    "FerPlusSample",
    "FerPlusUpstream",
    "majority_label",
    "soft_label",
    "to_shards",
]

VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
EMOTIONS = VOTE_COLUMNS[:8]
FER2013_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_TO_FERPLUS = (4, 5, 6, 1, 3, 2, 0)
"""FER+ emotion index of each FER2013 class (angry->anger, ..., neutral->neutral)."""
Split = Literal["Train", "Valid", "Test"]
SPLITS: tuple[str, ...] = ("Train", "Valid", "Test")
_USAGE = {"Train": "Training", "Valid": "PublicTest", "Test": "PrivateTest"}
_UNKNOWN = 8


@dataclass(frozen=True, slots=True)
class FerPlusSample:
    """One FER+ face.

    Attributes:
        image: (48, 48) uint8 greyscale face crop.
        votes: (10,) int64 annotator counts in :data:`VOTE_COLUMNS` order (usually sum 10).
        soft_label: (8,) float32 distribution over :data:`EMOTIONS` (unknown/NF votes dropped,
            renormalised to sum 1), or ``None`` when no annotator voted for an emotion.
        majority_label: index into :data:`EMOTIONS` by the official FER+ majority rule, or ``None``
            when the rule gives unknown (8) or not-a-face (9).
        row_index: 0-based row in FER2013's ``fer2013.csv`` (= row in ``fer2013new.csv``).
        fer2013_emotion: original FER2013 class, index into :data:`FER2013_EMOTIONS`, or ``None``.
        split: 'Train', 'Valid' or 'Test'.
        image_name: FER+ image name (``fer0000000.png``).
    """

    image: np.ndarray
    votes: np.ndarray
    soft_label: np.ndarray | None
    majority_label: int | None
    row_index: int
    fer2013_emotion: int | None
    split: str
    image_name: str


def majority_label(votes: Sequence[int] | np.ndarray) -> int:
    """Returns the official FER+ majority label, an index 0-9 into :data:`VOTE_COLUMNS`.

    Follows ``microsoft/FERPlus`` ``src/ferplus.py::_process_data`` (mode 'majority'): votes of 1
    are dropped as outliers; the top column wins if it holds more than half of the remaining
    votes, else the label is 8 (unknown). Ties go to the first column, as ``np.argmax``.

    Args:
        votes: (10,) vote counts.
    """
    v = np.asarray(votes, dtype=np.float64).copy()
    if v.shape != (10,):
        raise ConfigError(f"majority_label: expected 10 vote counts, got shape {v.shape}")
    v[v <= 1.0] = 0.0
    top = float(v.max())
    if top > 0.5 * float(v.sum()):
        return int(np.argmax(v))
    return _UNKNOWN


def soft_label(votes: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """Returns the (8,) float32 emotion distribution of the votes, or ``None`` with no emotion vote.

    Unknown and NF votes are dropped and the 8 emotion counts renormalised to sum to 1 (all votes
    kept, unlike :func:`majority_label`'s outlier removal, so the distribution is the raw crowd's).
    """
    v = np.asarray(votes, dtype=np.float64)
    if v.shape != (10,):
        raise ConfigError(f"soft_label: expected 10 vote counts, got shape {v.shape}")
    e = v[:8]
    total = float(e.sum())
    if total <= 0:
        return None
    return (e / total).astype(np.float32)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")


def _make_sample(
    image: np.ndarray,
    votes: np.ndarray,
    row_index: int,
    fer2013: int,
    split: str,
    image_name: str,
) -> FerPlusSample:
    maj = majority_label(votes)
    return FerPlusSample(
        image=image,
        votes=votes,
        soft_label=soft_label(votes),
        majority_label=maj if maj < _UNKNOWN else None,
        row_index=row_index,
        fer2013_emotion=fer2013 if 0 <= fer2013 < 7 else None,
        split=split,
        image_name=image_name,
    )


class _Reader:
    """Shared sequence behaviour of the readers."""

    split: str

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> FerPlusSample:
        raise NotImplementedError

    def __iter__(self) -> Iterator[FerPlusSample]:
        for i in range(len(self)):
            yield self[i]

    def _index(self, i: int) -> int:
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"FER+ {self.split}: index {i} out of range for {n} samples")
        return j


class FerPlus(_Reader):
    """Reads one split of the packed FER+ layout (WebP npz shards + labels CSV).

    Images are decoded on access, so construction only loads the compressed bytes (~6 MB/split
    for Valid/Test, ~25 MB for Train).

    Args:
        root: folder with ``{split}_images*.npz`` and ``{split}_labels.csv``.
        split: 'Train', 'Valid' or 'Test'.

    Raises:
        ConfigError: unknown split.
        InputError: missing or corrupt npz/CSV (named), or CSV rows that do not match the images.
    """

    def __init__(self, root: str | Path, split: Split) -> None:
        _check_split(split)
        self.root = Path(root)
        self.split = split
        npzs = sorted(self.root.glob(f"{split}_images*.npz"))
        if not npzs:
            raise InputError(self.root / f"{split}_images.npz", "FER+ image file not found")
        blobs, offsets, rows = [], [], []
        base = 0
        for p in npzs:
            try:
                with np.load(p) as d:
                    data = np.asarray(d["webp"], dtype=np.uint8)
                    off = np.asarray(d["offsets"], dtype=np.int64)
                    ri = np.asarray(d["row_index"], dtype=np.int64)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
                raise InputError(
                    p,
                    f"corrupt FER+ image file, need npz with webp/offsets/row_index "
                    f"({type(e).__name__}: {e})",
                ) from e
            if off.ndim != 1 or len(off) != len(ri) + 1 or off[-1] != len(data):
                raise InputError(
                    p,
                    f"offsets ({len(off)}) do not match row_index ({len(ri)}) "
                    "and the webp byte count",
                )
            blobs.append(data)
            offsets.append(off[:-1] + base)
            rows.append(ri)
            base += len(data)
        self._data = np.concatenate(blobs)
        self._offsets = np.concatenate([*offsets, np.array([base], dtype=np.int64)])
        self.row_index = np.concatenate(rows)
        self.csv_path = self.root / f"{split}_labels.csv"
        self._read_labels()

    def _read_labels(self) -> None:
        path = self.csv_path
        need = ("row_index", "image_name", *VOTE_COLUMNS, "fer2013_emotion")
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in need if c not in (reader.fieldnames or [])]
                if missing:
                    raise InputError(path, f"labels CSV lacks columns {missing}")
                rows = list(reader)
        except FileNotFoundError as e:
            raise InputError(path, "FER+ labels CSV not found") from e
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise InputError(path, f"unreadable labels CSV ({e})") from e
        try:
            self._csv_rows = np.array([int(r["row_index"]) for r in rows], dtype=np.int64)
            self.votes = np.array([[int(r[c]) for c in VOTE_COLUMNS] for r in rows], np.int64)
            self._fer2013 = np.array([int(r["fer2013_emotion"]) for r in rows], dtype=np.int64)
        except (ValueError, TypeError) as e:
            raise InputError(path, f"non-integer value in labels CSV ({e})") from e
        self._names = [r["image_name"] for r in rows]
        self.csv_majority = (
            np.array([int(r["majority_label"]) for r in rows], np.int64)
            if rows and "majority_label" in rows[0]
            else None
        )
        if len(rows) != len(self.row_index):
            raise InputError(
                path,
                f"{len(rows)} label rows but {len(self.row_index)} images in the npz files; "
                "labels and images do not match",
            )
        bad = np.flatnonzero(self._csv_rows != self.row_index)
        if len(bad):
            i = int(bad[0])
            raise InputError(
                path,
                f"row {i}: row_index {self._csv_rows[i]} but the image has row_index "
                f"{self.row_index[i]}; labels and images do not match",
            )

    def __len__(self) -> int:
        return len(self.row_index)

    def image(self, i: int) -> np.ndarray:
        """Returns image ``i`` as (48, 48) uint8 greyscale."""
        from PIL import Image

        from facexpr.io.shards import MAX_IMAGE_PIXELS

        j = self._index(i)
        a, b = int(self._offsets[j]), int(self._offsets[j + 1])
        try:
            img = Image.open(io.BytesIO(self._data[a:b].tobytes()))
            # Check the header's size before decoding: a small file can claim a huge image.
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(
                    self.root,
                    f"{self.split} image {j}: {img.width}x{img.height} px is larger than the "
                    f"{MAX_IMAGE_PIXELS}-pixel limit (a decompression bomb?); refused before "
                    "decoding",
                )
            img = img.convert("L")
        except (OSError, Image.DecompressionBombError) as e:
            raise InputError(self.root, f"{self.split} image {j}: undecodable WebP ({e})") from e
        return np.asarray(img, dtype=np.uint8)

    def __getitem__(self, i: int) -> FerPlusSample:
        j = self._index(i)
        return _make_sample(
            self.image(j),
            self.votes[j].copy(),
            int(self.row_index[j]),
            int(self._fer2013[j]),
            self.split,
            self._names[j],
        )


class FerPlusUpstream(_Reader):
    """Reads one split of the original layout: ``fer2013.csv`` + Microsoft's ``fer2013new.csv``.

    Rows are joined by position (both files list the 35,887 FER2013 rows in the same order). As
    FER+'s ``generate_training_data.py`` does, rows with an empty ``Image name`` are left out, and
    of rows sharing an image name only the later one is kept (the generator overwrote the file).

    Args:
        fer2013_csv: Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``; pixels are 2304 ints).
        ferplus_csv: ``fer2013new.csv`` (``Usage,Image name,neutral,...,NF``).
        split: 'Train' (Usage Training), 'Valid' (PublicTest) or 'Test' (PrivateTest).

    Raises:
        ConfigError: unknown split.
        InputError: missing/unreadable file, missing columns, differing row counts, bad pixels.
    """

    def __init__(self, fer2013_csv: str | Path, ferplus_csv: str | Path, split: Split) -> None:
        _check_split(split)
        self.split = split
        self.fer2013_csv = Path(fer2013_csv)
        self.ferplus_csv = Path(ferplus_csv)
        fer = _read_csv(self.fer2013_csv, ("emotion", "pixels", "Usage"))
        plus = _read_csv(self.ferplus_csv, ("Usage", "Image name", *VOTE_COLUMNS))
        if len(fer) != len(plus):
            raise InputError(
                self.ferplus_csv,
                f"{len(plus)} rows but {self.fer2013_csv} has {len(fer)}; the files do not match",
            )
        last_row_of: dict[str, int] = {}
        for i, r in enumerate(plus):
            name = r["Image name"].strip()
            if name:
                last_row_of[name] = i
        keep = sorted(last_row_of.values())
        usage = _USAGE[split]
        self._rows: list[int] = []
        self._fer = fer
        self._plus = plus
        for i in keep:
            if plus[i]["Usage"] != fer[i]["Usage"]:
                raise InputError(
                    self.ferplus_csv,
                    f"row {i}: Usage {plus[i]['Usage']!r} but {self.fer2013_csv} says "
                    f"{fer[i]['Usage']!r}; the files do not match",
                )
            if plus[i]["Usage"] == usage:
                self._rows.append(i)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> FerPlusSample:
        row = self._rows[self._index(i)]
        f, p = self._fer[row], self._plus[row]
        where = f"{self.fer2013_csv}: row {row}"
        try:
            px = np.array(f["pixels"].split(), dtype=np.int64)
            emotion = int(f["emotion"])
        except ValueError as e:
            raise InputError(self.fer2013_csv, f"row {row}: non-numeric value ({e})") from e
        try:
            votes = np.array([int(float(p[c])) for c in VOTE_COLUMNS], dtype=np.int64)
        except ValueError as e:
            raise InputError(self.ferplus_csv, f"row {row}: non-numeric vote ({e})") from e
        if px.size != 48 * 48 or px.min() < 0 or px.max() > 255:
            raise InputError(where, f"pixels must be 2304 values in 0..255, got {px.size}")
        return _make_sample(
            px.astype(np.uint8).reshape(48, 48),
            votes,
            row,
            emotion,
            self.split,
            p["Image name"].strip(),
        )


def _read_csv(path: Path, need: Sequence[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in need if c not in fields]
            if missing:
                raise InputError(path, f"CSV lacks columns {missing} (has {fields})")
            reader.fieldnames = fields
            return list(reader)
    except FileNotFoundError as e:
        raise InputError(path, "CSV file not found") from e
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise InputError(path, f"unreadable CSV ({e})") from e


def to_shards(
    reader: FerPlus | FerPlusUpstream,
    out_dir: str | Path,
    *,
    samples_per_shard: int = 2000,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Writes a FER+ split into the facexpr shard format; returns the dataset folder.

    ``--aligned`` semantics: FER images already are face crops, so they are stored as they are,
    **48x48** (not upsampled: resizing is a lossy choice that belongs to the training transform),
    grey replicated to RGB since the format stores (H, W, 3) crops. The crop size is recorded in
    the manifest attributes (``crop_size``: 48, ``greyscale``: true).

    Labels per sample: ``votes`` (10,) int64, ``emotion_soft`` (8,) float32 (absent when there is
    no emotion vote), ``emotion`` majority index into :data:`EMOTIONS` (absent for unknown/NF),
    ``emotion_name`` (str, absent likewise), ``fer2013_emotion`` (absent when unknown) and
    ``ferplus_split``. ``source`` is 'ferplus'. FER2013 has no subject ids, so ``subject_id`` is
    the empty string, the format's explicit missing value: subject-exclusive splits are impossible
    and the official split is kept in ``ferplus_split`` (and in the manifest attributes).

    Args:
        reader: an opened split.
        out_dir: dataset folder to create.
        samples_per_shard: samples per tar shard.
        overwrite: replace an existing dataset in ``out_dir``.
        progress: show a tqdm bar on stderr.
    """
    from facexpr.io.shard_writer import ShardWriter
    from facexpr.io.shards import LabelField, Sample

    if samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    schema = [
        LabelField("votes", (10,), "int64", "FER+ annotator counts: " + ",".join(VOTE_COLUMNS)),
        LabelField(
            "emotion_soft",
            (8,),
            "float32",
            "FER+ vote distribution over " + ",".join(EMOTIONS) + " (unknown/NF dropped), sums 1",
        ),
        LabelField("emotion", (), "int64", "FER+ majority label, index into emotion_soft order"),
        LabelField("emotion_name", (), "str", "FER+ majority label name"),
        LabelField(
            "fer2013_emotion", (), "int64", "original FER2013 class: " + ",".join(FER2013_EMOTIONS)
        ),
        LabelField("ferplus_split", (), "str", "official FER+ split: Train, Valid or Test"),
    ]
    if isinstance(reader, FerPlus):
        origin = {"layout": "packed", "root": str(reader.root)}
    else:
        origin = {
            "layout": "upstream",
            "fer2013_csv": str(reader.fer2013_csv),
            "ferplus_csv": str(reader.ferplus_csv),
        }
    attributes = {
        "dataset": "FER+ (FER2013 images + Microsoft FER+ votes)",
        "split": reader.split,
        "crop_size": 48,
        "greyscale": True,
        "emotions": list(EMOTIONS),
        "vote_columns": list(VOTE_COLUMNS),
        "majority_rule": "microsoft/FERPlus src/ferplus.py _process_data, mode 'majority'",
        "licence": (
            "FER+ votes MIT (Microsoft); FER2013 images research use only, do not redistribute"
        ),
        "origin": origin,
    }
    items: Iterator[FerPlusSample] = iter(reader)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(reader), desc=f"FER+ {reader.split}", unit="img")
    with ShardWriter(
        out_dir,
        samples_per_shard=samples_per_shard,
        schema=schema,
        created_by="facexpr.io.datasets.ferplus.to_shards",
        attributes=attributes,
        overwrite=overwrite,
    ) as writer:
        for s in items:
            labels: dict[str, object] = {"votes": s.votes, "ferplus_split": s.split}
            if s.soft_label is not None:
                labels["emotion_soft"] = s.soft_label
            if s.majority_label is not None:
                labels["emotion"] = s.majority_label
                labels["emotion_name"] = EMOTIONS[s.majority_label]
            if s.fer2013_emotion is not None:
                labels["fer2013_emotion"] = s.fer2013_emotion
            writer.write(
                Sample(
                    key=f"ferplus-{s.row_index:05d}",
                    image=np.repeat(s.image[:, :, None], 3, axis=2),
                    labels=labels,
                    source="ferplus",
                    subject_id="",
                    provenance={
                        "row_index": s.row_index,
                        "image_name": s.image_name,
                        "split": s.split,
                    },
                )
            )
    log.info("wrote %d FER+ %s samples to %s", len(reader), reader.split, out_dir)
    return Path(out_dir)

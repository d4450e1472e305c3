"""What the AU / emotion / valence-arousal dataset readers share: the label vocabulary, the
record they yield, text and image reading with errors that name the file, and shard writing.

One vocabulary for every reader (``../shared/STYLE.md`` section 13):

- ``au_occurrence`` (K,) int32: 1 present, 0 absent, **-1 not coded / unknown** (BP4D's 9,
  Aff-Wild2's -1), masked by every metric, never read as 0. The AU names (``AU01``, ...) are the
  manifest attribute ``au_names``.
- ``au_intensity`` (K,) float32: FACS 0-5 (0 absent, A=1 .. E=5), -1 not coded.
- ``emotion`` () int64: index into :data:`EMOTIONS` (the FER+ order used across facexpr:
  neutral, happiness, surprise, sadness, anger, disgust, fear, contempt), absent when the source
  label is not one of them (AffectNet's None / Uncertain / No-Face, Aff-Wild2's Other);
  ``emotion_source`` () int64 keeps the dataset's own code, ``emotion_name`` its name.
- ``valence``, ``arousal`` () float32 in [-1, 1], absent when the source marks them invalid.
- ``frame`` () int64 (the source's frame number), ``official_split`` str.

``subject_id`` is the dataset's person id (BP4D ``F001``, DISFA ``SN001``, CK+ ``S005``, an
Aff-Wild2 video), or "" where the dataset has none (AffectNet, RAF-DB).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets.ferplus import EMOTIONS

log = logging.getLogger(__name__)

__all__ = [
    "EMOTIONS",
    "DatasetReader",
    "FaceRecord",
    "OnError",
    "au_fields",
    "au_name",
    "check_on_error",
    "emotion_fields",
    "safe_key",
    "write_shards",
]

OnError = Literal["raise", "skip"]
UNKNOWN = -1
"""Value of a label that is not coded (masked, never 0)."""


def au_name(number: int) -> str:
    """Returns the facexpr name of FACS action unit ``number`` ('AU01', 'AU12', ...)."""
    return f"AU{int(number):02d}"


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def check_stride(stride: int) -> None:
    if int(stride) < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")


_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-]")


def safe_key(*parts: object) -> str:
    """Returns a shard sample key from parts: joined by '-', anything but [A-Za-z0-9_-] -> '_'."""
    return "-".join(_KEY_BAD.sub("_", str(p)) for p in parts)


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One labelled face image a reader yields.

    Attributes:
        key: unique sample key (no '.' or '/').
        image: (H, W, 3) uint8 RGB: the dataset's frame or crop as stored upstream.
        subject_id: person id, "" when the dataset has none.
        labels: field name -> value (fields of the reader's :meth:`schema`); a missing label is
            absent.
        provenance: the upstream file(s) and frame it came from.
    """

    key: str
    image: np.ndarray
    subject_id: str
    labels: Mapping[str, Any]
    provenance: Mapping[str, Any] = field(default_factory=dict)


class DatasetReader(Protocol):
    """What :func:`write_shards` needs of a reader."""

    name: str
    n_skipped: int

    def __iter__(self) -> Iterator[FaceRecord]: ...

    def __len__(self) -> int: ...

    def schema(self) -> list[Any]: ...

    def attributes(self) -> dict[str, Any]: ...

    def splits(self) -> dict[str, list[str]]: ...


def au_fields(au_names: Sequence[str], *, intensity: bool) -> list[Any]:
    """Returns the AU label fields for ``au_names`` (occurrence, and intensity if asked)."""
    from facexpr.io.shards import LabelField

    k = len(au_names)
    names = ",".join(au_names)
    out = [
        LabelField(
            "au_occurrence",
            (k,),
            "int32",
            f"AU occurrence of {names}: 1 present, 0 absent, -1 not coded (masked, never 0)",
        )
    ]
    if intensity:
        out.append(
            LabelField(
                "au_intensity",
                (k,),
                "float32",
                f"FACS intensity 0-5 (0 absent, A=1 .. E=5) of {names}; -1 not coded",
            )
        )
    return out


def emotion_fields(source_codes: str) -> list[Any]:
    """Returns the emotion label fields; ``source_codes`` describes the dataset's own codes."""
    from facexpr.io.shards import LabelField

    return [
        LabelField("emotion", (), "int64", "index into " + ",".join(EMOTIONS)),
        LabelField("emotion_name", (), "str", "the dataset's emotion name"),
        LabelField("emotion_source", (), "int64", f"the dataset's own code: {source_codes}"),
    ]


def va_fields() -> list[Any]:
    from facexpr.io.shards import LabelField

    return [
        LabelField("valence", (), "float32", "valence in [-1, 1]; absent when invalid upstream"),
        LabelField("arousal", (), "float32", "arousal in [-1, 1]; absent when invalid upstream"),
    ]


def meta_fields(*, frame: bool = True, split: bool = True) -> list[Any]:
    from facexpr.io.shards import LabelField

    out = []
    if frame:
        out.append(LabelField("frame", (), "int64", "frame number in the source's own numbering"))
    if split:
        out.append(LabelField("official_split", (), "str", "the dataset's official split"))
    return out


MAX_LABEL_FILE_BYTES = 256 << 20
"""Largest label text file read (the largest upstream ones, ABAW annotation files, are ~1 MB)."""


def read_lines(path: Path, what: str) -> list[str]:
    """Returns the lines of a text file (no line ends).

    Raises:
        InputError: missing, unreadable, not text, or larger than :data:`MAX_LABEL_FILE_BYTES`.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_LABEL_FILE_BYTES:
                raise InputError(
                    path, f"{what} of {size} bytes is larger than the {MAX_LABEL_FILE_BYTES}-byte "
                    "limit of a label file; refused"
                )  # fmt: skip
            return fh.read(MAX_LABEL_FILE_BYTES + 1).splitlines()
    except FileNotFoundError as e:
        raise InputError(path, f"{what} not found") from e
    except IsADirectoryError as e:
        raise InputError(path, f"{what} is a folder, expected a file") from e
    except UnicodeDecodeError as e:
        raise InputError(path, f"{what} is not text ({e})") from e
    except OSError as e:
        raise InputError(path, f"{what} unreadable ({e.strerror})") from e


def need_dir(path: Path, what: str) -> Path:
    """Returns ``path`` if it is a folder, else raises an InputError saying what was expected."""
    if not path.is_dir():
        raise InputError(path, f"{what} not found (expected a folder)")
    return path


class ImageLoader:
    """Reads images with the reader's ``on_error`` policy, counting what it skipped."""

    def __init__(self, on_error: OnError) -> None:
        check_on_error(on_error)
        self.on_error = on_error
        self.n_skipped = 0

    def skip_or_raise(self, error: InputError) -> None:
        """Raises ``error`` under 'raise'; under 'skip' logs and counts it."""
        if self.on_error == "raise":
            raise error
        self.n_skipped += 1
        log.warning("skipped: %s", error)

    def read(self, path: Path) -> np.ndarray | None:
        """Returns the (H, W, 3) uint8 RGB image, or None when skipped under 'skip'."""
        from facexpr.io.images import read_image

        try:
            if not path.exists():
                raise InputError(path, "image listed in the labels is missing")
            return read_image(path)
        except InputError as e:
            self.skip_or_raise(e)
            return None


def write_shards(
    reader: DatasetReader,
    out_dir: str | Path,
    *,
    samples_per_shard: int = 1000,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Converts a reader's records into the facexpr shard format; returns the dataset folder.

    The manifest records the reader's schema, attributes (AU names, emotion vocabulary, whether
    images are face crops, licence note, the protocol of the splits) and its subject-exclusive
    splits (``fold1`` .. for BP4D / DISFA / CK+).
    """
    from facexpr.io.shard_writer import ShardWriter
    from facexpr.io.shards import Sample

    if samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    items: Iterator[FaceRecord] = iter(reader)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(reader), desc=reader.name, unit="img")
    n = 0
    with ShardWriter(
        out_dir,
        samples_per_shard=samples_per_shard,
        schema=reader.schema(),
        created_by=f"facexpr dataset {reader.name}",
        attributes=reader.attributes(),
        overwrite=overwrite,
    ) as writer:
        for r in items:
            writer.write(
                Sample(
                    key=r.key,
                    image=r.image,
                    labels=dict(r.labels),
                    source=reader.name,
                    subject_id=r.subject_id,
                    provenance=dict(r.provenance),
                )
            )
            n += 1
        splits = reader.splits()
        if splits:
            writer.set_splits(splits)
    log.info("wrote %d %s samples to %s (%d skipped)", n, reader.name, out_dir, reader.n_skipped)
    return Path(out_dir)

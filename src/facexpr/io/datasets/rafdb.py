"""RAF-DB (basic) reader: aligned in-the-wild faces with one of 7 crowd-sourced emotion labels.

Li, Deng, Du, "Reliable Crowdsourcing and Deep Locality-Preserving Learning for Expression
Recognition in the Wild", CVPR 2017.

Upstream layout of the basic set::

    ROOT/EmoLabel/list_patition_label.txt    "train_00001.jpg 5" per line (upstream's spelling)
    ROOT/Image/aligned/train_00001_aligned.jpg   100x100 aligned faces

Labels: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral, mapped to
facexpr's emotion order (``emotion_source`` keeps 1-7). The split is the file name's prefix
(train / test). RAF-DB has no subject ids (``subject_id`` ""). Research use under its terms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import (
    EMOTIONS,
    FaceRecord,
    ImageLoader,
    OnError,
    emotion_fields,
    meta_fields,
    read_lines,
    safe_key,
)

log = logging.getLogger(__name__)

__all__ = ["RAFDB_EMOTIONS", "RafDB"]

RAFDB_EMOTIONS = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
_TO_FACEXPR = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"


class RafDB:
    """Reads RAF-DB basic from the upstream layout.

    Args:
        root: the ``basic`` folder (holding ``EmoLabel/`` and ``Image/``).
        split: 'train', 'test' or None for both.
        on_error: 'raise' on a missing or corrupt image, or 'skip' it.

    Raises:
        InputError: missing or garbled label list (named, with the line).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: Literal["train", "test"] | None = "test",
        on_error: OnError = "raise",
    ) -> None:
        if split not in ("train", "test", None):
            raise ConfigError(f"split must be 'train', 'test' or None, got {split!r}")
        self.root = Path(root)
        self.name = "rafdb"
        self.split = split
        self._loader = ImageLoader(on_error)
        self.label_file = self.root / LABEL_FILE
        self.items: list[tuple[str, int, str]] = []
        for i, line in enumerate(read_lines(self.label_file, "RAF-DB label list")):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
                raise InputError(
                    self.label_file, f"line {i + 1}: expected 'NAME.jpg LABEL(1-7)', got {line!r}"
                )
            name, label = parts[0], int(parts[1])
            which = name.split("_", 1)[0]
            if which not in ("train", "test") or "/" in name or "\\" in name:
                raise InputError(
                    self.label_file, f"line {i + 1}: image name {name!r} is not train_*/test_*"
                )
            if split is None or which == split:
                self.items.append((name, label, which))
        if not self.items:
            raise InputError(self.label_file, f"lists no image of the split {split or 'any'}")

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[FaceRecord]:
        aligned = self.root / "Image" / "aligned"
        for name, label, which in self.items:
            stem = Path(name).stem
            path = aligned / f"{stem}_aligned.jpg"
            image = self._loader.read(path)
            if image is None:
                continue
            yield FaceRecord(
                key=safe_key("rafdb", stem),
                image=image,
                subject_id="",
                labels={
                    "emotion": EMOTIONS.index(_TO_FACEXPR[label - 1]),
                    "emotion_name": RAFDB_EMOTIONS[label - 1],
                    "emotion_source": label,
                    "official_split": which,
                },
                provenance={"image": str(path), "label_file": str(self.label_file)},
            )

    def schema(self) -> list[Any]:
        codes = ", ".join(f"{i + 1} {n}" for i, n in enumerate(RAFDB_EMOTIONS))
        return [*emotion_fields(codes), *meta_fields(frame=False)]

    def splits(self) -> dict[str, list[str]]:
        return {}

    def attributes(self) -> dict[str, Any]:
        return {
            "dataset": "RAF-DB basic",
            "emotions": list(EMOTIONS),
            "source_emotions": list(RAFDB_EMOTIONS),
            "aligned": True,
            "images": "upstream aligned 100x100 crops",
            "split": self.split or "all",
            "protocol": {"kind": "official split", "subjects": "none (no identities)"},
            "licence": "non-commercial research under the RAF-DB terms; never redistribute",
            "origin": {"root": str(self.root)},
        }

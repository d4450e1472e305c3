"""AffectNet reader: in-the-wild faces with an expression class, valence, arousal, box and
68 landmarks, from the manual annotation CSVs.

Mollahosseini, Hasani, Mahoor, "AffectNet: A Database for Facial Expression, Valence, and
Arousal Computing in the Wild", IEEE Transactions on Affective Computing 2017.

Upstream layout::

    ROOT/training.csv, ROOT/validation.csv      manual annotations
    ROOT/Manually_Annotated_Images/689/737db2...jpg

CSV columns: ``subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal``; ``facial_landmarks`` is 68 ``x;y`` pairs
joined by ';'. Expression codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust,
6 Anger, 7 Contempt, 8 None, 9 Uncertain, 10 No-Face. Codes 8-10 keep ``emotion_source`` but
get no ``emotion``; valence and arousal of -2 (AffectNet's "invalid", given to No-Face and some
None images) are left absent. The face box crops the stored image; ``landmarks`` are moved into
the crop. AffectNet has no subject ids (``subject_id`` ""), so only its official split exists
(``official_split``: train or validation). Research use under the AffectNet licence.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import (
    EMOTIONS,
    FaceRecord,
    ImageLoader,
    OnError,
    emotion_fields,
    meta_fields,
    safe_key,
    va_fields,
)

log = logging.getLogger(__name__)

__all__ = ["AFFECTNET_EXPRESSIONS", "AffectNet", "AffectNetRow"]

AFFECTNET_EXPRESSIONS = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None",
    "Uncertain", "No-Face",
)  # fmt: skip
_TO_FACEXPR = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger",
               "contempt")  # fmt: skip
COLUMNS = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
    "expression", "valence", "arousal",
)  # fmt: skip
_CSV = {"train": "training.csv", "validation": "validation.csv"}
_INVALID_VA = -2.0


@dataclass(frozen=True, slots=True)
class AffectNetRow:
    """One annotation row.

    Attributes:
        path: image path relative to ``Manually_Annotated_Images/``.
        box: (x, y, w, h) px in the image.
        landmarks: (68, 2) float32 px in the image, or None when the cell is empty.
        expression: code 0-10.
        valence: in [-1, 1], or None (upstream -2).
        arousal: in [-1, 1], or None.
        row: 1-based line number in the CSV (the header is line 1).
    """

    path: str
    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    expression: int
    valence: float | None
    arousal: float | None
    row: int


def _parse_row(csv_path: Path, line: int, r: dict[str, str]) -> AffectNetRow:
    where = f"line {line}"
    try:
        box = tuple(int(float(r[c])) for c in ("face_x", "face_y", "face_width", "face_height"))
        expression = int(float(r["expression"]))
        valence, arousal = float(r["valence"]), float(r["arousal"])
    except (ValueError, TypeError):
        raise InputError(
            csv_path, f"{where}: a box, expression, valence or arousal cell is not a number"
        ) from None
    if not 0 <= expression <= 10:
        raise InputError(csv_path, f"{where}: expression {expression} is outside 0-10")
    if box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
        raise InputError(csv_path, f"{where}: face box {box} is empty or negative")
    va = []
    for name, v in (("valence", valence), ("arousal", arousal)):
        if v == _INVALID_VA:
            va.append(None)
        elif -1.0 <= v <= 1.0:
            va.append(v)
        else:
            raise InputError(csv_path, f"{where}: {name} {v} is outside [-1, 1] (and not -2)")
    lm = None
    cell = (r.get("facial_landmarks") or "").strip()
    if cell:
        try:
            vals = np.array([float(v) for v in cell.split(";") if v.strip()], np.float32)
        except ValueError:
            raise InputError(
                csv_path, f"{where}: facial_landmarks is not ';'-separated numbers"
            ) from None
        if vals.size != 136:
            raise InputError(csv_path, f"{where}: facial_landmarks has {vals.size} numbers, "
                                       "expected 136 (68 x;y)")  # fmt: skip
        lm = vals.reshape(68, 2)
    path = r["subDirectory_filePath"].strip()
    if not path or ".." in Path(path).parts or Path(path).is_absolute():
        raise InputError(csv_path, f"{where}: subDirectory_filePath {path!r} is not a relative "
                                   "path inside the image folder")  # fmt: skip
    return AffectNetRow(path, box, lm, expression, va[0], va[1], line)  # type: ignore[arg-type]


class AffectNet:
    """Reads one split of AffectNet's manual annotations.

    Args:
        root: the folder holding ``training.csv`` / ``validation.csv`` and
            ``Manually_Annotated_Images/``.
        split: 'train' (training.csv) or 'validation' (validation.csv, the usual test set).
        classes: 8 keeps the 8 emotions and drops codes 8-10 (None, Uncertain, No-Face); 7 also
            drops contempt (the 7-class protocol); 'all' keeps every row (codes 8-10 without an
            ``emotion`` label, their valence and arousal kept when valid).
        on_error: 'raise' on a missing or corrupt image, or 'skip' it.

    Raises:
        InputError: missing CSV or columns, a garbled row (named with its line).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: Literal["train", "validation"] = "validation",
        classes: Literal[7, 8, "all"] = "all",
        on_error: OnError = "raise",
    ) -> None:
        if split not in _CSV:
            raise ConfigError(f"split must be 'train' or 'validation', got {split!r}")
        if classes not in (7, 8, "all"):
            raise ConfigError(f"classes must be 7, 8 or 'all', got {classes!r}")
        self.root = Path(root)
        self.name = "affectnet"
        self.split = split
        self.classes = classes
        self._loader = ImageLoader(on_error)
        self.csv_path = self.root / _CSV[split]
        rows = []
        try:
            with open(self.csv_path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                fields = [c.strip() for c in (reader.fieldnames or [])]
                missing = [c for c in COLUMNS if c not in fields]
                if missing:
                    raise InputError(self.csv_path, f"CSV lacks columns {missing}")
                reader.fieldnames = fields
                for i, r in enumerate(reader):
                    rows.append(_parse_row(self.csv_path, i + 2, r))
        except FileNotFoundError as e:
            raise InputError(self.csv_path, "AffectNet annotation CSV not found") from e
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise InputError(self.csv_path, f"unreadable CSV ({e})") from e
        top = {7: 7, 8: 8, "all": 11}[classes]
        self.rows = [r for r in rows if r.expression < top]

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[FaceRecord]:
        images = self.root / "Manually_Annotated_Images"
        for r in self.rows:
            path = images / r.path
            image = self._loader.read(path)
            if image is None:
                continue
            h, w = image.shape[:2]
            x0, y0 = min(r.box[0], w - 1), min(r.box[1], h - 1)
            x1, y1 = min(r.box[0] + r.box[2], w), min(r.box[1] + r.box[3], h)
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
            labels: dict[str, Any] = {
                "emotion_source": r.expression,
                "emotion_name": AFFECTNET_EXPRESSIONS[r.expression],
                "official_split": self.split,
                "face_box": np.array(r.box, np.float32),
            }
            if r.expression < 8:
                labels["emotion"] = EMOTIONS.index(_TO_FACEXPR[r.expression])
            if r.valence is not None:
                labels["valence"] = r.valence
            if r.arousal is not None:
                labels["arousal"] = r.arousal
            if r.landmarks is not None:
                labels["landmarks"] = r.landmarks - np.array([x0, y0], np.float32)
            yield FaceRecord(
                key=safe_key("affectnet", Path(r.path).parent, Path(r.path).stem),
                image=crop,
                subject_id="",
                labels=labels,
                provenance={"csv": str(self.csv_path), "line": r.row, "image": r.path},
            )

    def schema(self) -> list[Any]:
        from facexpr.io.shards import LabelField

        codes = ", ".join(f"{i} {n}" for i, n in enumerate(AFFECTNET_EXPRESSIONS))
        return [
            *emotion_fields(codes),
            *va_fields(),
            *meta_fields(frame=False),
            LabelField("face_box", (4,), "float32", "AffectNet face box x, y, w, h px in the "
                                                    "original image (the crop stored)"),
            LabelField("landmarks", (68, 2), "float32", "AffectNet's 68 landmarks, px in the "
                                                        "stored crop"),
        ]  # fmt: skip

    def splits(self) -> dict[str, list[str]]:
        return {}

    def attributes(self) -> dict[str, Any]:
        return {
            "dataset": "AffectNet (manually annotated)",
            "emotions": list(EMOTIONS),
            "source_emotions": list(AFFECTNET_EXPRESSIONS),
            "aligned": True,
            "images": "face-box crops of the annotated images (not similarity-aligned)",
            "split": self.split,
            "classes": self.classes,
            "protocol": {"kind": "official split", "subjects": "none (no identities)"},
            "licence": "research use under the AffectNet licence agreement; never redistribute",
            "origin": {"csv": str(self.csv_path)},
        }

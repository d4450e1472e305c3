"""CK+ reader: posed expression sequences from neutral to peak, FACS-coded and emotion-labelled.

Lucey et al., "The Extended Cohn-Kanade Dataset (CK+): A complete dataset for action unit and
emotion-specified expression", CVPR Workshops 2010.

Upstream layout::

    ROOT/cohn-kanade-images/S005/001/S005_001_00000001.png ... _00000011.png
    ROOT/FACS/S005/001/S005_001_00000011_facs.txt        "AU intensity" per line (floats)
    ROOT/Emotion/S005/001/S005_001_00000011_emotion.txt  one float: the emotion code

The labels belong to the last (peak) frame their file names. FACS files list every AU coded at
the peak, so an AU not listed is absent (0); an intensity of 0 in the file means "coded, no
intensity given" (``au_intensity`` -1). Only 327 of the 593 sequences have an emotion file; the
others carry AUs only. Emotion codes: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear,
5 happy, 6 sadness, 7 surprise. With ``neutral_first`` the first frame of each sequence is also
written, labelled neutral (no AU labels), as CK+ emotion protocols often do.

Subjects are ``S005`` ...; CK+ has no published fold list, so a seeded 10-fold subject-exclusive
split is recorded. CK+ is for non-commercial research under its agreement; never redistribute.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.core.errors import InputError
from facexpr.io.datasets._common import (
    EMOTIONS,
    UNKNOWN,
    FaceRecord,
    ImageLoader,
    OnError,
    au_fields,
    au_name,
    emotion_fields,
    meta_fields,
    need_dir,
    read_lines,
    safe_key,
)
from facexpr.io.datasets.protocols import fold_splits

log = logging.getLogger(__name__)

__all__ = ["CKPLUS_EMOTIONS", "CKPlus", "CKSequence"]

CKPLUS_EMOTIONS = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happy",
    "sadness",
    "surprise",
)
_TO_FACEXPR = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happiness",
    6: "sadness",
    7: "surprise",
}
_NAME = re.compile(r"^(?P<s>S\d+)_(?P<q>\d+)_(?P<f>\d+)_(?P<kind>facs|emotion)$")


@dataclass(frozen=True, slots=True)
class CKSequence:
    """One CK+ sequence.

    Attributes:
        subject: 'S005'.
        sequence: '001'.
        frames: the sequence's image files in order.
        peak: 1-based frame number the labels belong to.
        aus: AU number -> intensity (0 = not given) at the peak; None without a FACS file.
        emotion: CK+ emotion code, or None without an emotion file.
    """

    subject: str
    sequence: str
    frames: tuple[Path, ...]
    peak: int
    aus: dict[int, float] | None
    emotion: int | None


def _floats(path: Path, what: str) -> list[list[float]]:
    rows = []
    for i, line in enumerate(read_lines(path, what)):
        if not line.strip():
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise InputError(
                path, f"line {i + 1}: expected numbers, got {line.strip()[:60]!r}"
            ) from None
    return rows


def _read_facs(path: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    for row in _floats(path, "CK+ FACS file"):
        if len(row) != 2 or row[0] != int(row[0]) or row[0] < 1 or not 0 <= row[1] <= 5:
            raise InputError(path, f"expected 'AU intensity' lines (AU >= 1, 0-5), got {row}")
        out[int(row[0])] = row[1]
    return out


def _read_emotion(path: Path) -> int:
    rows = _floats(path, "CK+ emotion file")
    if len(rows) != 1 or len(rows[0]) != 1 or rows[0][0] not in range(8):
        raise InputError(path, f"expected one emotion code 0-7, got {rows}")
    return int(rows[0][0])


class CKPlus:
    """Reads CK+ from the upstream layout.

    Args:
        root: the folder holding ``cohn-kanade-images/``, ``FACS/`` and ``Emotion/``.
        neutral_first: also write each sequence's first frame, labelled neutral.
        labelled_only: keep only sequences with a FACS or an emotion file (all of them have
            FACS upstream).
        on_error: 'raise' on a missing or corrupt image, or 'skip' it.
        seed: seed of the 10-fold subject split.

    Raises:
        InputError: a missing folder, a label file naming a frame the sequence does not have,
            or a garbled label file (named).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        neutral_first: bool = False,
        labelled_only: bool = True,
        on_error: OnError = "raise",
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.name = "ckplus"
        self.neutral_first = neutral_first
        self.seed = seed
        self._loader = ImageLoader(on_error)
        images = need_dir(self.root / "cohn-kanade-images", "CK+ image folder cohn-kanade-images/")
        labels: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, folder in (("facs", "FACS"), ("emotion", "Emotion")):
            base = self.root / folder
            if not base.is_dir():
                log.warning("%s: no %s folder; no %s labels", self.root, folder, kind)
                continue
            for p in sorted(base.glob("S*/*/*.txt")):
                m = _NAME.match(p.stem)
                if m is None or m["kind"] != kind:
                    raise InputError(p, f"name is not S005_001_00000011_{kind}.txt")
                entry = labels.setdefault((m["s"], m["q"]), {})
                if "peak" in entry and entry["peak"] != int(m["f"]):
                    raise InputError(p, f"names frame {int(m['f'])}, the FACS file {entry['peak']}")
                entry["peak"] = int(m["f"])
                entry[kind] = _read_facs(p) if kind == "facs" else _read_emotion(p)
        self.sequences: list[CKSequence] = []
        for sdir in sorted(p for p in images.iterdir() if p.is_dir()):
            for qdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
                frames = tuple(sorted(qdir.glob(f"{sdir.name}_{qdir.name}_*.png")))
                entry = labels.pop((sdir.name, qdir.name), None)
                if entry is None:
                    if labelled_only or not frames:
                        continue
                    entry = {"peak": len(frames)}
                numbers = [int(p.stem.rsplit("_", 1)[1]) for p in frames]
                if entry["peak"] not in numbers:
                    has = f"frames {numbers[0]}-{numbers[-1]}" if numbers else "no frames"
                    raise InputError(
                        qdir, f"labels are for frame {entry['peak']} but the sequence has {has}"
                    )
                self.sequences.append(
                    CKSequence(sdir.name, qdir.name, frames, entry["peak"],
                               entry.get("facs"), entry.get("emotion"))
                )  # fmt: skip
        if labels:
            s, q = min(labels)
            raise InputError(images / s / q, "labels exist for this sequence but its images don't")
        codes = sorted({a for q in self.sequences if q.aus for a in q.aus})
        self.au_numbers = tuple(codes)
        self.au_names = tuple(au_name(a) for a in codes)
        if not self.sequences:
            raise InputError(images, "no labelled sequence found (S005/001/S005_001_*.png ...)")

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        return len(self.sequences) * (2 if self.neutral_first else 1)

    def _labels(self, q: CKSequence) -> dict[str, Any]:
        out: dict[str, Any] = {"frame": q.peak}
        if q.aus is not None and self.au_numbers:
            out["au_occurrence"] = np.array([int(a in q.aus) for a in self.au_numbers], np.int32)
            out["au_intensity"] = np.array(
                [
                    (UNKNOWN if q.aus[a] == 0 else q.aus[a]) if a in q.aus else 0.0
                    for a in self.au_numbers
                ],
                np.float32,
            )
        if q.emotion is not None:
            out["emotion"] = EMOTIONS.index(_TO_FACEXPR[q.emotion])
            out["emotion_name"] = CKPLUS_EMOTIONS[q.emotion]
            out["emotion_source"] = q.emotion
        return out

    def __iter__(self) -> Iterator[FaceRecord]:
        for q in self.sequences:
            by_number = {int(p.stem.rsplit("_", 1)[1]): p for p in q.frames}
            items = [(by_number[q.peak], self._labels(q), "peak")]
            if self.neutral_first:
                first = min(by_number)
                neutral = {"frame": first, "emotion": 0, "emotion_name": "neutral",
                           "emotion_source": 0}  # fmt: skip
                items.insert(0, (by_number[first], neutral, "first"))
            for path, labels, role in items:
                image = self._loader.read(path)
                if image is None:
                    continue
                yield FaceRecord(
                    key=safe_key(q.subject, q.sequence, f"{labels['frame']:08d}"),
                    image=image,
                    subject_id=q.subject,
                    labels=labels,
                    provenance={"image": str(path), "role": role},
                )

    def schema(self) -> list[Any]:
        codes = ", ".join(f"{i} {n}" for i, n in enumerate(CKPLUS_EMOTIONS))
        fields = [*emotion_fields(codes), *meta_fields(split=False)]
        if self.au_names:
            fields = [*au_fields(self.au_names, intensity=True), *fields]
        return fields

    def _subjects(self) -> list[str]:
        return [q.subject for q in self.sequences]

    def splits(self) -> dict[str, list[str]]:
        return fold_splits("ckplus", self._subjects(), folds=10, seed=self.seed)[0]

    def attributes(self) -> dict[str, Any]:
        kind = fold_splits("ckplus", self._subjects(), folds=10, seed=self.seed)[1]
        return {
            "dataset": "CK+ (Extended Cohn-Kanade)",
            "au_names": list(self.au_names),
            "emotions": list(EMOTIONS),
            "source_emotions": list(CKPLUS_EMOTIONS),
            "aligned": False,
            "images": "full frames, 640x490 mostly grey (a face detector finds the face)",
            "protocol": {
                "folds": 10,
                "kind": kind,
                "source": f"seeded subject-exclusive split, seed {self.seed} (no published list)",
            },
            "licence": "non-commercial research under the CK+ agreement; never redistribute",
            "origin": {"root": str(self.root), "neutral_first": self.neutral_first},
        }

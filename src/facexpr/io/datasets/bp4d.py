"""BP4D-Spontaneous and BP4D+ readers: FACS AU occurrence per frame, with the frame images.

Zhang et al., "BP4D-Spontaneous: a high-resolution spontaneous 3D dynamic facial expression
database", Image and Vision Computing 2014; Zhang et al., "Multimodal Spontaneous Emotion
Corpus for Human Behavior Analysis" (BP4D+), CVPR 2016.

Upstream layout (as JAA-Net and ME-GraphAU's ``tool/BP4D_image_label_process.py`` read it)::

    ROOT/AUCoding/AU_OCC/F001_T1.csv       one CSV per subject and task
    ROOT/F001/T1/2440.jpg                  frames, named by frame number (also accepted under
                                           ROOT/Sequences/ or ROOT/2D+3D/, zero-padded or not)

A CSV's header row is the AU numbers, its first column the frame number (header ``0``); cells
are 1 (present), 0 (absent) or 9 (unknown / not coded). 9 becomes -1 in ``au_occurrence`` and
is masked by the metrics, never read as absent. The 12 AUs of the BP4D protocol are kept
(1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24). BP4D+ uses the same CSV format (subjects F001-F082,
M001-M058, tasks T1, T6, T7, T8).

Subject ids are the person codes (``F001``); the BP4D 3-fold split is the published one
(:mod:`facexpr.io.datasets.protocols`), BP4D+ has none published and gets a seeded 3-fold split.
BP4D is licensed by Binghamton University for research: never copy its frames into the repository.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import (
    EMOTIONS,
    UNKNOWN,
    FaceRecord,
    ImageLoader,
    OnError,
    au_fields,
    au_name,
    check_stride,
    meta_fields,
    need_dir,
    read_lines,
    safe_key,
)
from facexpr.io.datasets.protocols import fold_splits

log = logging.getLogger(__name__)

__all__ = ["BP4D", "BP4D_AUS", "BP4DSequence", "read_au_csv"]

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
_SEQ = re.compile(r"^(?P<subject>[FM]\d{3})_(?P<task>T\d+)$")


@dataclass(frozen=True, slots=True)
class BP4DSequence:
    """The AU coding of one subject's task.

    Attributes:
        subject: person code ('F001').
        task: task code ('T1').
        csv: the AU occurrence CSV.
        frames: (N,) int64 frame numbers.
        occurrence: (N, K) int32: 1, 0 or -1 (upstream 9), columns in the reader's AU order.
    """

    subject: str
    task: str
    csv: Path
    frames: np.ndarray
    occurrence: np.ndarray


def read_au_csv(path: Path, aus: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Returns (frames (N,) int64, occurrence (N, K) int32 with 9 -> -1) of one AU_OCC CSV.

    Raises:
        InputError: the file is missing or unreadable, lacks an AU column, or holds a value other
            than 0, 1 or 9, or a non-integer frame number (the message names the row).
    """
    lines = [ln for ln in read_lines(path, "BP4D AU occurrence CSV") if ln.strip()]
    if not lines:
        raise InputError(path, "empty AU occurrence CSV (need a header row of AU numbers)")
    header = [c.strip() for c in lines[0].split(",")]
    try:
        numbers = [int(float(c)) if c else 0 for c in header[1:]]
    except ValueError:
        raise InputError(
            path, f"header must list AU numbers after the frame column, got {lines[0][:80]!r}"
        ) from None
    missing = [a for a in aus if a not in numbers]
    if missing:
        raise InputError(path, f"no column for AU {', '.join(map(str, missing))} in the header")
    cols = [1 + numbers.index(a) for a in aus]
    frames = np.empty(len(lines) - 1, np.int64)
    occ = np.empty((len(lines) - 1, len(aus)), np.int32)
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        try:
            frames[i] = int(float(cells[0]))
            vals = [int(float(cells[c])) for c in cols]
        except (ValueError, IndexError):
            raise InputError(
                path, f"row {i + 2}: not a frame number and AU codes: {line[:80]!r}"
            ) from None
        bad = [v for v in vals if v not in (0, 1, 9)]
        if bad:
            raise InputError(path, f"row {i + 2}: AU code {bad[0]} (expected 0, 1 or 9 = unknown)")
        occ[i] = [UNKNOWN if v == 9 else v for v in vals]
    return frames, occ


class BP4D:
    """Reads BP4D or BP4D+ from the upstream layout.

    Args:
        root: the dataset folder (holding ``AUCoding/``).
        variant: 'bp4d' or 'bp4d+' (the split protocol and the names in the manifest).
        aus: AU numbers to keep (default the 12 of the BP4D protocol).
        stride: keep every Nth coded frame of each sequence.
        on_error: 'raise' on a missing or corrupt frame image, or 'skip' it (counted in
            ``n_skipped``). A missing or garbled CSV always raises.
        seed: seed of the fallback split (BP4D+).

    Raises:
        InputError: no ``AUCoding`` folder or no CSV in it; a CSV named other than
            ``F001_T1.csv``; a garbled CSV (named, with the row).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        variant: Literal["bp4d", "bp4d+"] = "bp4d",
        aus: Sequence[int] = BP4D_AUS,
        stride: int = 1,
        on_error: OnError = "raise",
        seed: int = 0,
    ) -> None:
        if variant not in ("bp4d", "bp4d+"):
            raise ConfigError(f"variant must be 'bp4d' or 'bp4d+', got {variant!r}")
        check_stride(stride)
        if not aus:
            raise ConfigError("aus: give at least one AU number")
        self.root = Path(root)
        self.variant = variant
        self.name = "bp4d" if variant == "bp4d" else "bp4d_plus"
        self.aus = tuple(int(a) for a in aus)
        self.au_names = tuple(au_name(a) for a in self.aus)
        self.stride = int(stride)
        self.seed = seed
        self._loader = ImageLoader(on_error)
        coding = need_dir(self.root / "AUCoding", "BP4D AU coding folder AUCoding/")
        occ_dir = coding / "AU_OCC" if (coding / "AU_OCC").is_dir() else coding
        csvs = sorted(occ_dir.glob("*.csv"))
        if not csvs:
            raise InputError(occ_dir, "no AU occurrence CSV (F001_T1.csv ...) in this folder")
        self.sequences: list[BP4DSequence] = []
        for p in csvs:
            m = _SEQ.match(p.stem)
            if m is None:
                raise InputError(p, "name is not SUBJECT_TASK.csv (e.g. F001_T1.csv)")
            frames, occ = read_au_csv(p, self.aus)
            keep = slice(None, None, self.stride)
            self.sequences.append(BP4DSequence(m["subject"], m["task"], p, frames[keep], occ[keep]))
        self._subjects = [s.subject for s in self.sequences for _ in range(len(s.frames))]

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        return sum(len(s.frames) for s in self.sequences)

    def _frame_dir(self, seq: BP4DSequence) -> Path:
        for base in (self.root, self.root / "Sequences", self.root / "2D+3D"):
            d = base / seq.subject / seq.task
            if d.is_dir():
                return d
        return self.root / seq.subject / seq.task

    def __iter__(self) -> Iterator[FaceRecord]:
        for seq in self.sequences:
            d = self._frame_dir(seq)
            by_number: dict[int, Path] = {}
            if d.is_dir():
                for p in d.iterdir():
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.stem.isdigit():
                        by_number.setdefault(int(p.stem), p)
            for frame, occ in zip(seq.frames, seq.occurrence, strict=True):
                path = by_number.get(int(frame), d / f"{int(frame)}.jpg")
                image = self._loader.read(path)
                if image is None:
                    continue
                yield FaceRecord(
                    key=safe_key(seq.subject, seq.task, f"{int(frame):05d}"),
                    image=image,
                    subject_id=seq.subject,
                    labels={"au_occurrence": occ, "frame": int(frame), "task": seq.task},
                    provenance={"csv": str(seq.csv), "image": str(path)},
                )

    def schema(self) -> list[Any]:
        from facexpr.io.shards import LabelField

        return [
            *au_fields(self.au_names, intensity=False),
            *meta_fields(split=False),
            LabelField("task", (), "str", "BP4D task code (T1 .. T8)"),
        ]

    def splits(self) -> dict[str, list[str]]:
        return fold_splits(self.variant, self._subjects, seed=self.seed)[0]

    def attributes(self) -> dict[str, Any]:
        protocol = fold_splits(self.variant, self._subjects, seed=self.seed)[1]
        return {
            "dataset": "BP4D-Spontaneous" if self.variant == "bp4d" else "BP4D+ (MMSE)",
            "au_names": list(self.au_names),
            "emotions": list(EMOTIONS),
            "aligned": False,
            "images": "full frames (a face detector finds the face)",
            "protocol": {
                "folds": 3,
                "kind": protocol,
                "source": "JAA-Net / ME-GraphAU part lists"
                if protocol == "published"
                else f"seeded subject-exclusive split, seed {self.seed} (no published list)",
            },
            "licence": "research use under the Binghamton University agreement; never "
            "redistribute the frames",
            "origin": {"root": str(self.root), "stride": self.stride},
        }

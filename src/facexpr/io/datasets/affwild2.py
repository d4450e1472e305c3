"""Aff-Wild2 reader (ABAW challenge annotations): per-frame expression, AUs and valence-arousal.

Kollias & Zafeiriou, "Expression, Affect, Action Unit Recognition: Aff-Wild2, Multi-Task
Learning and ArcFace", BMVC 2019; the ABAW challenges (Kollias et al., 2020-2025).

Upstream layout (ABAW 3 and later)::

    ROOT/Annotations/EXPR_Classification_Challenge/Train_Set/VIDEO.txt
    ROOT/Annotations/AU_Detection_Challenge/Train_Set/VIDEO.txt
    ROOT/Annotations/VA_Estimation_Challenge/Train_Set/VIDEO.txt    (and Validation_Set/)
    ROOT/cropped_aligned/VIDEO/00001.jpg                            112x112 aligned faces

(``Annotations/`` may also be ``annotations/`` or ROOT itself.) Each annotation file has a
header line, then one line per video frame: line t (after the header) is frame t, image
``{t:05d}.jpg``. EXPR: ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other``, one
code 0-7, -1 invalid. AU: ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26``, 0/1 per
AU, -1 invalid. VA: ``valence,arousal`` in [-1, 1], -5 invalid. Invalid values are left absent
(masked), never 0. Frames the face detector missed have no image in ``cropped_aligned``: upstream
says they are not evaluated, so they are left out and counted (``n_missing_images``), as are
frames with no valid label in any task. Subject ids are the video names (a two-person video has
``_left`` and ``_right`` files, two subjects). Research use under the Aff-Wild2 licence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    emotion_fields,
    meta_fields,
    read_lines,
    safe_key,
    va_fields,
)

log = logging.getLogger(__name__)

__all__ = ["ABAW_AUS", "ABAW_EXPRESSIONS", "AffWild2", "read_annotation"]

ABAW_EXPRESSIONS = (
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"
)  # fmt: skip
_TO_FACEXPR = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", None)
ABAW_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
TASKS = {
    "expr": "EXPR_Classification_Challenge",
    "au": "AU_Detection_Challenge",
    "va": "VA_Estimation_Challenge",
}
_SETS = {"train": "Train_Set", "validation": "Validation_Set"}
Task = Literal["expr", "au", "va"]


def read_annotation(path: Path, task: Task) -> np.ndarray:
    """Returns one ABAW annotation file's rows: (N,) int64 EXPR codes (-1 invalid), (N, 12) int32
    AU values (-1 invalid) or (N, 2) float32 VA (-5 invalid).

    Raises:
        InputError: missing or unreadable, a wrong header, or a bad value (named with its line).
    """
    lines = read_lines(path, f"Aff-Wild2 {task.upper()} annotation file")
    if not lines:
        raise InputError(path, "empty annotation file (need a header line)")
    header = [c.strip().lower() for c in lines[0].split(",")]
    want = {
        "expr": [e.lower() for e in ABAW_EXPRESSIONS],
        "au": [f"au{a}" for a in ABAW_AUS],
        "va": ["valence", "arousal"],
    }[task]
    if header != want:
        raise InputError(path, f"header {lines[0][:80]!r} is not {','.join(want)!r}")
    rows = [ln for ln in lines[1:] if ln.strip()]
    if task == "va":
        out = np.empty((len(rows), 2), np.float32)
    elif task == "au":
        out = np.empty((len(rows), len(ABAW_AUS)), np.int32)
    else:
        out = np.empty(len(rows), np.int64)
    for i, line in enumerate(rows):
        cells = [c.strip() for c in line.split(",")]
        try:
            if task == "va":
                v = [float(c) for c in cells]
                ok = len(v) == 2 and all(x == -5 or -1 <= x <= 1 for x in v)
            elif task == "au":
                v = [int(c) for c in cells]
                ok = len(v) == len(ABAW_AUS) and all(x in (-1, 0, 1) for x in v)
            else:
                v = [int(c) for c in cells]
                ok = len(v) == 1 and -1 <= v[0] <= 7
        except ValueError:
            ok = False
        if not ok:
            raise InputError(path, f"line {i + 2}: bad {task.upper()} value {line[:60]!r}")
        out[i] = v[0] if task == "expr" else v
    return out


@dataclass
class _Video:
    name: str
    files: dict[str, Path] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)


class AffWild2:
    """Reads one ABAW set of Aff-Wild2.

    Args:
        root: the dataset folder (``Annotations/`` and ``cropped_aligned/``).
        split: 'train' (Train_Set) or 'validation' (Validation_Set).
        tasks: which challenge annotations to read (those whose folder exists by default).
        stride: keep every Nth frame of each video.
        on_error: 'raise' on a corrupt image, or 'skip' it (missing images are upstream's no-face
            frames and are always left out, counted in ``n_missing_images``).

    Raises:
        InputError: no annotation folder of any task, or a garbled annotation file (named).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: Literal["train", "validation"] = "validation",
        tasks: tuple[Task, ...] | None = None,
        stride: int = 1,
        on_error: OnError = "raise",
    ) -> None:
        if split not in _SETS:
            raise ConfigError(f"split must be 'train' or 'validation', got {split!r}")
        if stride < 1:
            raise ConfigError(f"stride must be >= 1, got {stride}")
        self.root = Path(root)
        self.name = "affwild2"
        self.split = split
        self.stride = stride
        self._loader = ImageLoader(on_error)
        self.n_missing_images = 0
        self.n_unlabelled = 0
        base = next(
            (b for b in (self.root / "Annotations", self.root / "annotations", self.root)
             if any((b / t).is_dir() for t in TASKS.values())),
            None,
        )  # fmt: skip
        if base is None:
            raise InputError(
                self.root, "no ABAW annotation folder (Annotations/EXPR_Classification_Challenge, "
                "AU_Detection_Challenge or VA_Estimation_Challenge)"
            )  # fmt: skip
        chosen = tasks or tuple(t for t, d in TASKS.items() if (base / d).is_dir())
        for t in chosen:
            if t not in TASKS:
                raise ConfigError(f"tasks: unknown task {t!r} (expr, au, va)")
        self.tasks: tuple[Task, ...] = tuple(chosen)
        videos: dict[str, _Video] = {}
        for t in self.tasks:
            d = base / TASKS[t] / _SETS[split]
            if not d.is_dir():
                raise InputError(d, f"{TASKS[t]} folder for {_SETS[split]} not found")
            for p in sorted(d.glob("*.txt")):
                v = videos.setdefault(p.stem, _Video(p.stem))
                v.files[t] = p
                v.labels[t] = read_annotation(p, t)
        if not videos:
            raise InputError(base, f"no annotation file (VIDEO.txt) for {_SETS[split]}")
        self.videos = [videos[k] for k in sorted(videos)]

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        """Returns the number of annotated frames (an upper bound: frames without an image or a
        valid label are left out when iterating)."""
        return sum(
            len(range(0, max(len(a) for a in v.labels.values()), self.stride)) for v in self.videos
        )

    def _labels(self, v: _Video, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        expr = v.labels.get("expr")
        if expr is not None and i < len(expr) and expr[i] >= 0:
            code = int(expr[i])
            out["emotion_source"] = code
            out["emotion_name"] = ABAW_EXPRESSIONS[code]
            if _TO_FACEXPR[code] is not None:
                out["emotion"] = EMOTIONS.index(_TO_FACEXPR[code])
        au = v.labels.get("au")
        if au is not None and i < len(au) and np.any(au[i] >= 0):
            out["au_occurrence"] = np.where(au[i] >= 0, au[i], UNKNOWN).astype(np.int32)
        va = v.labels.get("va")
        if va is not None and i < len(va):
            if va[i, 0] != -5:
                out["valence"] = float(va[i, 0])
            if va[i, 1] != -5:
                out["arousal"] = float(va[i, 1])
        return out

    def __iter__(self) -> Iterator[FaceRecord]:
        self.n_missing_images = self.n_unlabelled = 0
        for v in self.videos:
            n = max(len(a) for a in v.labels.values())
            folder = self.root / "cropped_aligned" / v.name
            for i in range(0, n, self.stride):
                labels = self._labels(v, i)
                if not labels:
                    self.n_unlabelled += 1
                    continue
                path = folder / f"{i + 1:05d}.jpg"
                if not path.exists():
                    self.n_missing_images += 1
                    continue
                image = self._loader.read(path)
                if image is None:
                    continue
                yield FaceRecord(
                    key=safe_key(v.name, f"{i + 1:05d}"),
                    image=image,
                    subject_id=v.name,
                    labels={**labels, "frame": i + 1, "official_split": self.split},
                    provenance={"image": str(path), **{t: str(p) for t, p in v.files.items()}},
                )
        if self.n_missing_images:
            log.info("%s: %d annotated frames have no cropped_aligned image (no face upstream)",
                     self.root, self.n_missing_images)  # fmt: skip

    def schema(self) -> list[Any]:
        fields: list[Any] = []
        if "au" in self.tasks:
            fields += au_fields([au_name(a) for a in ABAW_AUS], intensity=False)
        if "expr" in self.tasks:
            codes = ", ".join(f"{i} {n}" for i, n in enumerate(ABAW_EXPRESSIONS))
            fields += emotion_fields(codes)
        if "va" in self.tasks:
            fields += va_fields()
        return [*fields, *meta_fields()]

    def splits(self) -> dict[str, list[str]]:
        return {}

    def attributes(self) -> dict[str, Any]:
        return {
            "dataset": "Aff-Wild2 (ABAW annotations)",
            "au_names": [au_name(a) for a in ABAW_AUS] if "au" in self.tasks else [],
            "emotions": list(EMOTIONS),
            "source_emotions": list(ABAW_EXPRESSIONS),
            "tasks": list(self.tasks),
            "aligned": True,
            "images": "upstream cropped_aligned 112x112 faces",
            "split": self.split,
            "protocol": {"kind": "official ABAW split", "subjects": "video names"},
            "licence": "research use under the Aff-Wild2 licence agreement; never redistribute",
            "origin": {"root": str(self.root), "stride": self.stride},
        }

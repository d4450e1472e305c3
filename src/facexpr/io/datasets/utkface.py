"""UTKFace reader: 23,707 aligned 200x200 colour faces named by age, gender and race.

Zhang, Song, Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", CVPR 2017.

Upstream layout (the "Aligned&Cropped" set)::

    UTKFace/<age>_<gender>_<race>_<date&time>.jpg.chip.jpg

gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others; ``date&time`` is the
17-digit ``yyyymmddHHMMSSfff`` time the authors processed the photo. A few names break the pattern
(the race field missing, the dot before ``jpg.chip.jpg`` missing, a space before it, a date of 16
or 18 digits): the reader keeps every file and leaves a label it cannot read **absent** (``None``),
never a guess, so bias checks count only faces whose label is known.

Subjects: UTKFace has no identity ids, and one person can appear more than once. The best proxy the
names give is the processing time: photos taken from one source were processed in one run, so the
subject id is the ``date&time`` cut to the minute (``utk-yyyymmddHHMM``, :data:`CLUSTER_DIGITS`):
exact duplicates (several files share one time stamp) and same-batch photos fall in one cluster
and never straddle a split. This lowers leakage; it cannot rule out one person processed on two
different minutes. UTKFace is research-use only: never copy its images, or anything derived that
reproduces them, into the repository.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facexpr.core.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "CLUSTER_DIGITS",
    "GENDERS",
    "RACES",
    "UTKFace",
    "UTKFaceName",
    "find_utkface_folder",
    "is_utkface_root",
    "parse_name",
]

GENDERS = ("male", "female")
RACES = ("White", "Black", "Asian", "Indian", "Others")
CLUSTER_DIGITS = 12
"""Digits of ``date&time`` kept for the subject cluster: ``yyyymmddHHMM``, one minute."""
SUFFIX = "chip.jpg"
_SUFFIX_RE = re.compile(r"\s*\.?jpg\.chip\.jpg$", re.IGNORECASE)
_FIELD_RE = re.compile(r"^\d+$")


@dataclass(frozen=True, slots=True)
class UTKFaceName:
    """The labels read from one UTKFace file name (``None`` where the name lacks them).

    Attributes:
        file: the file name.
        age: years (1-116), or ``None``.
        gender: index into :data:`GENDERS`, or ``None``.
        race: index into :data:`RACES`, or ``None``.
        datetime: the digits of the ``date&time`` field, or ``None``.
        subject_id: the leakage cluster (see the module docstring); the file stem when the name
            has no date.
    """

    file: str
    age: int | None
    gender: int | None
    race: int | None
    datetime: str | None
    subject_id: str


def parse_name(name: str) -> UTKFaceName:
    """Returns the labels in a UTKFace file name; unreadable fields are ``None``, never an error.

    Accepts ``age_gender_race_datetime`` and, for the names that lack it, ``age_gender_datetime``,
    followed by ``.jpg.chip.jpg`` (a missing dot or a space before it is tolerated).
    """
    stem = _SUFFIX_RE.sub("", name).strip()
    parts = stem.split("_")
    age = gender = race = None
    dt: str | None = None
    if all(_FIELD_RE.match(p) for p in parts) and len(parts) in (3, 4):
        a, g = int(parts[0]), int(parts[1])
        age = a if 0 < a < 130 else None
        gender = g if 0 <= g < len(GENDERS) else None
        if len(parts) == 4:
            r = int(parts[2])
            race = r if 0 <= r < len(RACES) else None
        # The date is the long field (>= 14 digits); a short last field is no date.
        dt = parts[-1] if len(parts[-1]) >= 14 else None
    if age is None and gender is None:
        log.debug("UTKFace name without labels: %r", name)
    safe = re.sub(r"[^0-9A-Za-z_-]", "_", stem)
    subject = f"utk-{dt[:CLUSTER_DIGITS]}" if dt else f"utk-file-{safe}"
    return UTKFaceName(name, age, gender, race, dt, subject)


def is_utkface_root(path: str | Path) -> bool:
    """Returns True if ``path`` is a UTKFace folder (``*.chip.jpg`` files) or holds ``UTKFace/``."""
    return find_utkface_folder(path) is not None


def find_utkface_folder(path: str | Path) -> Path | None:
    """Returns the folder holding the ``*.chip.jpg`` files of a UTKFace root, or ``None``."""
    p = Path(path)
    for cand in (p / "UTKFace", p):
        if cand.is_dir() and next(cand.glob(f"*{SUFFIX}"), None) is not None:
            return cand
    return None


class UTKFace:
    """The files of a UTKFace root, sorted by name, with the labels of their names.

    Args:
        root: the folder holding ``UTKFace/`` or the ``UTKFace`` folder itself.
        limit: keep only the first ``limit`` files (sorted by name), for quick runs.

    Raises:
        InputError: ``root`` does not exist or holds no ``*.chip.jpg`` file.
    """

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise InputError(self.root, "UTKFace folder not found")
        folder = find_utkface_folder(self.root)
        if folder is None:
            raise InputError(
                self.root, f"not a UTKFace folder: no '*.{SUFFIX}' files in it or in UTKFace/"
            )
        self.folder = folder
        files = sorted(p.name for p in folder.iterdir() if p.name.endswith(SUFFIX))
        if limit is not None:
            files = files[: max(0, int(limit))]
        self.names = [parse_name(f) for f in files]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[UTKFaceName]:
        return iter(self.names)

    def path(self, i: int) -> Path:
        """Returns the file of face ``i``."""
        return self.folder / self.names[i].file

    def image(self, i: int) -> np.ndarray:
        """Returns face ``i`` as (200, 200, 3) uint8 RGB (as stored: already aligned)."""
        from facexpr.io.images import read_image

        return read_image(self.path(i))

    def counts(self) -> dict[str, dict[str, int]]:
        """Returns how many faces have each gender and race label, and how many lack them."""
        out: dict[str, dict[str, int]] = {"gender": {}, "race": {}}
        for n in self.names:
            g = "missing" if n.gender is None else GENDERS[n.gender]
            r = "missing" if n.race is None else RACES[n.race]
            out["gender"][g] = out["gender"].get(g, 0) + 1
            out["race"][r] = out["race"].get(r, 0) + 1
        return out

"""Subject-exclusive evaluation protocols: the published 3-fold splits of BP4D and DISFA.

BP4D and DISFA are evaluated by 3-fold subject-exclusive cross-validation: train on two parts,
test on the third. The parts below are the ones JAA-Net (Shao et al., ECCV 2018; its
``data/list/{BP4D,DISFA}_part{1,2,3}_path.txt``, github.com/ZhiwenShao/PyTorch-JAANet) and
ME-GraphAU (Luo et al., IJCAI 2022; ``tool/BP4D_image_label_process.py`` and
``tool/DISFA_image_label_process.py``, github.com/CVI-SZU/ME-GraphAU, commits d5581006 and
68fb2799) use, copied from ME-GraphAU's lists; JAA-Net's DISFA part 1 list starts with SN002 as
ME-GraphAU's does. Their fold numbering is kept: fold 1 tests on part 3, fold 2 on part 2, fold 3
on part 1.

For datasets without a published list (BP4D+, CK+) :func:`fold_splits` falls back to a seeded
subject-exclusive split (:func:`facexpr.io.shards.subject_split`) and says so (``"seeded"``).

A dataset written by a reader records the folds as manifest splits ``fold1`` .. ``foldK``, each
the *test* subjects of that fold (splits are disjoint); :func:`get_fold` turns them back into
train and test subjects.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from facexpr.core.errors import ConfigError

__all__ = [
    "BP4D_PARTS",
    "DISFA_PARTS",
    "Fold",
    "fold_splits",
    "get_fold",
    "published_folds",
]

# ME-GraphAU tool/BP4D_image_label_process.py, BP4D_Sequence_split (41 subjects).
BP4D_PARTS: tuple[tuple[str, ...], ...] = (
    ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001", "F016",
     "M014", "F023", "M008"),
    ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016", "F020",
     "F011", "M013", "M005"),
    ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017",
     "M015", "F014"),
)  # fmt: skip
# ME-GraphAU tool/DISFA_image_label_process.py, part1..part3 (27 subjects).
DISFA_PARTS: tuple[tuple[str, ...], ...] = (
    ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
)
_PUBLISHED = {"bp4d": BP4D_PARTS, "disfa": DISFA_PARTS}
Protocol = Literal["published", "seeded", "none"]


@dataclass(frozen=True, slots=True)
class Fold:
    """One fold of a subject-exclusive protocol.

    Attributes:
        k: fold number, 1-based.
        train: subject ids to train on.
        test: subject ids to test on (none of them in ``train``).
    """

    k: int
    train: tuple[str, ...]
    test: tuple[str, ...]


def published_folds(dataset: str) -> list[Fold]:
    """Returns the 3 published folds of 'bp4d' or 'disfa' (fold k tests on part 4 - k).

    Raises:
        ConfigError: no published list for ``dataset``.
    """
    parts = _PUBLISHED.get(dataset.lower())
    if parts is None:
        raise ConfigError(
            f"no published fold list for {dataset!r} (have: {', '.join(_PUBLISHED)}); use "
            "fold_splits(..., seed=...) for a seeded subject-exclusive split"
        )
    folds = []
    for k in (1, 2, 3):
        test = parts[3 - k]
        train = tuple(s for i, p in enumerate(parts) if i != 3 - k for s in p)
        folds.append(Fold(k, train, tuple(test)))
    return folds


def fold_splits(
    dataset: str, subjects: Collection[str], *, folds: int = 3, seed: int = 0
) -> tuple[dict[str, list[str]], Protocol]:
    """Returns the manifest splits ``fold1`` .. (each fold's test subjects) and how they were made.

    With a published list for ``dataset`` that covers every subject, the published folds
    (restricted to ``subjects``) are used: ``"published"``. Otherwise a split seeded with ``seed``
    into ``folds`` parts of about equal sample counts (a subject repeated in ``subjects`` counts
    once per sample): ``"seeded"``; with fewer subjects than ``folds``, one fold per subject; with
    fewer than 2 subjects (or none, as AffectNet and RAF-DB), no split at all: ``({}, "none")``.
    """
    from facexpr.io.shards import subject_split

    present = set(subjects)
    parts = _PUBLISHED.get(dataset.lower())
    if parts is not None and present <= {s for p in parts for s in p}:
        return {
            f"fold{f.k}": sorted(s for s in f.test if s in present)
            for f in published_folds(dataset)
        }, "published"
    if len(present) < 2:
        return {}, "none"
    seeded = subject_split(list(subjects), min(folds, len(present)), seed=seed)
    return {f"fold{int(k) + 1}": v for k, v in seeded.items()}, "seeded"


def get_fold(splits: Mapping[str, Collection[str]], k: int) -> Fold:
    """Returns fold ``k`` (1-based) of a dataset's manifest splits ``fold1`` .. ``foldK``.

    Raises:
        ConfigError: the splits hold no ``fold{k}``.
    """
    names = sorted((n for n in splits if n.startswith("fold") and n[4:].isdigit()),
                   key=lambda n: int(n[4:]))  # fmt: skip
    if f"fold{k}" not in splits:
        have = ", ".join(names) or "none"
        raise ConfigError(f"no fold {k} in the dataset's splits (folds: {have})")
    test = tuple(sorted(splits[f"fold{k}"]))
    train = tuple(sorted(s for n in names if n != f"fold{k}" for s in splits[n]))
    return Fold(k, train, test)

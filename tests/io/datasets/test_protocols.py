"""The published BP4D / DISFA folds and the seeded fallback."""

from __future__ import annotations

import pytest

from facexpr.core.errors import ConfigError
from facexpr.io.datasets.protocols import (
    BP4D_PARTS,
    DISFA_PARTS,
    fold_splits,
    get_fold,
    published_folds,
)


def test_published_parts_cover_every_subject_once() -> None:
    bp4d = [s for p in BP4D_PARTS for s in p]
    assert len(bp4d) == len(set(bp4d)) == 41
    assert sum(s.startswith("F") for s in bp4d) == 23
    disfa = [s for p in DISFA_PARTS for s in p]
    assert len(disfa) == len(set(disfa)) == 27
    # DISFA's SN014, SN015, SN019, SN020, SN022 do not exist upstream.
    assert {f"SN{i:03d}" for i in (14, 15, 19, 20, 22)}.isdisjoint(disfa)


def test_fold_numbering_follows_me_graphau() -> None:
    folds = published_folds("BP4D")
    assert [f.k for f in folds] == [1, 2, 3]
    assert folds[0].test == BP4D_PARTS[2]  # fold 1 tests on part 3
    assert folds[2].test == BP4D_PARTS[0]
    for f in folds:
        assert set(f.train).isdisjoint(f.test)
        assert len(f.train) + len(f.test) == 41
    with pytest.raises(ConfigError, match="no published fold list for 'ckplus'"):
        published_folds("ckplus")


def test_fold_splits_published_restricted_and_seeded() -> None:
    splits, kind = fold_splits("disfa", ["SN001", "SN003", "SN013", "SN001"])
    assert kind == "published"
    assert splits == {"fold1": ["SN003"], "fold2": ["SN013"], "fold3": ["SN001"]}
    fold = get_fold(splits, 2)
    assert fold.test == ("SN013",)
    assert fold.train == ("SN001", "SN003")
    subjects = [f"S{i:03d}" for i in range(20)]
    seeded, kind = fold_splits("ckplus", subjects, folds=10, seed=3)
    assert kind == "seeded"
    assert len(seeded) == 10
    assert sorted(s for v in seeded.values() for s in v) == subjects
    assert seeded == fold_splits("ckplus", subjects, folds=10, seed=3)[0]
    assert seeded != fold_splits("ckplus", subjects, folds=10, seed=4)[0]
    # A subject outside the published list makes the split seeded.
    assert fold_splits("bp4d", ["F001", "X999"])[1] == "seeded"
    assert fold_splits("rafdb", [""] * 5) == ({}, "none")
    with pytest.raises(ConfigError, match=r"no fold 4 in the dataset's splits \(folds: fold1"):
        get_fold(splits, 4)

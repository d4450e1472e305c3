"""UTKFace reader: the real shared folder (skipped if absent), including its odd names."""

from __future__ import annotations

from pathlib import Path

import pytest

from facexpr.core.errors import InputError
from facexpr.io.datasets.utkface import UTKFace, find_utkface_folder, is_utkface_root, parse_name

ODD_NAMES = {
    # name: (age, gender, race, datetime digits)
    "39_1_20170116174525125.jpg.chip.jpg": (39, 1, None, "20170116174525125"),
    "61_1_20170109142408075.jpg.chip.jpg": (61, 1, None, "20170109142408075"),
    "55_0_0_20170116232725357jpg.chip.jpg": (55, 0, 0, "20170116232725357"),
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 0, 1, "20170116220224657"),
    "14_0_0_2017011022340900.jpg.chip.jpg": (14, 0, 0, "2017011022340900"),
}


@pytest.fixture(scope="session")
def utk_root(shared_dir: Path) -> Path:
    d = shared_dir / "datasets" / "utkface"
    if not (d / "UTKFace").is_dir():
        pytest.skip(f"UTKFace not found at {d}")
    return d


def test_regular_name() -> None:
    n = parse_name("100_1_2_20170110183726390.jpg.chip.jpg")
    assert (n.age, n.gender, n.race, n.datetime) == (100, 1, 2, "20170110183726390")
    assert n.subject_id == "utk-201701101837"


@pytest.mark.parametrize(("name", "want"), ODD_NAMES.items())
def test_names_that_break_the_pattern(name: str, want: tuple) -> None:
    n = parse_name(name)
    assert (n.age, n.gender, n.race, n.datetime) == want


@pytest.mark.parametrize(
    "name", ["x.jpg.chip.jpg", "1_2.jpg.chip.jpg", "20_7_9_20170116220224657.jpg.chip.jpg"]
)
def test_unreadable_fields_are_absent(name: str) -> None:
    n = parse_name(name)
    assert n.gender is None
    assert n.race is None
    assert n.subject_id.startswith("utk-")


def test_same_minute_shares_a_subject_and_other_minutes_do_not() -> None:
    a = parse_name("20_0_0_20170110183726390.jpg.chip.jpg").subject_id
    b = parse_name("30_1_2_20170110183759001.jpg.chip.jpg").subject_id
    c = parse_name("30_1_2_20170110183859001.jpg.chip.jpg").subject_id
    assert a == b
    assert a != c


def test_real_folder_reads_every_file_and_the_odd_names(utk_root: Path) -> None:
    ds = UTKFace(utk_root)
    assert len(ds) == 23707
    by_file = {n.file: n for n in ds}
    for name, (age, gender, race, _) in ODD_NAMES.items():
        assert (by_file[name].age, by_file[name].gender, by_file[name].race) == (age, gender, race)
    counts = ds.counts()
    assert counts["race"]["missing"] == 3  # 3 files lack race (its README says two)
    assert sum(counts["gender"].values()) == 23707
    assert counts["gender"].get("missing", 0) == 0


def test_real_images_decode_200px(utk_root: Path) -> None:
    ds = UTKFace(utk_root, limit=3)
    assert len(ds) == 3
    img = ds.image(0)
    assert img.shape == (200, 200, 3)


def test_root_detection(utk_root: Path, tmp_path: Path) -> None:
    assert is_utkface_root(utk_root)
    assert find_utkface_folder(utk_root / "UTKFace") == utk_root / "UTKFace"
    assert not is_utkface_root(tmp_path)


def test_missing_and_empty_roots(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="UTKFace folder not found"):
        UTKFace(tmp_path / "nope")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"not a UTKFace folder: no '\*\.chip\.jpg' files"):
        UTKFace(tmp_path)

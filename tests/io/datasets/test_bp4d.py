"""BP4D / BP4D+ reader on a tiny fixture in the upstream layout, written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import write_shards
from facexpr.io.datasets.bp4d import BP4D, BP4D_AUS
from facexpr.io.shards import ShardReader

# All AU columns 1..27 as BP4D's CSVs have many; the frame number first (header "0").
HEADER = ",".join(["0", *[str(a) for a in range(1, 28)]])


def _row(frame: int, on: set[int], unknown: frozenset[int] = frozenset()) -> str:
    cells = [str(frame)]
    for a in range(1, 28):
        cells.append("9" if a in unknown else "1" if a in on else "0")
    return ",".join(cells)


def _frame(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 40, 3), value, np.uint8)).save(path, quality=95)


def make_bp4d(root: Path) -> dict[tuple[str, int], tuple[set[int], frozenset[int]]]:
    """Writes F001/T1 (frames 2440-2442) and M007/T2 (frames 10, 11) with their CSVs."""
    coding = root / "AUCoding" / "AU_OCC"
    coding.mkdir(parents=True)
    truth = {
        ("F001", 2440): ({1, 2, 12}, frozenset()),
        ("F001", 2441): ({12}, frozenset({4})),
        ("F001", 2442): (set(), frozenset({1, 2})),
        ("M007", 10): ({6, 7, 24}, frozenset()),
        ("M007", 11): ({23}, frozenset({24})),
    }
    for subject, task in (("F001", "T1"), ("M007", "T2")):
        rows = [HEADER]
        for (s, f), (on, unk) in truth.items():
            if s == subject:
                rows.append(_row(f, on, unk))
                _frame(root / subject / task / f"{f}.jpg", 10 * (f % 20))
        (coding / f"{subject}_{task}.csv").write_text("\n".join(rows) + "\n")
    return truth


def test_reader_parses_the_csvs_and_masks_unknown(tmp_path: Path) -> None:
    truth = make_bp4d(tmp_path)
    r = BP4D(tmp_path)
    assert len(r) == 5
    assert r.au_names == tuple(f"AU{a:02d}" for a in BP4D_AUS)
    records = list(r)
    assert [x.subject_id for x in records] == ["F001"] * 3 + ["M007"] * 2
    for rec in records:
        on, unk = truth[(rec.subject_id, rec.labels["frame"])]
        want = [-1 if a in unk else int(a in on) for a in BP4D_AUS]
        assert rec.labels["au_occurrence"].tolist() == want
    assert records[0].image.shape == (32, 40, 3)


def test_shards_read_back_with_labels_masks_and_published_folds(tmp_path: Path) -> None:
    truth = make_bp4d(tmp_path / "src")
    out = write_shards(BP4D(tmp_path / "src"), tmp_path / "out")
    reader = ShardReader(out, shuffle_buffer=0)
    m = reader.manifest
    assert m.attributes["au_names"][6] == "AU12"
    assert m.attributes["protocol"]["kind"] == "published"
    # F001 and M007 are both in part 1 of the published list, which fold 3 tests on.
    assert m.splits == {"fold1": (), "fold2": (), "fold3": ("F001", "M007")}
    got = {(s.subject_id, int(s.labels["frame"])): s.labels["au_occurrence"] for s in reader}
    assert len(got) == 5
    occ = got[("F001", 2442)]
    assert occ[BP4D_AUS.index(1)] == -1  # upstream 9: masked, not 0
    assert occ[BP4D_AUS.index(12)] == 0
    assert got[("M007", 10)][BP4D_AUS.index(24)] == 1
    assert set(got) == set(truth)


def test_bp4d_plus_gets_a_seeded_split(tmp_path: Path) -> None:
    make_bp4d(tmp_path)
    r = BP4D(tmp_path, variant="bp4d+")
    splits = r.splits()
    assert sorted(s for v in splits.values() for s in v) == ["F001", "M007"]
    assert r.attributes()["protocol"]["kind"] == "seeded"


def test_missing_image_raises_or_is_skipped(tmp_path: Path) -> None:
    make_bp4d(tmp_path)
    (tmp_path / "F001" / "T1" / "2441.jpg").unlink()
    with pytest.raises(InputError, match=r"2441\.jpg: image listed in the labels is missing"):
        list(BP4D(tmp_path))
    r = BP4D(tmp_path, on_error="skip")
    assert len(list(r)) == 4
    assert r.n_skipped == 1


def test_garbled_csvs_name_the_file_and_row(tmp_path: Path) -> None:
    make_bp4d(tmp_path)
    csv = tmp_path / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], lines[1].replace(",1,", ",7,", 1), *lines[2:]]))
    with pytest.raises(InputError, match=r"F001_T1\.csv: row 2: AU code 7"):
        BP4D(tmp_path)
    csv.write_text("0,1,2\n2440,1,0\n")
    with pytest.raises(InputError, match=r"F001_T1\.csv: no column for AU 4, 6"):
        BP4D(tmp_path)
    csv.write_text("")
    with pytest.raises(InputError, match="empty AU occurrence CSV"):
        BP4D(tmp_path)
    csv.rename(csv.with_name("F001-T1.csv"))
    with pytest.raises(InputError, match=r"F001-T1\.csv: name is not SUBJECT_TASK\.csv"):
        BP4D(tmp_path)


def test_missing_layout_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"AUCoding: BP4D AU coding folder AUCoding/ not found"):
        BP4D(tmp_path)
    (tmp_path / "AUCoding").mkdir()
    with pytest.raises(InputError, match="no AU occurrence CSV"):
        BP4D(tmp_path)
    with pytest.raises(ConfigError, match="variant must be"):
        BP4D(tmp_path, variant="bp5d")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="stride must be >= 1"):
        BP4D(tmp_path, stride=0)
    with pytest.raises(ConfigError, match="on_error must be"):
        BP4D(tmp_path, on_error="ignore")  # type: ignore[arg-type]

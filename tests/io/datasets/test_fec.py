"""FEC reader on a small CSV in the public layout, with images generated at test time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets.fec import (
    TRIPLET_TYPES,
    FecDataset,
    FecReadReport,
    read_fec_csv,
    read_mapping,
    url_basename,
)

URL = "http://farm{}.staticflickr.com/1234/{}_abc_o.jpg"
# Face boxes as FEC writes them: left, right (columns / width), top, bottom (rows / height).
BOXES = ["0.25,0.75,0.1,0.6", "0.0,0.5,0.5,1.0", "0.5,1.0,0.0,0.5"]
COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]


def _row(ids: tuple[int, int, int], ttype: str, votes: list[int]) -> str:
    cells = []
    for k, i in enumerate(ids):
        cells += [f'"{URL.format(k + 1, i)}"', BOXES[k]]
    cells.append(ttype)
    for j, v in enumerate(votes):
        cells += [f"{9000 + j}", str(v)]
    return ",".join(cells)


def _image(path: Path, k: int) -> None:
    # 200 x 100 px grey image with the face box of slot k filled with a colour.
    w, h = 200, 100
    a = np.full((h, w, 3), 128, np.uint8)
    left, right, top, bottom = (float(v) for v in BOXES[k].split(","))
    a[int(top * h) : int(bottom * h), int(left * w) : int(right * w)] = COLOURS[k]
    Image.fromarray(a).save(path)


@pytest.fixture
def fec(tmp_path: Path) -> tuple[Path, Path]:
    rows = [
        _row((1, 2, 3), "ONE_CLASS_TRIPLET", [1, 1, 1, 2, 1, 3]),
        _row((4, 5, 6), "TWO_CLASS_TRIPLET", [3, 3, 3, 3, 3, 3]),
        _row((7, 8, 9), "THREE_CLASS_TRIPLET", [2, 2, 1, 2, 2, 2, 3, 2]),  # 8 annotators
        _row((10, 11, 12), "ONE_CLASS_TRIPLET", [1, 2, 3, 1, 2, 3]),  # images not downloaded
    ]
    csv_path = tmp_path / "faceexp-comparison-data-test-public.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    img = tmp_path / "images"
    img.mkdir()
    for i in range(1, 10):
        _image(img / f"{i}_abc_o.jpg", (i - 1) % 3)
    return csv_path, img


def test_rows_parse(fec: tuple[Path, Path]) -> None:
    rows = read_fec_csv(fec[0])
    assert len(rows) == 4
    r = rows[0]
    assert r.urls[1] == URL.format(2, 2)
    np.testing.assert_allclose(r.boxes[0], [0.25, 0.1, 0.75, 0.6])  # -> xyxy
    assert TRIPLET_TYPES[r.triplet_type] == "ONE_CLASS_TRIPLET"
    assert r.annotator_ids[:2] == ("9000", "9001")
    assert r.votes.tolist() == [4, 1, 1]
    assert r.odd_one == 0
    assert r.agreement == pytest.approx(4 / 6)
    assert rows[1].odd_one == 2
    assert rows[1].agreement == 1.0
    assert len(rows[2].annotations) == 8
    assert rows[2].odd_one == 1


def test_dataset_resolves_basenames_and_crops_the_boxes(fec: tuple[Path, Path]) -> None:
    ds = FecDataset(fec[0], fec[1], size=32)
    assert len(ds) == 3
    assert ds.n_missing == 1
    item = ds[0]
    assert item.images.shape == (3, 32, 32, 3)
    assert [f.name for f in item.files] == ["1_abc_o.jpg", "2_abc_o.jpg", "3_abc_o.jpg"]
    for k in range(3):  # each crop is its box's colour (JPEG: within a tolerance)
        centre = item.images[k, 8:24, 8:24].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(centre, COLOURS[k], atol=12)


def test_missing_image_raise(fec: tuple[Path, Path]) -> None:
    with pytest.raises(InputError, match=r"10_abc_o\.jpg: image of line 4 not found"):
        FecDataset(fec[0], fec[1], on_missing="raise")


def test_mapping_csv_and_json(fec: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, img = fec
    (img / "renamed.jpg").write_bytes((img / "1_abc_o.jpg").read_bytes())
    m = tmp_path / "map.csv"
    m.write_text(
        "url,file\n"
        + f"{URL.format(1, 1)},renamed.jpg\n"
        + f"{URL.format(2, 2)},2_abc_o.jpg\n"
        + f"{URL.format(3, 3)},3_abc_o.jpg\n"
    )
    ds = FecDataset(csv_path, img, mapping=m)
    assert len(ds) == 1
    assert ds[0].files[0].name == "renamed.jpg"
    j = tmp_path / "map.json"
    j.write_text(json.dumps(read_mapping(m) | {URL.format(2, 2): "../escape.jpg"}))
    with pytest.raises(InputError, match="none of the 4 FEC triplets has its three images"):
        FecDataset(csv_path, img, mapping=j)  # a path out of the folder is not followed


def test_url_basename() -> None:
    assert url_basename("https://x.org/a/b%20c.jpg?size=1") == "b c.jpg"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("a,b,c", r"line 1: 3 fields"),
        (_row((1, 2, 3), "FOUR_CLASS", [1, 2]), r"line 1: triplet type 'FOUR_CLASS'"),
        (_row((1, 2, 3), "ONE_CLASS_TRIPLET", [4, 1]), r"line 1: annotation 4 is not 1, 2 or 3"),
        (_row((1, 2, 3), "ONE_CLASS_TRIPLET", [1]).replace("0.25", "x", 1), "not a number"),
        (_row((1, 2, 3), "ONE_CLASS_TRIPLET", [1]).replace("0.75", "1.5", 1), r"outside \[0, 1\]"),
        (_row((1, 2, 3), "ONE_CLASS_TRIPLET", [1]).replace("0.75", "0.2", 1), "empty face box"),
    ],
)
def test_bad_rows(tmp_path: Path, line: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(line + "\n")
    with pytest.raises(InputError, match=match):
        read_fec_csv(p)


def test_bad_rows_skipped_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "mixed.csv"
    p.write_text("a,b,c\n" + _row((1, 2, 3), "ONE_CLASS_TRIPLET", [1, 1]) + "\n")
    report = FecReadReport()
    rows = read_fec_csv(p, on_error="skip", report=report)
    assert len(rows) == 1
    assert list(report.skipped) == [1]


def test_file_errors(tmp_path: Path, fec: tuple[Path, Path]) -> None:
    with pytest.raises(InputError, match="FEC annotation CSV not found"):
        read_fec_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(InputError, match="no FEC triplet rows"):
        read_fec_csv(tmp_path / "empty.csv")
    with pytest.raises(ConfigError, match="on_error must be"):
        read_fec_csv(fec[0], on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="FEC image folder not found"):
        FecDataset(fec[0], tmp_path / "noimg")
    with pytest.raises(ConfigError, match="size must be >= 16"):
        FecDataset(fec[0], fec[1], size=4)
    with pytest.raises(ConfigError, match=r"margin must be in \[0, 1\]"):
        FecDataset(fec[0], fec[1], margin=2.0)
    with pytest.raises(ConfigError, match="on_missing must be"):
        FecDataset(fec[0], fec[1], on_missing="x")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="mapping file not found"):
        read_mapping(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="needs the columns 'url' and 'file'"):
        read_mapping(tmp_path / "m.csv")
    (tmp_path / "m.json").write_text("[1]")
    with pytest.raises(InputError, match=r"must be an object \{url: file name\}"):
        read_mapping(tmp_path / "m.json")

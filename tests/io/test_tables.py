"""Table writers: formats round-trip, streaming chunks, atomicity."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.tables import (
    TEMP_SUFFIX,
    TableWriter,
    check_name,
    format_from_path,
    partial_path,
    read_table,
    remove_stale_temps,
    write_table,
)


def _df(n: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "input": [f"clip{i % 2}.mp4" for i in range(start, start + n)],
            "frame": np.arange(start, start + n, dtype=np.int64) + 1,
            "x_0": rng.normal(size=n),
            "pose_Rx": np.where(np.arange(n) % 3 == 0, np.nan, rng.normal(size=n)),
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_round_trip_keeps_values_and_nans(tmp_path, fmt):
    df = _df(10)
    path = write_table(df, tmp_path / f"t.{fmt}")
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert back["input"].tolist() == df["input"].tolist()
    np.testing.assert_array_equal(back["frame"].to_numpy(), df["frame"].to_numpy())
    np.testing.assert_allclose(back["x_0"], df["x_0"], rtol=1e-12)
    assert back["pose_Rx"].isna().tolist() == df["pose_Rx"].isna().tolist()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_chunks_append_in_order(tmp_path, fmt):
    path = tmp_path / f"t.{fmt}"
    with TableWriter(path) as w:
        for k in range(3):
            w.write(_df(4, start=4 * k))
    back = read_table(path)
    assert back["frame"].tolist() == list(range(1, 13))


def test_target_appears_only_on_close(tmp_path):
    path = tmp_path / "t.csv"
    w = TableWriter(path)
    w.write(_df(3))
    assert not path.exists()
    (tmp,) = tmp_path.iterdir()
    assert tmp.name.startswith(".t.csv.")
    assert tmp.name.endswith(TEMP_SUFFIX)
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    assert len(read_table(path)) == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_two_writers_of_one_table_never_share_a_temp_file(tmp_path, fmt):
    path = tmp_path / f"t.{fmt}"
    a, b = TableWriter(path), TableWriter(path)
    a.write(_df(5, start=0))
    b.write(_df(7, start=100))
    a.write(_df(5, start=5))
    a.close()
    assert read_table(path)["frame"].tolist() == list(range(1, 11))
    b.close()  # the last one to finish wins, whole
    assert read_table(path)["frame"].tolist() == list(range(101, 108))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_link_planted_at_the_partial_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "t.csv"
    (tmp_path / "t.csv.partial").symlink_to(victim)
    w = TableWriter(path)
    w.write(_df(4))
    kept = w.keep_partial()
    w.abort()  # what the batch does as the interrupt unwinds: the kept rows stay
    assert kept == tmp_path / "t.csv.partial"
    assert not kept.is_symlink()  # the link itself was replaced
    assert victim.read_text() == "precious"
    assert len(read_table(kept, "csv")) == 4
    assert not path.exists()


def test_partial_name_is_cut_to_255_bytes(tmp_path):
    stem = "é" * 122  # 244 bytes
    p = partial_path(tmp_path / f"{stem}.csv")
    assert len(os.fsencode(p.name)) <= 255
    assert p.name.endswith(".partial")
    assert p.name.startswith("é" * 100)
    assert partial_path(tmp_path / "short.csv").name == "short.csv.partial"
    w = TableWriter(tmp_path / f"{stem}.csv")  # the temp name is short: this works
    w.write(_df(2))
    assert w.keep_partial() == p
    assert len(read_table(p, "csv")) == 2


def test_too_long_output_name_is_refused_by_name(tmp_path):
    check_name(tmp_path / ("a" * 251 + ".csv"))  # 255 bytes: fine
    with pytest.raises(InputError, match=r"output file name is 256 bytes; file systems allow 255"):
        check_name(tmp_path / ("a" * 252 + ".csv"))
    w = TableWriter(tmp_path / ("b" * 260 + ".csv"))
    w.write(_df(1))
    with pytest.raises(InputError, match=r"b{260}\.csv: output file name is too long"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_stale_temps_of_killed_writers_are_removed(tmp_path):
    w = TableWriter(tmp_path / "t.csv")
    w.write(_df(2))  # never closed: as if the process was killed
    keep = tmp_path / ".notes.tmp"
    keep.write_text("not ours")
    (tmp_path / "t.csv").write_text("a finished table")
    removed = remove_stale_temps(tmp_path)
    assert [p.name.endswith(TEMP_SUFFIX) for p in removed] == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "t.csv"]


def test_read_table_of_a_fifo_says_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe\.csv: not a regular file \(a FIFO"):
        read_table(fifo)  # and never blocks opening it
    with pytest.raises(InputError, match=r"is a directory, not a table file"):
        read_table(tmp_path)


def test_error_inside_writer_leaves_no_output(tmp_path):
    path = tmp_path / "t.parquet"

    def fail_midway():
        with TableWriter(path) as w:
            w.write(_df(3))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert list(tmp_path.iterdir()) == []


def test_chunk_with_other_columns_is_rejected(tmp_path):
    w = TableWriter(tmp_path / "t.csv")
    w.write(_df(2))
    with pytest.raises(ValueError, match="columns differ"):
        w.write(_df(2).drop(columns=["x_0"]))
    w.abort()


def test_unknown_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown table format '\.xlsx'"):
        format_from_path(tmp_path / "t.xlsx")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.csv: file not found"):
        read_table(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.touch()
    with pytest.raises(InputError, match=r"empty\.csv: empty file"):
        read_table(empty)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable parquet table"):
        read_table(bad)


def test_reads_openface_csv_with_spaces_in_header(media_dir):
    df = read_table(media_dir / "OpenFace_Test.csv")
    assert list(df.columns[:5]) == ["frame", "timestamp", "confidence", "success", "gaze_0_x"]
    assert df["frame"].iloc[0] == 1

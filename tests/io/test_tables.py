"""Table writers: formats round-trip, streaming chunks, atomicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.tables import TableWriter, format_from_path, read_table, write_table


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
    assert (tmp_path / "t.csv.partial").exists()
    w.close()
    assert path.exists()
    assert not (tmp_path / "t.csv.partial").exists()


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

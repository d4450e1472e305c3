"""Bounded, total JSON parsing of untrusted files (io/_checks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from facexpr.core.errors import InputError
from facexpr.io._checks import BadJSON, loads_json, read_json_file


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"n_samples": ' + b"9" * 5001 + b"}", r"a number has more than \d+ digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": 1', "Expecting"),
        (b'{"a": "\xff"}', "not UTF-8 text"),
        ('{"a": 1}}', "Extra data"),
    ],
)
def test_loads_json_raises_bad_json_for_every_hostile_text(raw: bytes | str, reason: str) -> None:
    with pytest.raises(BadJSON, match=reason):
        loads_json(raw)


def test_loads_json_parses_good_text_and_passes_options() -> None:
    assert loads_json(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}

    def no_nan(name: str) -> float:
        raise ValueError(f"{name} is not a JSON number")

    with pytest.raises(BadJSON, match="NaN is not a JSON number"):
        loads_json("[NaN]", parse_constant=no_nan)


def test_read_json_file_names_the_file_for_a_number_over_the_digit_limit(tmp_path: Path) -> None:
    p = tmp_path / "manifest.json"
    p.write_text('{"n_samples": ' + "1" * (sys.get_int_max_str_digits() + 1) + "}")
    with pytest.raises(
        InputError, match=r"manifest\.json: corrupt manifest, not valid JSON \(a number has more"
    ):
        read_json_file(p, "manifest")

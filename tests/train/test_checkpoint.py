"""Checkpoint folders read as untrusted input: confined to the run, bounded JSON, no FIFOs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from facexpr.core.errors import ModelError
from facexpr.train.checkpoint import (
    MAX_JSON_BYTES,
    confine,
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
)

STATE = {"format": "facexpr-checkpoint", "version": 1, "world_size": 1, "step": 1}


def _run(tmp_path: Path, name: object = "step-00000001") -> tuple[Path, Path]:
    run = tmp_path / "run"
    step = run / "checkpoints" / "step-00000001"
    step.mkdir(parents=True)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": name}))
    (step / "state.json").write_text(json.dumps(STATE))
    return run, step


def _load(step: Path) -> None:
    model = torch.nn.Linear(2, 2)
    load_checkpoint(step, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_latest_checkpoint_is_the_named_step_folder(tmp_path):
    run, step = _run(tmp_path)
    assert latest_checkpoint(run) == step


@pytest.mark.parametrize("name", ["../../../etc", "/tmp", "step-1/../../x", 7, None])
def test_latest_json_must_name_a_step_folder_inside(tmp_path, name):
    run, _ = _run(tmp_path, name)
    with pytest.raises(ModelError, match=r"latest\.json: corrupt checkpoint index: .*refused"):
        latest_checkpoint(run)


def test_step_folder_linked_out_of_the_run_is_refused(tmp_path):
    run, step = _run(tmp_path)
    outside = tmp_path / "elsewhere"
    step.rename(outside)
    step.symlink_to(outside)
    with pytest.raises(ModelError, match=r"step-00000001: is a link that leads outside the run"):
        latest_checkpoint(run)


def test_file_linked_out_of_the_checkpoint_is_refused_before_reading(tmp_path):
    _, step = _run(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 100)
    (step / "model.safetensors").symlink_to(secret)
    with pytest.raises(ModelError, match=r"model\.safetensors: is a link that leads outside"):
        _load(step)


def test_confine_allows_links_inside_and_plain_paths(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"1")
    (tmp_path / "b.bin").symlink_to(tmp_path / "a.bin")
    assert confine(tmp_path / "b.bin", tmp_path) == tmp_path / "b.bin"
    with pytest.raises(ModelError, match=r"x\.bin: leads outside the run folder"):
        confine(tmp_path / ".." / "x.bin", tmp_path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, r"corrupt checkpoint file, not readable JSON \(nested"),
        (b'{"step": ' + b"9" * 5000 + b"}", r"not readable JSON \(a number has"),
        (b" " * (MAX_JSON_BYTES + 1), rf"checkpoint file is larger than {MAX_JSON_BYTES} bytes"),
    ],
)
def test_hostile_state_json_is_a_model_error(tmp_path, data, reason):
    _, step = _run(tmp_path)
    (step / "state.json").write_bytes(data)
    with pytest.raises(ModelError, match=rf"state\.json: .*{reason}"):
        _load(step)


def test_fifo_in_a_checkpoint_is_never_opened_for_reading(tmp_path):
    _, step = _run(tmp_path)
    (step / "state.json").unlink()
    os.mkfifo(step / "state.json")
    with pytest.raises(ModelError, match=r"state\.json: checkpoint file is not a regular file"):
        _load(step)
    os.mkfifo(tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match=r"w\.safetensors: weights file is not a regular file"):
        load_model_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")

"""The training loop: resume bit-exact, accumulation, DDP on gloo, corrupt checkpoints, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from facexpr.core.errors import ConfigError, ModelError
from facexpr.train.checkpoint import latest_checkpoint
from facexpr.train.main import train

HERE = Path(__file__).resolve().parent
TINY = "tiny_recipe:TinyRecipe"
BASE = [
    "run.batch_size=16",
    "run.log_every=1",
    "run.checkpoint_every=4",
    "run.keep_checkpoints=5",
    "optim.lr=0.05",
    "optim.accumulate=2",
    "schedule.warmup_steps=2",
]
NOISY = [*BASE, "model.noise=0.05", "model.dropout=0.1", "data.augment=0.1"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_continues_bit_exactly(tmp_path):
    # 8 steps of 2 micro-batches of 16 over 64 samples: 4 epochs, the stop at step 4 at an
    # epoch boundary of the data and mid-way through the schedule.
    straight = tmp_path / "straight"
    train(TINY, overrides=[*NOISY, "run.steps=8"], out=straight)
    half = tmp_path / "half"
    train(TINY, overrides=[*NOISY, "run.steps=8", "run.stop_at=4"], out=half)
    train(TINY, overrides=["run.stop_at=0"], resume=half)
    a, b = _weights(straight), _weights(half)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in _rows(straight) if "loss" in r]
    lb = [r["loss"] for r in _rows(half) if "loss" in r]
    assert la == lb
    assert len(la) == 8
    ca = load_file(str(latest_checkpoint(straight) / "optimizer.safetensors"))
    cb = load_file(str(latest_checkpoint(half) / "optimizer.safetensors"))
    assert all(torch.equal(ca[k], cb[k]) for k in ca)


def test_resume_mid_epoch_and_without_noise_still_exact(tmp_path):
    # Step 3 ends mid-epoch (batch 2 of 4 of epoch 1): the data position must be restored.
    ov = [*NOISY, "run.checkpoint_every=3"]
    straight, half = tmp_path / "s", tmp_path / "h"
    train(TINY, overrides=[*ov, "run.steps=7"], out=straight)
    train(TINY, overrides=[*ov, "run.steps=7", "run.stop_at=3"], out=half)
    state = json.loads((latest_checkpoint(half) / "state.json").read_text())
    assert (state["epoch"], state["batch"]) == (1, 2)
    train(TINY, overrides=["run.stop_at=0"], resume=half)
    a, b = _weights(straight), _weights(half)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_that_drops_rng_state_diverges(tmp_path):
    # The check above can fail: with the RNG files removed the run is not the same.
    straight, half = tmp_path / "s", tmp_path / "h"
    train(TINY, overrides=[*NOISY, "run.steps=8"], out=straight)
    train(TINY, overrides=[*NOISY, "run.steps=8", "run.stop_at=4"], out=half)
    ckpt = latest_checkpoint(half)
    (ckpt / "rng-0.json").write_text(json.dumps(json.loads((ckpt / "rng-0.json").read_text())))
    from safetensors.torch import save_file

    save_file({"torch_cpu": torch.manual_seed(123).get_state()}, str(ckpt / "rng-0.safetensors"))
    train(TINY, overrides=["run.stop_at=0"], resume=half)
    a, b = _weights(straight), _weights(half)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_training_converges_and_writes_its_outputs(tmp_path):
    run = tmp_path / "run"
    res = train(
        TINY,
        overrides=[*BASE, "run.steps=60", "run.eval_every=20", "run.log_every=5"],
        out=run,
    )
    rows = [r for r in _rows(run) if "loss" in r]
    assert rows[-1]["loss"] < 0.2 * rows[0]["loss"]
    evals = [r["eval/mse"] for r in _rows(run) if "eval/mse" in r]
    assert len(evals) == 3
    assert evals[-1] < evals[0]
    assert res.steps == 60
    assert res.eval_metrics["eval/mse"] == pytest.approx(evals[-1])
    assert res.images_per_s > 0
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert ckpts[-1] == "step-00000060"
    cfg = (run / "config.yaml").read_text()
    assert "recipe: tiny_recipe:TinyRecipe" in cfg
    assert "lr: 0.05" in cfg
    png = np.asarray(Image.open(run / "loss.png").convert("RGB"))
    assert png.shape == (480, 800, 3)
    assert (png[30:420, 80:770] != 255).any(axis=2).mean() > 0.005  # curves drawn


def test_accumulation_matches_one_big_batch(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["run.steps=6", "optim.lr=0.05", "run.log_every=1"]
    train(TINY, overrides=[*common, "run.batch_size=8", "optim.accumulate=2"], out=a)
    train(TINY, overrides=[*common, "run.batch_size=16", "optim.accumulate=1"], out=b)
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    if not torch.distributed.is_gloo_available():
        pytest.skip("torch built without gloo")
    ov = ["run.steps=6", "run.batch_size=16", "optim.lr=0.05", "optim.accumulate=2"]
    one = tmp_path / "one"
    train(TINY, overrides=ov, out=one)
    two = tmp_path / "two"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "facexpr.cli.main", "-q", "train", TINY, "--out", str(two),
        *[x for o in ov for x in ("--set", o)],
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w1, w2 = _weights(one), _weights(two)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6)
    # Each process computed on its half of every batch (the logged mean of the local size).
    assert {r["n"] for r in _rows(two) if "n" in r} == {8.0}
    assert {r["n"] for r in _rows(one) if "n" in r} == {16.0}
    ckpt = latest_checkpoint(two)
    assert sorted(p.name for p in ckpt.glob("rng-*.safetensors")) == [
        "rng-0.safetensors",
        "rng-1.safetensors",
    ]
    # A 2-process checkpoint resumed by one process is refused, not silently continued.
    with pytest.raises(ModelError, match="written by 2 processes"):
        train(TINY, overrides=["run.steps=8"], resume=two)


def test_corrupt_checkpoint_names_the_file(tmp_path):
    run = tmp_path / "run"
    train(TINY, overrides=[*BASE, "run.steps=4"], out=run)
    ckpt = latest_checkpoint(run)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"model\.safetensors: corrupt"):
        train(TINY, overrides=["run.steps=6"], resume=run)


def test_corrupt_optimizer_state_names_the_file(tmp_path):
    run = tmp_path / "run"
    train(TINY, overrides=[*BASE, "run.steps=4"], out=run)
    (latest_checkpoint(run) / "optimizer.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"optimizer\.json: corrupt checkpoint file"):
        train(TINY, overrides=["run.steps=6"], resume=run)


def test_weights_of_another_model_are_refused(tmp_path):
    run = tmp_path / "run"
    train(TINY, overrides=[*BASE, "run.steps=4", "model.hidden=16"], out=run)
    text = (run / "config.yaml").read_text().replace("hidden: 16", "hidden: 8")
    (run / "config.yaml").write_text(text)
    with pytest.raises(ModelError, match=r"model\.safetensors: weights do not fit the model"):
        train(TINY, overrides=["run.steps=6"], resume=run)


def test_missing_checkpoint_index(tmp_path):
    run = tmp_path / "run"
    train(TINY, overrides=[*BASE, "run.steps=4"], out=run)
    (run / "checkpoints" / "latest.json").unlink()
    with pytest.raises(ModelError, match=r"latest\.json: no checkpoint to resume from"):
        train(TINY, overrides=["run.steps=6"], resume=run)


def test_run_folder_rules(tmp_path):
    run = tmp_path / "run"
    train(TINY, overrides=[*BASE, "run.steps=2"], out=run)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(TINY, overrides=[*BASE, "run.steps=2"], out=run)
    with pytest.raises(ConfigError, match=r"--set optim\.lr: cannot change on --resume"):
        train(TINY, overrides=["optim.lr=0.1"], resume=run)
    with pytest.raises(ConfigError, match="--config cannot be given with --resume"):
        train(TINY, config=run / "config.yaml", resume=run)
    with pytest.raises(ConfigError, match=r"not found; is .* a facexpr training run"):
        train(TINY, resume=tmp_path / "nothing")


def test_bf16_is_refused_on_cpu(tmp_path):
    with pytest.raises(ConfigError, match="bf16' is for CUDA only"):
        train(TINY, overrides=["run.precision=bf16", "run.device=cpu"], out=tmp_path / "r")


def test_diverging_loss_is_reported(tmp_path):
    from facexpr.core.errors import FacexprError

    with pytest.raises(FacexprError, match=r"step \d+: the loss is (nan|inf)"):
        train(
            TINY,
            overrides=["run.steps=50", "optim.lr=1e6", "optim.name=sgd", "run.batch_size=16"],
            out=tmp_path / "r",
        )

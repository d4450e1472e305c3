"""`facexpr train`: a run, a resume, and errors that exit 2 naming the file."""

from __future__ import annotations

import json

from facexpr.cli.main import main

TINY = "tiny_recipe:TinyRecipe"


def test_train_then_resume(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("run:\n  steps: 6\n  batch_size: 16\n  log_every: 2\noptim:\n  lr: 0.05\n")
    rc = main(
        ["-q", "train", TINY, "--config", str(cfg), "--set", "run.stop_at=3", "--out", str(run)]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run}: 3 steps, loss ")
    rc = main(["-q", "train", TINY, "--resume", str(run), "--set", "run.stop_at=0"])
    assert rc == 0
    assert capsys.readouterr().out.startswith(f"{run}: 6 steps, loss ")
    rc = main(["-q", "train", TINY, "--resume", str(run)])
    assert rc == 0
    assert "already at step 6; nothing to train" in capsys.readouterr().out
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 3, 4, 6, 6]  # each session ends with a loss row and an eval row


def test_errors_exit_2_naming_the_file(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optim:\n  lrr: 0.1\n")
    rc = main(["-q", "train", TINY, "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{cfg}: unknown key 'optim.lrr' (did you mean 'optim.lr'?)" in err
    assert "Traceback" not in err
    rc = main(["-q", "train", "nosuch", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "unknown recipe 'nosuch'" in capsys.readouterr().err
    run = tmp_path / "ok"
    assert main(["-q", "train", TINY, "--set", "run.steps=2", "--set", "run.batch_size=16",
                 "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    (run / "checkpoints" / "step-00000002" / "model.safetensors").write_bytes(b"garbage")
    rc = main(["-q", "train", TINY, "--resume", str(run), "--set", "run.steps=4"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "step-00000002/model.safetensors: corrupt weights file" in err

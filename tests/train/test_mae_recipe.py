"""Recipe ``mae``: a 2-layer ViT's MAE loss falls on real faces; reconstructions and encoder out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from facexpr.core.errors import ConfigError
from facexpr.nn import create_model
from facexpr.train.main import train

SMALL = [
    "model.img_size=64",
    "model.depth=2",
    "model.decoder_dim=64",
    "model.decoder_depth=1",
    "run.batch_size=16",
    "optim.lr=2e-3",
    "optim.weight_decay=0.0",
    "schedule.warmup_steps=3",
    "data.val_percent=30",  # 24 held-out faces: one eval batch of 16
    "data.eval_batches=1",
]


@pytest.mark.slow
def test_mae_loss_falls_on_real_faces(face_shards, tmp_path):
    run = tmp_path / "mae"
    res = train(
        "mae",
        overrides=[*SMALL, f"data.shards=[{face_shards}]", "run.steps=30", "run.log_every=5",
                   "run.eval_every=15"],
        out=run,
    )  # fmt: skip
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_loss = [r["loss"] for r in rows if "loss" in r]
    # Per-patch normalised targets: predicting zeros scores about 1.0; learning goes below.
    assert np.mean(train_loss[-2:]) < 0.9 * np.mean(train_loss[:2])
    assert np.mean(train_loss[-2:]) < 0.9
    evals = [r["eval/loss"] for r in rows if "eval/loss" in r]
    assert len(evals) == 2
    assert evals[1] < evals[0]
    assert res.eval_metrics["eval/loss"] == pytest.approx(evals[1])
    pic = np.asarray(Image.open(run / "visuals" / "step-00000030.png"))
    assert pic.shape == (3 * 66 + 2, 8 * 66 + 2, 3)  # rows input / masked / pasted, 8 faces
    assert pic[2:66, 2:66].std() > 10  # a face, not a blank tile
    enc = create_model("fxvit_tiny_p16_112", img_size=64, depth=2)
    weights = load_file(str(run / "encoder.safetensors"))
    assert sorted(weights) == sorted(enc.state_dict())
    assert json.loads((run / "encoder.json").read_text())["config"]["depth"] == 2


def test_mae_without_data_says_how_to_give_it(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.shards is empty"):
        train("mae", overrides=SMALL, out=tmp_path / "r")


def test_mae_unknown_encoder(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.encoder 'vit_huge' is not an fxvit encoder"):
        train("mae", overrides=["model.encoder=vit_huge"], out=tmp_path / "r")

"""Recipe ``expression``: mined triplets across people, a triplets file, overfitting one batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.train.main import train
from facexpr.train.triplets import load_pool, mine_triplets, read_triplets

MINE = "data.mine=[{{label: expr, n: {}, min_gap: 0.05}}]"
SMALL = [
    "model.img_size=64",
    "model.depth=2",
    "model.hidden_dim=64",
    "optim.weight_decay=0.0",
    MINE.format(16),
    "data.val_percent=0",
]


def test_mined_triplets_follow_the_label_and_vary_identity(face_shards):
    pool = load_pool([face_shards], ["expr"])
    assert len(pool.keys) == 96
    allowed = np.ones(96, bool)
    t = mine_triplets(pool, "expr", allowed, 200, type_name="teacher", min_gap=0.1, seed=3)
    assert len(t) == 200
    s = pool.subjects.astype(str)
    assert (s[t.anchor] != s[t.positive]).all()
    assert (s[t.anchor] != s[t.negative]).all()
    assert (s[t.positive] != s[t.negative]).all()
    lab = pool.labels["expr"]
    d_ap = np.linalg.norm(lab[t.anchor] - lab[t.positive], axis=1)
    d_an = np.linalg.norm(lab[t.anchor] - lab[t.negative], axis=1)
    d_pn = np.linalg.norm(lab[t.positive] - lab[t.negative], axis=1)
    assert (d_an >= d_ap + 0.1 - 1e-6).all()
    assert (d_pn >= d_ap + 0.1 - 1e-6).all()
    assert set(t.types) == {"teacher"}


def test_pool_errors(face_shards):
    with pytest.raises(ConfigError, match=r"no dataset has a numeric label 'votes' .*have: expr"):
        load_pool([face_shards], ["votes"])
    twice = load_pool([face_shards, face_shards])
    index = twice.index()
    assert "00003" not in index  # ambiguous: in both datasets
    assert (index["0:00003"], index["1:00003"]) == (3, 99)


def test_triplets_file(face_shards, tmp_path):
    pool = load_pool([face_shards])
    f = tmp_path / "t.jsonl"
    f.write_text(
        json.dumps({"anchor": "00000", "positive": "00002", "negative": "00004", "type": "video"})
        + "\n\n"
        + json.dumps(
            {"anchor": "00006", "positive": "00008", "negative": "00010", "type": "two_class"}
        )
        + "\n"
    )
    t = read_triplets(f, pool)
    assert list(t.types) == ["video", "two_class"]
    assert [pool.keys[i] for i in (t.anchor[1], t.positive[1], t.negative[1])] == [
        "00006",
        "00008",
        "00010",
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"anchor": "00000", "positive": "nope", "negative": "00004", "type": "x"})
    )
    with pytest.raises(InputError, match=r"bad\.jsonl: line 1: 'nope' is missing or not a key"):
        read_triplets(bad, pool)
    same = tmp_path / "same.jsonl"
    same.write_text(
        json.dumps({"anchor": "00000", "positive": "00001", "negative": "00004", "type": "x"})
    )
    with pytest.raises(InputError, match=r"same\.jsonl: line 1: the three faces must be of three"):
        read_triplets(same, pool)


@pytest.mark.slow
def test_triplet_accuracy_reaches_100_percent_on_one_overfitted_batch(face_shards, tmp_path):
    run = tmp_path / "expr"
    train(
        "expression",
        overrides=[*SMALL, f"data.shards=[{face_shards}]", MINE.format(8), "run.batch_size=8",
                   "model.img_size=48", "run.steps=30", "run.log_every=5", "optim.lr=2e-3",
                   "data.scale=[1.0, 1.0]", "data.flip=false"],
        out=run,
    )  # fmt: skip
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    accs = [r["acc"] for r in rows if "acc" in r]
    assert accs[-1] == 1.0
    assert accs[0] < 1.0
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.1 * losses[0]


def test_evaluation_per_type_and_init_from_stage_one(face_shards, tmp_path):
    mae = tmp_path / "mae"
    train(
        "mae",
        overrides=["model.img_size=64", "model.depth=2", "model.decoder_dim=64",
                   "model.decoder_depth=1", f"data.shards=[{face_shards}]", "run.steps=2",
                   "run.batch_size=16", "data.val_percent=0"],
        out=mae,
    )  # fmt: skip
    run = tmp_path / "expr"
    res = train(
        "expression",
        overrides=[*SMALL, f"data.shards=[{face_shards}]", MINE.format(64), "data.val_percent=30",
                   "run.batch_size=16", "run.steps=2", f"model.init={mae}"],
        out=run,
    )  # fmt: skip
    ev = res.eval_metrics
    assert set(ev) == {"eval/acc", "eval/loss", "eval/acc/teacher"}
    assert 0.0 <= ev["eval/acc"] <= 1.0
    assert ev["eval/acc"] == ev["eval/acc/teacher"]
    with pytest.raises(ModelError, match=r"encoder\.safetensors: weights do not fit the model"):
        train(
            "expression",
            overrides=[*SMALL, f"data.shards=[{face_shards}]", MINE.format(16),
                       "run.batch_size=16", "run.steps=1", f"model.init={mae}", "model.depth=3"],
            out=tmp_path / "other",
        )  # fmt: skip


def test_expression_config_errors(face_shards, tmp_path):
    with pytest.raises(ConfigError, match=r"give data\.mine \(labels to mine triplets by\) and/or"):
        train("expression", overrides=[f"data.shards=[{face_shards}]"], out=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"triplet type 'teacher' has no margin in data\.margins"):
        train(
            "expression",
            overrides=[*SMALL, f"data.shards=[{face_shards}]", MINE.format(16),
                       "data.margins={video: 0.1}"],
            out=tmp_path / "b",
        )  # fmt: skip

"""Recipe ``expression`` on the triplet sources: overfitting one batch, per-type evaluation,
stage-1 initialisation, config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, ModelError
from facexpr.train.main import train

SMALL = [
    "model.img_size=64",
    "model.depth=2",
    "model.hidden_dim=64",
    "optim.weight_decay=0.0",
]


def _rig(shards, n, eval_n=0):
    # The fixture's made-up 4-d 'expr' vector stands in for rig weights; 48 subjects.
    return (
        f"data.sources=[{{kind: rig, datasets: [{shards}], field: expr, n: {n}, "
        f"eval_n: {eval_n}, pos_max: 0.6, margin: 0.2}}]"
    )


@pytest.mark.slow
def test_triplet_accuracy_reaches_100_percent_on_one_overfitted_batch(face_shards, tmp_path):
    run = tmp_path / "expr"
    train(
        "expression",
        overrides=[*SMALL, _rig(face_shards, 8), "data.test_share=0", "run.batch_size=8",
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
        overrides=[*SMALL, _rig(face_shards, 64, eval_n=32), "data.test_share=0.3",
                   "run.batch_size=16", "run.steps=2", f"model.init={mae}"],
        out=run,
    )  # fmt: skip
    ev = res.eval_metrics
    assert set(ev) == {"eval/acc", "eval/loss", "eval/acc/rig"}
    assert 0.0 <= ev["eval/acc"] <= 1.0
    assert ev["eval/acc"] == ev["eval/acc/rig"]
    with pytest.raises(ModelError, match=r"encoder\.safetensors: weights do not fit the model"):
        train(
            "expression",
            overrides=[*SMALL, _rig(face_shards, 16), "data.test_share=0", "run.batch_size=16",
                       "run.steps=1", f"model.init={mae}", "model.depth=3"],
            out=tmp_path / "other",
        )  # fmt: skip


def test_expression_config_errors(face_shards, tmp_path):
    with pytest.raises(ConfigError, match=r"data\.sources is empty"):
        train("expression", out=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"data\.sources 'rig' needs datasets"):
        train("expression", overrides=["data.sources=[{kind: rig}]"], out=tmp_path / "b")
    with pytest.raises(ConfigError, match=r"data\.margins: unknown triplet type 'rigg'"):
        train("expression", overrides=["data.margins={rigg: 0.1}"], out=tmp_path / "c")
    with pytest.raises(ConfigError, match=r"key 'data\.sources\[0\]\.kind' must be 'rig' \|"):
        train("expression", overrides=["data.sources=[{kind: faces}]"], out=tmp_path / "d")
    with pytest.raises(ConfigError, match=r"data\.margins has no margin for triplet type 'rig'"):
        train(
            "expression",
            overrides=[*SMALL, _rig(face_shards, 16), "data.test_share=0", "run.batch_size=8",
                       "data.margins={teacher: 0.1}", "run.steps=1"],
            out=tmp_path / "e",
        )  # fmt: skip


@pytest.mark.parametrize("aux_input", ["features", "embedding"])
def test_auxiliary_label_loss_is_computed_and_falls_on_one_batch(face_shards, tmp_path, aux_input):
    import torch

    from facexpr.nn import create_model, load_weights
    from facexpr.train.recipe import DataSpec
    from facexpr.train.recipes.expression import (
        ExpressionDataConfig,
        ExpressionModelConfig,
        ExpressionRecipe,
        TripletSourceConfig,
    )

    src = TripletSourceConfig(
        kind="rig", datasets=[str(face_shards)], field="expr", n=8, pos_max=0.6, margin=0.2
    )
    recipe = ExpressionRecipe(
        ExpressionModelConfig(
            img_size=48,
            depth=2,
            hidden_dim=64,
            aux_weight=2.0,
            aux_dims={"rig": 4, "teacher": 3},
            aux_input=aux_input,
        ),
        ExpressionDataConfig(sources=[src], test_share=0.0, scale=(1.0, 1.0), flip=False),
    )
    torch.manual_seed(0)
    model = recipe.build_model()
    batch = next(iter(recipe.build_data("train", DataSpec(batch_size=8)).batches(0)))
    # The labels are the source's own vectors, anchors then positives then negatives.
    source = recipe._mix("train", 0).sources[0]
    tri = source.triples[0]
    first = source[0]
    assert batch["labels"].shape == (24, 4)  # the widest of aux_dims
    assert bool(batch["has_label"].all())
    np.testing.assert_allclose(first.labels[2], source.vectors[int(tri[2])])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    auxes = []
    for _ in range(25):
        out = recipe.step(model, batch)
        torch.testing.assert_close(out["loss"].detach(), out["triplet"] + 2.0 * out["aux"])
        auxes.append(float(out["aux"]))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert auxes[0] > 0.05  # untrained heads on [0, 1] labels
    assert auxes[-1] < 0.3 * auxes[0]
    assert model.aux["teacher"].weight.grad is not None  # no teacher rows: a zero gradient
    assert float(model.aux["teacher"].weight.grad.abs().max()) == 0.0
    # The exported embedding model leaves the training-only heads out.
    (path,) = recipe.export(model, tmp_path)
    bare = load_weights(create_model("expression", img_size=48, depth=2, hidden_dim=64), path)
    x = torch.rand(2, 3, 48, 48)
    torch.testing.assert_close(bare.eval()(x), model.eval()(x))
    with pytest.raises(ConfigError, match=r"model\.aux_weight"):
        ExpressionModelConfig(aux_weight=-1.0)
    with pytest.raises(ConfigError, match=r"model\.aux_input must be 'features' or 'embedding'"):
        ExpressionModelConfig(aux_input="pixels")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model\.aux_dims: unknown triplet type 'rigg'"):
        ExpressionModelConfig(aux_dims={"rigg": 4})
    wrong = ExpressionRecipe(
        ExpressionModelConfig(img_size=48, depth=2, hidden_dim=64, aux_weight=1.0,
                              aux_dims={"rig": 5}),
        ExpressionDataConfig(sources=[src], test_share=0.0),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.aux_dims\.rig is 5 but the 'rig' triplets"):
        next(iter(wrong.build_data("train", DataSpec(batch_size=8)).batches(0)))

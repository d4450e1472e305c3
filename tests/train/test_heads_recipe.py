"""Recipe ``heads``: every head overfits one batch, config errors name the key, evaluation
scores every held-out face, the hold-out is shared across sources, resume is bit-exact, the
exported embedding model loads, DDP on gloo runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import utk_faces
from facexpr.core.errors import ConfigError
from facexpr.io.shards import LabelField, Sample, ShardWriter
from facexpr.nn import create_model, load_weights
from facexpr.train.checkpoint import latest_checkpoint
from facexpr.train.labels import mirror_blendshapes
from facexpr.train.main import train
from facexpr.train.recipe import DataSpec
from facexpr.train.recipes.heads import (
    FaceSourceConfig,
    HeadsDataConfig,
    HeadsModelConfig,
    HeadsRecipe,
)
from facexpr.train.triplets import split_subjects

N_FACES = 96  # 48 subjects of 2 faces


@pytest.fixture(scope="module")
def labelled(shared_dir, tmp_path_factory) -> Path:
    """96 UTKFace crops (64 px) with made-up labels: emotion_soft (8), emotion_mix (8) with
    emotion_intensity, arkit_weights (52), aus (31). Every 4th face lacks arkit_weights and
    every 5th lacks emotion_soft, so masks and per-source sample lists differ."""
    out = tmp_path_factory.mktemp("labelled")
    schema = [
        LabelField("emotion_soft", (8,), "float32", "made-up FER+ vote distribution"),
        LabelField("emotion_mix", (8,), "float32", "made-up synth emotion shares"),
        LabelField("emotion_intensity", (), "float32", "made-up intensity"),
        LabelField("arkit_weights", (52,), "float32", "made-up ARKit weights"),
        LabelField("aus", (31,), "float32", "made-up AU intensities 0-5"),
    ]
    rng = np.random.default_rng(0)
    with ShardWriter(out, samples_per_shard=32, schema=schema) as w:
        for i, (_, img) in enumerate(utk_faces(shared_dir, N_FACES, 64)):
            soft = rng.dirichlet(np.full(8, 0.3)).astype(np.float32)
            mix = np.zeros(8, np.float32)
            mix[i % 8] = 1.0
            labels: dict[str, object] = {
                "emotion_mix": mix,
                "emotion_intensity": np.float32(rng.uniform(0.3, 1.0)),
                "aus": (rng.uniform(0, 5, 31) * (rng.random(31) < 0.5)).astype(np.float32),
            }
            if i % 5:
                labels["emotion_soft"] = soft
            if i % 4:
                labels["arkit_weights"] = rng.uniform(0, 1, 52).astype(np.float32)
            w.write(
                Sample(
                    key=f"{i:05d}", image=np.ascontiguousarray(img), labels=labels,
                    source="utkface", subject_id=f"s{i // 2}",
                )
            )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def teacher(shared_dir, tmp_path_factory) -> Path:
    """48 other UTKFace crops with made-up Blendshape V2 teacher scores (51, no tongueOut)."""
    out = tmp_path_factory.mktemp("teacher")
    schema = [LabelField("arkit_teacher", (51,), "float32", "made-up teacher scores")]
    rng = np.random.default_rng(1)
    with ShardWriter(out, samples_per_shard=32, schema=schema) as w:
        for i, (_, img) in enumerate(utk_faces(shared_dir, N_FACES + 48, 64)[N_FACES:]):
            w.write(
                Sample(
                    key=f"t{i:05d}", image=np.ascontiguousarray(img),
                    labels={"arkit_teacher": rng.uniform(0, 1, 51).astype(np.float32)},
                    source="utkface", subject_id=f"t{i}",
                )
            )  # fmt: skip
    return out


SMALL = ["model.img_size=48", "model.depth=2", "model.hidden_dim=64", "model.au_dim=8"]


def _faces_yaml(labelled, teacher, share=0.0) -> str:
    return (
        f"data.faces=[{{datasets: [{labelled}], name: lab, test_share: {share}, "
        "labels: {emotion: emotion_soft, va: emotion_mix, blendshapes: arkit_weights, aus: aus}}, "
        f"{{datasets: [{teacher}], name: tea, test_share: {share}, "
        "labels: {blendshapes: arkit_teacher, aus: arkit_teacher}}]"
    )


def _rig_yaml(labelled, n=32, eval_n=16) -> str:
    return (
        f"data.triplets=[{{kind: rig, datasets: [{labelled}], field: arkit_weights, n: {n}, "
        f"eval_n: {eval_n}, pos_max: 3.0, margin: 0.05}}]"
    )


def _recipe(labelled, teacher, **model) -> HeadsRecipe:
    faces = [
        FaceSourceConfig(
            datasets=[str(labelled)], name="lab", test_share=0.0,
            labels={"emotion": "emotion_soft", "va": "emotion_mix",
                    "blendshapes": "arkit_weights", "aus": "aus"},
        ),
        FaceSourceConfig(
            datasets=[str(teacher)], name="tea", test_share=0.0,
            labels={"blendshapes": "arkit_teacher", "aus": "arkit_teacher"},
        ),
    ]  # fmt: skip
    cfg = {"img_size": 48, "depth": 2, "hidden_dim": 64, "au_dim": 8,
           "heads": ["emotion", "va", "blendshapes", "aus"], **model}  # fmt: skip
    return HeadsRecipe(HeadsModelConfig(**cfg), HeadsDataConfig(faces=faces, scale=(1.0, 1.0)))


@pytest.fixture
def one_thread():
    """One torch thread (the machine is shared; more threads only contend)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("experts", [1, 2])
def test_each_head_overfits_one_batch(labelled, teacher, experts, one_thread):
    recipe = _recipe(labelled, teacher, experts=experts)
    torch.manual_seed(0)
    model = recipe.build_model()
    batch = next(iter(recipe.build_data("train", DataSpec(batch_size=16, seed=3)).batches(0)))
    src = batch["source"]
    assert {"lab", "tea"} <= set(src)  # both sources in the batch
    tea = torch.tensor([s == "tea" for s in src])
    # The teacher rows have no emotion and no tongueOut, and every other blendshape.
    assert not batch["emotion_mask"][tea].any()
    assert not batch["blendshapes_mask"][tea, 51].any()
    assert batch["blendshapes_mask"][tea, :51].all()
    # Soft CE cannot fall below the targets' entropy: what must vanish is CE - H (the KL).
    rows = batch["emotion_mask"].all(1)
    assert int(rows.sum()) >= 5
    p = batch["emotion"][rows]
    entropy = float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        out = recipe.step(model, batch)
        losses.append({k: float(v.detach()) for k, v in out.items()})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    with torch.no_grad():
        last = {k: float(v) for k, v in recipe.step(model, batch).items()}
    first = losses[0]
    first["emotion"] -= entropy
    last["emotion"] -= entropy
    assert first["emotion"] > 0.3
    for head in ("emotion", "va", "blendshapes", "aus"):
        assert last[head] < 0.2 * first[head], (head, first[head], last[head])
    model.eval()
    with torch.no_grad():
        out = recipe._forward(model, batch["images"])
    acc = (out["emotion"][rows].argmax(1) == p.argmax(1)).float().mean()
    assert float(acc) == 1.0


def test_train_batches_mirror_blendshape_targets_with_flipped_images(labelled, teacher):
    recipe = _recipe(labelled, teacher)
    recipe.data_cfg.flip = True
    faces = {s.name: s for s in recipe._side("train", 0)}
    data = recipe.build_data("train", DataSpec(batch_size=32, seed=0))
    batch = next(iter(data.batches(0)))
    # Which face each row is: rebuild the item order as IndexedBatches does.
    flipped = same = 0
    for r, name in enumerate(batch["source"]):
        t = batch["blendshapes"][r].numpy()
        m = batch["blendshapes_mask"][r].numpy()
        if not m.any():
            continue
        cands = faces[name].targets["blendshapes"]
        if any(np.array_equal(t, c) for c in cands):
            same += 1
        else:
            assert any(np.array_equal(t, mirror_blendshapes(c)) for c in cands)
            flipped += 1
    assert flipped > 0
    assert same > 0


def test_config_errors_name_the_key(labelled, teacher, tmp_path):
    faces = _faces_yaml(labelled, teacher)
    base = [*SMALL, "model.heads=[emotion, va, blendshapes, aus]", "run.steps=1"]

    count = iter(range(100))

    def run(*extra: str) -> None:
        train("heads", overrides=[*base, *extra], out=tmp_path / f"r{next(count)}")

    with pytest.raises(ConfigError, match=r"data\.faces is empty: give labelled face sources"):
        run()
    with pytest.raises(ConfigError, match=r"data\.faces '.*': unknown head 'gaze' \(known:"):
        run(f"data.faces=[{{datasets: [{labelled}], labels: {{gaze: aus}}}}]")
    with pytest.raises(ConfigError, match=r"data\.faces '.*': head 'va' cannot be trained from"):
        run(f"data.faces=[{{datasets: [{labelled}], labels: {{va: aus}}}}]")
    with pytest.raises(ConfigError, match=r"data\.faces '.*': labels is empty"):
        run(f"data.faces=[{{datasets: [{labelled}], labels: {{}}}}]")
    with pytest.raises(ConfigError, match=r"data\.faces: a source needs datasets"):
        run("data.faces=[{labels: {aus: aus}}]")
    with pytest.raises(
        ConfigError, match=r"data\.faces 'lab': labels for 'emotion', which model\.heads does"
    ):
        run(faces, "model.heads=[va, blendshapes, aus]")
    with pytest.raises(ConfigError, match=r"model\.weights: unknown head 'gaze'"):
        run(faces, "model.weights={gaze: 1.0}")
    with pytest.raises(ConfigError, match=r"model\.heads: unknown head 'gaze'"):
        run(faces, "model.heads=[emotion, gaze]")
    with pytest.raises(ConfigError, match=r"model\.heads is empty"):
        run(faces, "model.heads=[]")
    with pytest.raises(ConfigError, match=r"model\.heads names a head twice"):
        run(faces, "model.heads=[va, va]")
    with pytest.raises(ConfigError, match=r"model\.weights\.va must be >= 0"):
        run(faces, "model.weights={va: -1.0}")
    with pytest.raises(ConfigError, match=r"data\.faces '.*' eval_n must be >= 0, got -1"):
        run(f"data.faces=[{{datasets: [{labelled}], labels: {{aus: aus}}, eval_n: -1}}]")
    with pytest.raises(ConfigError, match=r"two sources are named 'same'"):
        run(
            f"data.faces=[{{datasets: [{labelled}], labels: {{aus: aus}}, name: same}}, "
            f"{{datasets: [{teacher}], labels: {{aus: arkit_teacher}}, name: same}}]"
        )
    with pytest.raises(
        ConfigError, match=r"data\.faces 'tea': labels\.blendshapes reads 'arkit_weights', which"
    ):
        run(f"data.faces=[{{datasets: [{teacher}], name: tea, labels: "
            "{blendshapes: arkit_weights}}]")  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.heads has 'embedding' but no triplets"):
        run(faces, "model.heads=[embedding, emotion, va, blendshapes, aus]")
    with pytest.raises(ConfigError, match=r"data\.triplets are given but model\.heads has no"):
        run(faces, _rig_yaml(labelled))


def test_partial_loss_weights_keep_the_other_defaults():
    m = HeadsModelConfig(weights={"emotion": 2.0})
    assert m.weights == {"embedding": 1.0, "emotion": 2.0, "va": 0.5, "blendshapes": 10.0,
                         "aus": 1.0}  # fmt: skip


def test_wrong_sized_label_names_the_dataset_and_sample(tmp_path, shared_dir):
    out = tmp_path / "bad"
    schema = [LabelField("emotion_soft", (7,), "float32", "a wrong width")]
    with ShardWriter(out, samples_per_shard=8, schema=schema) as w:
        for i, (_, img) in enumerate(utk_faces(shared_dir, 4, 32)):
            labels = {"emotion_soft": np.full(7, 1 / 7, np.float32)}
            w.write(Sample(f"k{i}", np.ascontiguousarray(img), labels, "x", f"s{i}"))
    recipe = HeadsRecipe(
        HeadsModelConfig(heads=["emotion"], img_size=32, depth=1),
        HeadsDataConfig(
            faces=[FaceSourceConfig([str(out)], {"emotion": "emotion_soft"}, test_share=0.0)]
        ),
    )
    with pytest.raises(
        ConfigError, match=r"bad: sample 'k0': field 'emotion_soft' must have 8 values, got 7"
    ):
        recipe.build_data("train", DataSpec(batch_size=2))
    single = tmp_path / "single"
    schema = [LabelField("emotion_soft", (8,), "float32", "right width")]
    with ShardWriter(single, samples_per_shard=8, schema=schema) as w:
        for i, (_, img) in enumerate(utk_faces(shared_dir, 3, 32)):
            labels = {"emotion_soft": np.full(8, 1 / 8, np.float32)}
            w.write(Sample(f"k{i}", np.ascontiguousarray(img), labels, "x", "s0"))
    one = HeadsRecipe(
        HeadsModelConfig(heads=["emotion"], img_size=32, depth=1),
        HeadsDataConfig(
            faces=[
                FaceSourceConfig(
                    [str(single)], {"emotion": "emotion_soft"}, name="one", test_share=0.5
                )
            ]
        ),
    )
    with pytest.raises(ConfigError, match=r"data\.faces 'one' test_share: subject_split: 1 sub"):
        one.build_data("train", DataSpec(batch_size=2))


def _held_out_count(labelled, share, seed, field_present) -> int:
    """Faces on the test side of the faces split (computed here as the rule says)."""
    subj = [f"0:s{i // 2}" for i in range(N_FACES)]
    test = split_subjects(subj, share, seed)["test"]
    return sum(1 for i, s in enumerate(subj) if s in test and field_present(i))


def test_evaluation_scores_every_held_out_face(labelled, teacher, tmp_path):
    # 'lab' holds out 30% of its subjects; 'val:all' evaluates all 96 faces (two batches of
    # 64 and 32: a drop of the last partial batch would show).
    res = train(
        "heads",
        overrides=[*SMALL, "model.heads=[emotion, va, blendshapes, aus]", "run.steps=1",
                   "run.batch_size=8", _faces_yaml(labelled, teacher, share=0.3),
                   f"data.val=[{{datasets: [{labelled}], name: all, eval_n: 1000, "
                   "labels: {emotion: emotion_soft, aus: aus}}]"],
        out=tmp_path / "ev",
    )  # fmt: skip
    ev = res.eval_metrics
    assert ev["eval/val:all/n"] == N_FACES  # every face has 'aus'
    assert ev["eval/lab/n"] == _held_out_count(labelled, 0.3, 0, lambda i: True)
    assert 0 < ev["eval/lab/n"] < N_FACES
    assert ev["eval/tea/n"] > 0
    for src in ("lab", "val:all"):
        assert 0.0 <= ev[f"eval/{src}/emotion_acc"] <= 1.0
        assert -1.0 <= ev[f"eval/{src}/au_r"] <= 1.0
    assert "eval/tea/emotion_acc" not in ev  # the teacher source names no emotion
    assert "eval/val:all/blendshapes_r" not in ev
    assert -1.0 <= ev["eval/lab/va_ccc"] <= 1.0


def test_hold_out_is_shared_across_face_and_triplet_sources(labelled, teacher):
    from facexpr.train.recipes.heads import _triplet_keys

    faces = [
        FaceSourceConfig(
            datasets=[str(labelled)],
            name="lab",
            test_share=0.3,
            labels={"emotion": "emotion_soft", "aus": "aus"},
        ),
    ]
    from facexpr.train.recipes.expression import TripletSourceConfig

    trips = [
        TripletSourceConfig(
            kind="rig",
            datasets=[str(labelled)],
            field="arkit_weights",
            n=32,
            eval_n=16,
            pos_max=3.0,
            margin=0.05,
        )
    ]
    recipe = HeadsRecipe(
        HeadsModelConfig(
            img_size=48, depth=2, hidden_dim=64, au_dim=8, heads=["embedding", "emotion", "aus"]
        ),
        HeadsDataConfig(faces=faces, triplets=trips),
    )
    train_faces = recipe._side("train", 0)[0]
    test_faces = recipe._side("test", 0)[0]
    d = str(Path(labelled).resolve())

    def persons(f):
        return {(d, f.indexes[di].subject_ids[i]) for di, i in f.refs}

    trip_train = _triplet_keys(recipe._trip._mix("train", 0))
    trip_test = _triplet_keys(recipe._trip._mix("test", 0))
    assert trip_train
    assert trip_test
    assert not persons(test_faces) & trip_train
    assert not persons(train_faces) & trip_test
    assert not persons(train_faces) & persons(test_faces)
    # The triplets split only the faces that carry arkit_weights, the faces source all of
    # them: on their own the two splits differ (so the rule above has work to do) ...
    own = split_subjects([f"0:s{i // 2}" for i in range(N_FACES)], 0.3, 0)["test"]
    own_persons = {(d, s.split(":", 1)[1]) for s in own}
    assert own_persons & trip_train
    # ... and the faces follow the triplets' split where it placed a person (here everyone:
    # each person has a face with arkit_weights), their own elsewhere, so the test side is the
    # triplets' test side rather than the small overlap of two independent splits.
    everyone = {(d, f"s{i}") for i in range(N_FACES // 2)}
    assert trip_train | trip_test == everyone
    assert persons(test_faces) == trip_test
    assert persons(train_faces) == trip_train


def _emb_run(labelled, teacher, out, *extra):
    return train(
        "heads",
        overrides=[*SMALL, _faces_yaml(labelled, teacher, share=0.2), _rig_yaml(labelled),
                   "data.triplets_per_step=4", "run.batch_size=8", "run.log_every=1",
                   "run.checkpoint_every=2", "run.keep_checkpoints=5", "optim.lr=1e-3",
                   "schedule.warmup_steps=1", "run.threads=1", *extra],
        out=out,
    )  # fmt: skip


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_continues_bit_exactly_and_the_export_loads(labelled, teacher, tmp_path):
    straight, half = tmp_path / "s", tmp_path / "h"
    res = _emb_run(labelled, teacher, straight, "run.steps=4")
    _emb_run(labelled, teacher, half, "run.steps=4", "run.stop_at=2")
    train("heads", overrides=["run.stop_at=0"], resume=half)
    a, b = (
        load_file(str(straight / "model.safetensors")),
        load_file(str(half / "model.safetensors")),
    )
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [(r["loss"], r["emotion"], r["embedding"]) for r in _rows(straight) if "loss" in r]
    lb = [(r["loss"], r["emotion"], r["embedding"]) for r in _rows(half) if "loss" in r]
    assert la == lb
    assert len(la) == 4
    # Evaluation: every held-out triplet once, per-type accuracy.
    ev = res.eval_metrics
    assert ev["eval/triplet_n"] == 16
    assert ev["eval/triplet_acc"] == ev["eval/triplet_acc/rig"]
    # The exported files: the whole model, and the embedding model.
    analysis = load_weights(
        create_model("analysis", img_size=48, depth=2, hidden_dim=64, au_dim=8),
        straight / "analysis.safetensors",
    ).eval()
    expr = load_weights(
        create_model("expression", img_size=48, depth=2, hidden_dim=64),
        straight / "expression.safetensors",
    ).eval()
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(expr(x), analysis(x)["embedding"])
        # ... and they are the trained weights, not a fresh model's.
        fresh = create_model("expression", img_size=48, depth=2, hidden_dim=64).eval()
        assert not torch.allclose(fresh(x), expr(x), atol=1e-3)
    for k, v in load_file(str(straight / "analysis.safetensors")).items():
        assert torch.equal(v, a[k]), k
    assert latest_checkpoint(straight).name == "step-00000004"


@pytest.mark.slow
def test_ddp_two_gloo_processes_run(labelled, teacher, tmp_path):
    if not torch.distributed.is_gloo_available():
        pytest.skip("torch built without gloo")
    out = tmp_path / "two"
    ov = [*SMALL, _faces_yaml(labelled, teacher, share=0.2), _rig_yaml(labelled),
          "data.triplets_per_step=4", "run.batch_size=8", "run.steps=3", "run.log_every=1",
          "run.threads=1"]  # fmt: skip
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path]), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "facexpr.cli.main", "-q", "train", "heads", "--out", str(out),
        *[x for o in ov for x in ("--set", o)],
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in _rows(out) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    assert sorted(p.name for p in latest_checkpoint(out).glob("rng-*.safetensors")) == [
        "rng-0.safetensors",
        "rng-1.safetensors",
    ]
    w = load_file(str(out / "model.safetensors"))
    assert "aus.occ_w" in w
    assert (out / "expression.safetensors").is_file()
    # Not compared with one process: see the recipe's docstring (per-process triplets, masked
    # means and CCC per process).


def test_shipped_heads_config_loads_and_builds_its_recipe():
    from facexpr.train.main import resolve_config

    root = Path(__file__).resolve().parents[2] / "configs"
    cfg = resolve_config("heads", root / "heads_tiny.yaml")
    assert cfg.recipe == "heads"
    assert cfg.model.heads == ["embedding", "emotion", "va", "blendshapes", "aus"]
    assert cfg.model.weights["blendshapes"] == 10.0
    assert [sc.name for sc in cfg.data.faces] == ["ferplus_train", "utkface", "synth_pairs"]
    recipe = HeadsRecipe(cfg.model, cfg.data)  # builds no data until asked
    assert recipe._trip is not None


def test_a_face_split_follows_the_triplets_only_where_they_placed_a_person(labelled):
    from facexpr.train.recipes.heads import _Split

    sc = FaceSourceConfig(datasets=[str(labelled)], labels={"aus": "aus"}, test_share=0.3)
    sp = _Split(sc, 0, False)
    own_train, own_test = sp.side_keys("train"), sp.side_keys("test")
    a, b = sorted(own_test)[0], sorted(own_train)[0]
    sp.follow(train={a}, test={b})
    assert sp.side_keys("train") == (own_train - {b}) | {a}
    assert sp.side_keys("test") == (own_test - {a}) | {b}
    sp.follow(train={b}, test={b})  # two triplet sources disagree: training wins
    assert b in sp.side_keys("train")
    assert b not in sp.side_keys("test")


def test_init_from_an_analysis_file_takes_the_encoder_and_the_shared_heads(
    labelled, teacher, tmp_path
):
    from facexpr.core.errors import ModelError
    from facexpr.train.checkpoint import export_weights

    src = _recipe(labelled, teacher, heads=["emotion", "va"]).build_model()
    path = export_weights(src, tmp_path / "analysis.safetensors")
    new = _recipe(labelled, teacher, heads=["emotion", "blendshapes"],
                  init=str(path)).build_model().eval()  # fmt: skip
    src.eval()
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        a, b = src(x), new(x)
        torch.testing.assert_close(a["emotion"], b["emotion"])  # shared head: copied
        for k, v in src.encoder.state_dict().items():
            assert torch.equal(v, new.encoder.state_dict()[k]), k
    # The fresh heads stay fresh (va is not built by the new model; blendshapes not in the file).
    assert "va" not in b
    assert "blendshapes" in b
    # A bare encoder file still loads as before.
    enc = export_weights(src.encoder, tmp_path / "encoder.safetensors")
    again = _recipe(labelled, teacher, heads=["emotion"], init=str(enc)).build_model()
    for k, v in src.encoder.state_dict().items():
        assert torch.equal(v, again.encoder.state_dict()[k]), k
    # Another encoder size: named.
    with pytest.raises(ModelError, match="shape"):
        _recipe(labelled, teacher, heads=["emotion"], hidden_dim=32, init=str(path)).build_model()


def test_init_from_the_shipped_analysis_weights():
    from facexpr.nn import weights_card
    from facexpr.train.main import resolve_config

    card = weights_card("analysis")
    if not card.sha256:
        pytest.skip("no analysis weights are shipped")
    root = Path(__file__).resolve().parents[2] / "configs"
    cfg = resolve_config("heads", root / "heads_expression.yaml")
    assert cfg.model.init == "pretrained:analysis"
    assert cfg.data.grey
    model = HeadsRecipe(cfg.model, cfg.data).build_model().eval()
    shipped = create_model("analysis", pretrained=True).eval()
    x = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        a, b = shipped(x), model(x)
    for head in card.config["heads"]:
        torch.testing.assert_close(a[head], b[head], atol=1e-5, rtol=0)
    bad = HeadsModelConfig(heads=["embedding", "emotion"], init="pretrained:expression")
    with pytest.raises(ConfigError, match="only shipped analysis"):
        HeadsRecipe(bad, cfg.data).build_model()


def test_grey_feeds_every_face_and_triplet_as_luminance_and_the_card_says_so(
    labelled, teacher, tmp_path
):
    run = tmp_path / "g"
    _emb_run(labelled, teacher, run, "run.steps=1", "data.grey=true")
    card = json.loads((run / "analysis.json").read_text())
    assert card["grey"] is True
    recipe = _recipe(labelled, teacher)
    recipe.data_cfg.grey = True
    data = recipe.build_data("train", DataSpec(batch_size=8, seed=0))
    batch = next(iter(data.batches(0)))
    im = batch["images"]
    assert torch.equal(im[:, 0], im[:, 1])
    assert torch.equal(im[:, 1], im[:, 2])
    recipe.data_cfg.grey = False
    colour = next(iter(recipe.build_data("train", DataSpec(batch_size=8, seed=0)).batches(0)))
    assert not torch.equal(colour["images"][:, 0], colour["images"][:, 1])

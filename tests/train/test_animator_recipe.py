"""Recipe ``animator``: a few steps on a tiny synthetic dataset with a tiny random encoder, the
feature cache, adding a glTF avatar without changing the others, the renderer losses, config
errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facexpr.avatars.gltf import save_gltf
from facexpr.avatars.rig import Rig
from facexpr.cli.main import main
from facexpr.core.arkit import ICT_CHANNELS
from facexpr.core.errors import ConfigError
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.io.shards import LabelField, Sample, ShardWriter
from facexpr.nn import create_model, weights_to_bytes
from facexpr.nn.animator import load_animator
from facexpr.nn.registry import WeightsCard, sha256_file
from facexpr.nn.vit import FACE_MEAN, FACE_STD
from facexpr.train.main import train
from facexpr.train.recipes.animator import (
    AnimatorDataConfig,
    AnimatorModelConfig,
    AnimatorRecipe,
    avatar_targets,
    feature_cache,
    mirror_permutation,
)

JAW = ICT_CHANNELS.index("jawOpen")


@pytest.fixture(scope="module")
def actors(tmp_path_factory) -> Path:
    """40 actors of 10 identities: a dark mouth bar whose height is the jawOpen weight."""
    out = tmp_path_factory.mktemp("actors")
    schema = [LabelField("ict_weights", (53,), "float32", "ICT weights")]
    rng = np.random.default_rng(0)
    with ShardWriter(out, samples_per_shard=20, schema=schema) as w:
        for i in range(40):
            ict = rng.uniform(0, 0.3, 53).astype(np.float32)
            ict[JAW] = rng.uniform(0, 1)
            img = np.full((64, 64, 3), 180 + (i % 10) * 5, np.uint8)
            img[36 : 36 + 2 + int(20 * ict[JAW]), 14:40] = 30  # off-centre: the mirror differs
            w.write(Sample(key=f"{i:05d}", image=img, labels={"ict_weights": ict},
                           source="synth:test", subject_id=f"s{i % 10}"))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A random one-block 32 px expression encoder with its card."""
    torch.manual_seed(0)
    cfg = {"encoder": "fxvit_tiny_d6_p16_112", "dim": 16, "hidden_dim": 32, "img_size": 32,
           "depth": 1}  # fmt: skip
    model = create_model("expression", **cfg)
    path = tmp_path_factory.mktemp("encoder") / "expression.safetensors"
    write_bytes_atomic(path, weights_to_bytes(model))
    card = WeightsCard(tag="test", input_size=(32, 32), mean=FACE_MEAN, std=FACE_STD,
                       config=cfg, sha256=sha256_file(path))  # fmt: skip
    write_text_atomic(path.with_suffix(".json"), card.to_json())
    return path


def custom_glb(folder: Path) -> Path:
    names = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R", "wiggle")
    rng = np.random.default_rng(1)
    faces = np.array([[i, i + 1, i + 2] for i in range(10)])
    rig = Rig(neutral=rng.normal(size=(12, 3)), faces=faces, channel_names=names,
              deltas=rng.normal(size=(6, 12, 3)) * 0.1, name="anna")  # fmt: skip
    return save_gltf(rig, folder / "anna.glb")


def overrides(actors: Path, encoder: Path, cache: Path, *extra: str) -> list[str]:
    return [
        f"data.datasets=[{actors}]", f"data.val=[{actors}]", f"data.cache_dir={cache}",
        "data.test_share=30", f"model.encoder_weights={encoder}", "model.hidden=32",
        "model.depth=1", "run.steps=12", "run.batch_size=8", "run.log_every=4",
        "run.eval_every=6", "run.checkpoint_every=6", "run.device=cpu", "run.threads=1",
        "schedule.warmup_steps=1", *extra,
    ]  # fmt: skip


def test_train_then_add_an_avatar_leaves_the_others_unchanged(actors, encoder, tmp_path) -> None:
    cache = tmp_path / "cache"
    run1 = tmp_path / "run1"
    res = train("animator", overrides=overrides(actors, encoder, cache,
                "model.avatars=[ict, ict_toon]"), out=run1)  # fmt: skip
    assert res.steps == 12
    assert set(res.eval_metrics) >= {f"eval/{actors.name}/rig_mae", f"eval/{actors.name}/rig_r"}
    assert res.eval_metrics[f"eval/{actors.name}/n"] == 40.0
    assert 0.0 < res.eval_metrics[f"eval/{actors.name}/rig_mae"] < 0.5
    net1, card1 = load_animator(run1 / "animator.safetensors")
    assert net1.avatars == ("ict", "ict_toon")
    assert card1.config["encoder_sha256"] == sha256_file(encoder)
    assert len(list(cache.glob("*.npz"))) == 1  # one dataset, one encoder: one cache file

    glb = custom_glb(tmp_path)
    run2 = tmp_path / "run2"
    sets = overrides(actors, encoder, cache, f"model.init={run1}", "model.avatars=[ict, ict_toon]")
    argv = [
        "-q",
        "train",
        "animator",
        "--no-progress",
        "--add-avatar",
        str(glb),
        "--out",
        str(run2),
    ]
    assert main([*argv, *(a for kv in sets for a in ("--set", kv))]) == 0
    net2, _ = load_animator(run2 / "animator.safetensors")
    assert net2.avatars == ("ict", "ict_toon", "anna")
    assert net2.n_shapes("anna") == 6
    x = torch.randn(16, net1.in_dim)
    with torch.no_grad():
        for name in ("ict", "ict_toon"):
            assert torch.equal(net2(x, name), net1(x, name)), name
        assert not torch.equal(net2.heads[2].bias, torch.full((6,), -2.0))  # it trained


def test_the_cache_is_reused_and_keyed_by_the_encoder(actors, encoder, tmp_path) -> None:
    a = feature_cache(actors, str(encoder), tmp_path)
    (f,) = tmp_path.glob("*.npz")
    stamp = f.stat().st_mtime_ns
    b = feature_cache(actors, str(encoder), tmp_path)
    assert f.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(a.features, b.features)
    assert a.features.shape == (40, 16 + 192)
    assert not np.allclose(a.features, a.mirrored)  # the mirror image is encoded too
    other = tmp_path / "other.safetensors"
    torch.manual_seed(5)
    write_bytes_atomic(other, weights_to_bytes(create_model(
        "expression", encoder="fxvit_tiny_d6_p16_112", dim=16, hidden_dim=32, img_size=32,
        depth=1)))  # fmt: skip
    write_text_atomic(other.with_suffix(".json"), encoder.with_suffix(".json").read_text())
    with pytest.raises(Exception, match="sha256"):  # the card's sha256 is the first file's
        feature_cache(actors, str(other), tmp_path)


class FakeRenderer(torch.nn.Module):
    """Tests only: a differentiable stand-in with the neural renderer's interface."""

    avatars = ("ict",)
    size = 32

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(53, 3 * 32 * 32)

    def n_shapes(self, avatar: str) -> int:
        return 53

    def forward(self, avatar: str | int, weights: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(weights)).view(-1, 3, 32, 32)


def test_renderer_losses_reach_the_rig(actors, encoder, tmp_path) -> None:
    rec = AnimatorRecipe(
        AnimatorModelConfig(avatars=["ict", "ict_000"], hidden=16, depth=1,
                            encoder_weights=str(encoder)),
        AnimatorDataConfig(datasets=[str(actors)], cache_dir=str(tmp_path)),
    )  # fmt: skip
    model = rec.build_model()
    rec.set_renderer(FakeRenderer().requires_grad_(False))
    c = feature_cache(actors, str(encoder), tmp_path)
    batch = {k: torch.from_numpy(v[:8]) for k, v in
             (("features", c.features), ("mirrored", c.mirrored), ("ict", c.ict))}  # fmt: skip
    losses = rec.step(model, batch)
    assert set(losses) == {"loss", "rig", "symmetry", "image", "expression"}
    assert float(losses["image"]) > 0.0
    assert float(losses["expression"]) > 0.0
    losses["loss"].backward()
    assert float(model.heads[0].weight.grad.abs().sum()) > 0.0
    # ict_000 is not a renderer avatar: only its rig and symmetry terms, yet it trains too.
    assert float(model.heads[1].weight.grad.abs().sum()) > 0.0


def test_mirror_and_targets() -> None:
    perm = mirror_permutation(ICT_CHANNELS)
    assert ICT_CHANNELS[perm[ICT_CHANNELS.index("eyeBlink_L")]] == "eyeBlink_R"
    assert ICT_CHANNELS[perm[ICT_CHANNELS.index("jawLeft")]] == "jawRight"
    assert ICT_CHANNELS[perm[ICT_CHANNELS.index("jawOpen")]] == "jawOpen"
    assert sorted(perm.tolist()) == list(range(53))
    names = ("mouthSmileLeft", "mouthSmileRight", "jawOpen", "wiggle")
    assert mirror_permutation(names).tolist() == [1, 0, 2, 3]
    m = avatar_targets(names)
    assert m.shape == (4, 53)
    assert m[2, JAW] == 1.0
    assert m[3].sum() == 0.0  # no ARKit name: target 0
    np.testing.assert_array_equal(avatar_targets(ICT_CHANNELS), np.eye(53, dtype=np.float32))
    with pytest.raises(ConfigError, match="none of the rig's 2 channels has an ARKit name"):
        avatar_targets(("foo", "bar"))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="needs sequences"):
        AnimatorModelConfig(weights={"temporal": 1.0})
    with pytest.raises(ConfigError, match=r"needs model\.init"):
        AnimatorModelConfig(add_avatars=["a.glb"])
    with pytest.raises(ConfigError, match="unknown loss 'rgi'"):
        AnimatorModelConfig(weights={"rgi": 1.0})
    assert main(["-q", "train", "mae", "--add-avatar", "a.glb"]) == 2  # animator only
    with pytest.raises(ConfigError, match=r"data\.datasets is empty"):
        AnimatorDataConfig()
    with pytest.raises(ConfigError, match=r"data\.avatars_per_step must be >= 0"):
        AnimatorDataConfig(datasets=["x"], avatars_per_step=-1)

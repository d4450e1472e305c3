"""`facexpr train renderer`: a tiny run on real renders, adding a glTF avatar, and errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from facexpr.cli.main import main
from facexpr.core.errors import ConfigError, MissingDependencyError
from facexpr.nn.neural_renderer import load_neural_renderer
from facexpr.train.main import train
from facexpr.train.recipes.renderer import (
    RendererDataConfig,
    RendererModelConfig,
    RendererRecipe,
    box_masks,
    renderer_loss,
)

_spec = importlib.util.spec_from_file_location(
    "gltf_cases", Path(__file__).resolve().parents[1] / "avatars" / "gltf_cases.py"
)
gltf_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gltf_cases)

TINY = [
    "model.size=16", "model.latent_dim=16", "model.style_dim=8", "model.base_channels=4",
    "model.max_channels=8", "data.n_train=8", "data.n_val=4", "data.workers=1",
    "run.steps=3", "run.batch_size=4", "run.log_every=1", "run.threads=1",
]  # fmt: skip


def _glb(folder: Path, name: str, n_targets: int) -> Path:
    doc, blob = gltf_cases.rig_doc(n_targets)
    path = folder / f"{name}.glb"
    path.write_bytes(gltf_cases.glb_bytes(doc, blob))
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A 3-step renderer of ict_000 (16 px), its pairs cached in the module's tmp folder."""
    root = tmp_path_factory.mktemp("renderer")
    try:
        train(
            "renderer",
            overrides=[*TINY, "data.avatars=[ict_000]", f"data.cache={root / 'cache'}"],
            out=root / "run",
        )
    except MissingDependencyError as e:
        pytest.skip(f"no headless OpenGL (moderngl + EGL): {e}")
    return root / "run"


def test_a_run_exports_a_loadable_renderer_with_per_avatar_metrics(base_run):
    model = load_neural_renderer(base_run / "renderer.safetensors")
    assert model.avatars == ("ict_000",)
    assert model.n_shapes("ict_000") == 53
    with torch.no_grad():
        out = model("ict_000", torch.zeros(2, 53))
    assert out.shape == (2, 3, 16, 16)
    card = json.loads((base_run / "renderer.json").read_text())
    assert card["metrics"]["psnr/ict_000"] > 0
    assert 0 < card["metrics"]["l1/ict_000"] < 1
    rows = [json.loads(x) for x in (base_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert all(r["mouth"] > 0 and r["eyes"] > 0 for r in rows if "loss" in r)
    assert list((base_run / "visuals").glob("step-*.png"))


def test_add_avatar_from_gltf_leaves_the_others_bit_identical(base_run, tmp_path, capsys):
    glb = _glb(tmp_path, "person", 3)
    out = tmp_path / "added"
    cache = base_run.parent / "cache"
    args = ["-q", "train", "renderer", "--base", str(base_run), "--add-avatar", str(glb),
            "--out", str(out), "--no-progress"]  # fmt: skip
    for item in [*TINY, f"data.cache={cache}", "optim.lr=0.05"]:
        args += ["--set", item]
    assert main(args) == 0
    capsys.readouterr()
    base = load_neural_renderer(base_run)
    added = load_neural_renderer(out)
    assert added.avatars == ("ict_000", "person")
    assert added.n_shapes("person") == 3
    w = torch.rand(4, 53, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(added("ict_000", w), base("ict_000", w))
        # The new avatar's input layer and code did train (they start from the codes' mean).
        start = torch.stack(list(base.codes)).mean(0)
    assert not torch.equal(added.codes[1].detach(), start)
    same = {k for k, v in base.state_dict().items() if torch.equal(v, added.state_dict()[k])}
    assert same == set(base.state_dict())


def test_add_avatar_without_morph_targets_exits_2_naming_the_file(base_run, tmp_path, capsys):
    flat = _glb(tmp_path, "flat", 0)
    args = ["-q", "train", "renderer", "--base", str(base_run), "--add-avatar", str(flat),
            "--out", str(tmp_path / "r"), "--no-progress"]  # fmt: skip
    for item in [*TINY, f"data.cache={tmp_path / 'cache'}"]:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{flat}: has no morph targets" in err
    assert "Traceback" not in err


def test_renderer_options_on_other_recipes_exit_2(tmp_path, capsys):
    rc = main(["-q", "train", "mae", "--add-avatar", "x.glb", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "of `facexpr train animator`) only" in capsys.readouterr().err


def test_recipe_config_errors(base_run):
    with pytest.raises(ConfigError, match=r"model\.base is set but data\.add_avatars is empty"):
        RendererRecipe(RendererModelConfig(base=str(base_run)), RendererDataConfig())
    with pytest.raises(ConfigError, match=r"data\.add_avatars needs model\.base"):
        RendererRecipe(RendererModelConfig(), RendererDataConfig(add_avatars=["a.glb"]))
    with pytest.raises(ConfigError, match=r"'ict_000' is already an avatar of"):
        RendererRecipe(
            RendererModelConfig(base=str(base_run)), RendererDataConfig(add_avatars=["ict_000"])
        )
    with pytest.raises(ConfigError, match=r"data\.avatars names an avatar twice"):
        RendererDataConfig(avatars=["ict_000", "ict_000"])
    with pytest.raises(ConfigError, match=r"model\.size must be a power of two >= 16, got 100"):
        RendererModelConfig(size=100)


def test_loss_weights_the_boxes():
    target = torch.zeros(1, 3, 8, 8)
    out = torch.zeros(1, 3, 8, 8)
    out[..., 6:8, 2:6] = 1.0  # wrong only inside the mouth box
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 3.0], [2.0, 5.0, 6.0, 8.0]]])
    masks = box_masks(boxes, 8)
    assert masks.shape == (1, 2, 8, 8)
    assert float(masks[0, 1].sum()) == 12  # 4 x 3 px
    losses = renderer_loss(out, target, boxes, eye_weight=1.0, mouth_weight=2.0)
    assert float(losses["l1"]) == pytest.approx(8 / 64)
    assert float(losses["eyes"]) == 0
    assert float(losses["mouth"]) == pytest.approx(8 / 12)
    assert float(losses["loss"]) == pytest.approx(8 / 64 + 2 * 8 / 12)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RendererModelConfig(latent_dim=0), r"model\.latent_dim must be >= 1, got 0"),
        (lambda: RendererDataConfig(n_train=0), r"data\.n_train must be >= 1, got 0"),
        (lambda: RendererDataConfig(avatars=[]), r"data\.avatars is empty"),
        (lambda: RendererDataConfig(eye_weight=-1.0), r"data\.eye_weight must be >= 0"),
    ],
)
def test_config_values_are_checked(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_renderer_options_not_with_resume(tmp_path, capsys):
    rc = main(["-q", "train", "renderer", "--resume", str(tmp_path), "--base", str(tmp_path)])
    assert rc == 2
    assert "--base and --add-avatar cannot be given with --resume" in capsys.readouterr().err

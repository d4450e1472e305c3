"""YAML configs into dataclasses: unknown keys, wrong types, overrides, the saved config."""

from __future__ import annotations

import pytest
from tiny_recipe import TinyDataConfig, TinyModelConfig

from facexpr.core.errors import ConfigError
from facexpr.train.config import OptimConfig, RunConfig, dump_config, load_config
from facexpr.train.main import resolve_config
from facexpr.train.recipe import get_recipe, list_recipes


def _load(path=None, overrides=()):
    return load_config("tiny", TinyModelConfig, TinyDataConfig, path, overrides)


def _write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_file_then_overrides(tmp_path):
    p = _write(tmp_path, "optim:\n  lr: 3e-4\n  betas: [0.8, 0.9]\nmodel:\n  hidden: 4\n")
    cfg = _load(p, ["optim.lr=0.01", "run.steps=7", "model.noise=0.5"])
    assert cfg.optim.lr == 0.01
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.model.hidden == 4
    assert cfg.model.noise == 0.5
    assert cfg.run.steps == 7
    assert cfg.run.batch_size == RunConfig().batch_size
    assert _load(p).optim.lr == 3e-4  # PyYAML reads 3e-4 as text; the float field takes it


def test_unknown_key_names_key_file_and_closest_match(tmp_path):
    p = _write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"cfg\.yaml: unknown key 'optim\.lrr' \(did you mean 'optim\.lr'\?\)"
    ):
        _load(p)


def test_unknown_section_and_unknown_set_key(tmp_path):
    p = _write(tmp_path, "optimiser:\n  lr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"cfg\.yaml: unknown key 'optimiser' \(did you mean 'optim'\?\)"
    ):
        _load(p)
    with pytest.raises(
        ConfigError, match=r"--set: unknown key 'run\.step' \(did you mean 'run\.steps'\?\)"
    ):
        _load(None, ["run.step=3"])
    with pytest.raises(ConfigError, match=r"--set: key 'run\.steps' has no sub-keys"):
        _load(None, ["run.steps.x=3"])


def test_wrong_types_name_key_file_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"cfg\.yaml: key 'run\.steps' must be int, got 'many'"):
        _load(_write(tmp_path, "run:\n  steps: many\n"))
    with pytest.raises(ConfigError, match=r"key 'run\.steps' must be int, got 2\.5"):
        _load(None, ["run.steps=2.5"])
    with pytest.raises(
        ConfigError, match=r"key 'optim\.name' must be 'adamw' \| 'sgd', got 'adam'"
    ):
        _load(None, ["optim.name=adam"])
    with pytest.raises(ConfigError, match=r"key 'optim\.betas' must be tuple\[float, float\]"):
        _load(None, ["optim.betas=[0.9]"])
    with pytest.raises(ConfigError, match=r"cfg\.yaml: section 'run' must be a mapping"):
        _load(_write(tmp_path, "run: 5\n"))
    with pytest.raises(ConfigError, match=r"cfg\.yaml: a config file must be a mapping"):
        _load(_write(tmp_path, "- 1\n- 2\n"))


def test_values_checked_by_the_dataclass_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"cfg\.yaml: optim\.lr must be > 0, got -1\.0"):
        _load(_write(tmp_path, "optim:\n  lr: -1\n"))
    with pytest.raises(ConfigError, match=r"model\.hidden must be >= 1"):
        _load(None, ["model.hidden=0"])
    with pytest.raises(ConfigError, match=r"optim\.accumulate must be >= 1"):
        OptimConfig(accumulate=0)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        _load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: not valid YAML"):
        _load(_write(tmp_path, "run: [\n"))
    with pytest.raises(
        ConfigError, match=r"cfg\.yaml: this config is for recipe 'mae', not 'tiny'"
    ):
        _load(_write(tmp_path, "recipe: mae\n"))
    with pytest.raises(ConfigError, match=r"--set 'run\.steps': expected KEY=VALUE"):
        _load(None, ["run.steps"])


def test_string_fields_take_the_text_verbatim():
    cfg = resolve_config("mae", None, ["data.shards=[a, b]", "model.encoder=fxvit_small_p16_112"])
    assert cfg.data.shards == ["a", "b"]
    assert cfg.model.encoder == "fxvit_small_p16_112"


def test_dump_then_load_gives_the_same_config(tmp_path):
    cfg = _load(None, ["optim.lr=0.02", "model.hidden=5", "run.precision=fp32"])
    p = tmp_path / "config.yaml"
    p.write_text(dump_config(cfg))
    assert _load(p) == cfg


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for name, recipe in [("mae_tiny.yaml", "mae"), ("expression_tiny.yaml", "expression")]:
        cfg = resolve_config(recipe, root / name)
        assert cfg.recipe == recipe
        assert cfg.run.steps >= 100


def test_recipes_by_name_and_path():
    assert {"mae", "expression"} <= set(list_recipes())
    assert get_recipe("tiny_recipe:TinyRecipe").name == "tiny"
    with pytest.raises(ConfigError, match=r"unknown recipe 'mea' \(did you mean 'mae'\?\)"):
        get_recipe("mea")
    with pytest.raises(ConfigError, match=r"recipe 'nowhere:X': cannot import nowhere:X"):
        get_recipe("nowhere:X")
    with pytest.raises(ConfigError, match=r"is not a facexpr\.train\.recipe\.Recipe"):
        get_recipe("tiny_recipe:TinyModelConfig")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("optim:\n  lr: .nan\n", "optim.lr"),
        ("optim:\n  lr: .inf\n", "optim.lr"),
        ("optim:\n  weight_decay: .nan\n", "optim.weight_decay"),
        ("optim:\n  grad_clip: -.inf\n", "optim.grad_clip"),
        ("optim:\n  betas: [.nan, 0.9]\n", r"optim.betas\[0\]"),
        ("schedule:\n  min_lr_ratio: .nan\n", "schedule.min_lr_ratio"),
        ("model:\n  noise: .nan\n", "model.noise"),
        ("optim:\n  lr: nan\n", "optim.lr"),  # a string float() reads
    ],
)
def test_nan_and_infinite_floats_are_refused_naming_file_and_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=rf"cfg\.yaml: key '{key}' must be a finite number"):
        _load(_write(tmp_path, text))


def test_set_nan_is_refused_and_dataclasses_check_finiteness_themselves():
    with pytest.raises(ConfigError, match=r"--set: key 'optim\.lr' must be a finite number"):
        _load(None, ["optim.lr=.nan"])
    nan = float("nan")
    with pytest.raises(ConfigError, match=r"optim\.lr must be a finite number > 0, got nan"):
        OptimConfig(lr=nan)
    with pytest.raises(ConfigError, match=r"optim\.grad_clip must be a finite number >= 0"):
        OptimConfig(grad_clip=nan)
    with pytest.raises(ConfigError, match=r"optim\.weight_decay must be >= 0, got -1"):
        OptimConfig(weight_decay=-1.0)


def test_recipe_floats_are_checked_for_finiteness():
    from facexpr.train.recipes.expression import ExpressionDataConfig, TripletSourceConfig
    from facexpr.train.recipes.mae import MAEDataConfig, MAEModelConfig

    nan = float("nan")
    with pytest.raises(ConfigError, match=r"model\.mask_ratio must be a finite number > 0"):
        MAEModelConfig(mask_ratio=nan)
    with pytest.raises(ConfigError, match=r"model\.drop_path_rate must be >= 0 and < 1"):
        MAEModelConfig(drop_path_rate=1.5)
    with pytest.raises(ConfigError, match=r"data\.weights\[1\] must be a finite number > 0"):
        MAEDataConfig(shards=["a", "b"], weights=[1.0, float("inf")])
    with pytest.raises(ConfigError, match=r"data\.margins\.\w+ must be a finite number >= 0"):
        ExpressionDataConfig(margins={"rig": nan})
    with pytest.raises(ConfigError, match=r"'rig' pos_max must be a finite number > 0"):
        TripletSourceConfig(kind="rig", datasets=["d"], pos_max=nan)


def test_deeply_nested_yaml_is_a_config_error_naming_the_file(tmp_path):
    p = _write(tmp_path, "optim: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: nested more than 50 levels deep"):
        _load(p)
    p = _write(tmp_path, "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 300)))
    with pytest.raises(ConfigError, match=r"cfg\.yaml: nested more than 50 levels deep"):
        _load(p)


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    p = _write(tmp_path, "\n".join(lines) + "\n")  # 10^9 strings once expanded
    with pytest.raises(ConfigError, match=r"cfg\.yaml: expands to more than 100000 values"):
        _load(p)
    with pytest.raises(ConfigError, match=r"--set optim\.betas: expands to more than"):
        _load(None, ["optim.betas=" + "[" + ", ".join(["&b [1, 2, 3]"] + ["*b"] * 40_000) + "]"])


def test_config_file_that_is_a_fifo_or_too_big_is_refused(tmp_path):
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"pipe\.yaml: config file is not a regular file"):
        _load(fifo)
    big = _write(tmp_path, "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: config file is larger than 1048576 bytes"):
        _load(big)
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        _load(tmp_path / "nope.yaml")

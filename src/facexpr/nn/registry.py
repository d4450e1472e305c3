"""Models by name, as in timm: ``create_model("fxvit_tiny_p16_112")``, ``list_models("fxvit_*")``.

A builder registered with :func:`register_model` makes an architecture; a tag after the dot picks
a weights file described by a :class:`WeightsCard` (the file, its sha256, input size,
normalisation, labels, training data and their licences, metrics), so preprocessing follows from
the name. ``nn/__init__.py``'s explicit imports fill the registry.

Weights are safetensors files. :func:`load_weights` checks a file against its card and the model
before any tensor is copied, and says in one sentence which file is wrong and how (missing,
truncated, corrupt, sha256 mismatch, tensors missing, unexpected or of the wrong shape).
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facexpr.core.errors import ConfigError, ModelError

__all__ = [
    "WEIGHTS_DIR",
    "WeightsCard",
    "card_from_dict",
    "create_model",
    "list_models",
    "load_weights",
    "read_card",
    "register_model",
    "sha256_file",
    "weights_card",
    "weights_to_bytes",
]

#: Where weights shipped inside the package lie (``WeightsCard.file`` is relative to it).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class WeightsCard:
    """What a pretrained weights file is.

    Attributes:
        tag: the name after the dot ("mae_triplet").
        input_size: (H, W) px the model expects.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel std divided by.
        labels: output class names, if a classifier.
        license: licence of the weights.
        source: where they come from (the command or run that made them).
        notes: anything a user must know (e.g. "research use only").
        file: the safetensors file, relative to :data:`WEIGHTS_DIR` (shipped) or absolute.
        sha256: hex digest the file must have ("" until weights exist).
        architecture: the registered name and builder arguments that make the model.
        config: builder keyword arguments that rebuild the architecture.
        data: training data sets, each with its licence.
        metrics: measured figures (name -> value), with the benchmark that made them.
        train_command: the command that trains these weights (said when the file is missing).
        grey: the model was trained on greyscale faces only (e.g. FER+): colour input is
            converted to luminance first, as its training data were.
        onnx_file: an ONNX export of the same weights shipped beside them (relative to
            :data:`WEIGHTS_DIR`), which a runtime may use without importing torch; "" if none.
        onnx_sha256: the hex digest that file must have.
        loader: returns the model with weights loaded, for weights that are not plain
            safetensors of a registered builder (ported teachers); ``None`` for the usual path.
    """

    tag: str
    input_size: tuple[int, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    notes: str = ""
    file: str = ""
    sha256: str = ""
    architecture: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    data: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    train_command: str = ""
    grey: bool = False
    onnx_file: str = ""
    onnx_sha256: str = ""
    loader: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ConfigError(f"WeightsCard '{self.tag}': input_size must be (H, W) >= 1")
        if len(self.mean) != len(self.std):
            raise ConfigError(f"WeightsCard '{self.tag}': mean and std differ in length")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"WeightsCard '{self.tag}': std must be > 0")
        if self.sha256 and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(f"WeightsCard '{self.tag}': sha256 must be 64 lower-case hex digits")
        if bool(self.onnx_file) != bool(self.onnx_sha256):
            raise ConfigError(f"WeightsCard '{self.tag}': onnx_file and onnx_sha256 go together")

    def path(self) -> Path:
        """Returns the weights file: ``file`` if absolute, else under :data:`WEIGHTS_DIR`."""
        p = Path(self.file)
        return p if p.is_absolute() else WEIGHTS_DIR / p

    def to_dict(self) -> dict[str, Any]:
        """Returns the card as JSON-ready data (without ``loader``), for a card file."""
        d = asdict(self)
        d.pop("loader")
        d["config"] = dict(self.config)
        d["metrics"] = dict(self.metrics)
        return d

    def to_json(self) -> str:
        """Returns the card as indented JSON text (what a training run writes beside weights)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"


def card_from_dict(data: Mapping[str, Any], where: str = "card") -> WeightsCard:
    """Returns the :class:`WeightsCard` of :meth:`WeightsCard.to_dict` data.

    Raises:
        ModelError: a key is unknown or missing, or a value is invalid (naming ``where``).
    """
    known = {f for f in WeightsCard.__dataclass_fields__ if f != "loader"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelError(f"{where}: unknown card key '{unknown[0]}'")
    try:
        kw = dict(data)
        for k in ("input_size", "mean", "std", "labels", "data"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return WeightsCard(**kw)
    except (TypeError, ConfigError) as e:
        raise ModelError(f"{where}: invalid card ({e})") from e


def read_card(path: str | Path) -> WeightsCard:
    """Returns the :class:`WeightsCard` in a JSON card file (as a training run writes it).

    Raises:
        ModelError: missing, unreadable or invalid card, naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"{path}: weights card not found") from e
    except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError, the digit limit
        raise ModelError(f"{path}: unreadable weights card ({e})") from e
    except RecursionError:
        raise ModelError(f"{path}: unreadable weights card (JSON nested too deeply)") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: a weights card must be a JSON object")
    return card_from_dict(data, str(path))


def sha256_file(path: str | Path) -> str:
    """Returns the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_to_bytes(
    model: nn.Module | Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Returns a model's (or a state dict's) tensors as safetensors bytes.

    ``nn`` writes no files (it imports ``core`` only): callers write the bytes with
    ``facexpr.io._files.write_bytes_atomic``. Tensors are made contiguous CPU copies; shared
    storage is cloned apart, as safetensors requires.
    """
    from safetensors.torch import save

    sd = model.state_dict() if isinstance(model, nn.Module) else model
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}
    return save(tensors, metadata=dict(metadata) if metadata else None)


def _describe(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_weights(
    model: nn.Module, path: str | Path, card: WeightsCard | None = None, *, strict: bool = True
) -> nn.Module:
    """Returns ``model`` with the tensors of a safetensors file loaded (in place).

    Args:
        model: the architecture the weights belong to.
        path: the ``.safetensors`` file.
        card: if given and it has a sha256, the file must have that digest.
        strict: every model tensor must be in the file and nothing else.

    Raises:
        ModelError: the file is missing, unreadable, truncated or corrupt, differs from the
            card's sha256, or its tensors do not fit the model (names the file and the tensors).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        raise ModelError(f"{path}: weights file not found") from None
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or stream forever in sha256/safetensors.
        raise ModelError(f"{path}: weights file is not a regular file (a folder, FIFO or device)")
    if card is not None and card.sha256:
        got = sha256_file(path)
        if got != card.sha256:
            raise ModelError(
                f"{path}: sha256 {got[:12]}… differs from card '{card.tag}' "
                f"({card.sha256[:12]}…): the file is corrupt, truncated or other weights"
            )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(
            f"{path}: not a readable safetensors file, corrupt or truncated ({e})"
        ) from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if strict and missing:
        raise ModelError(
            f"{path}: {len(missing)} tensors the {type(model).__name__} needs are missing: "
            f"{_describe(missing)}"
        )
    if strict and unexpected:
        raise ModelError(
            f"{path}: {len(unexpected)} tensors are not in the {type(model).__name__}: "
            f"{_describe(unexpected)}"
        )
    for name, t in tensors.items():
        if name in expected and t.shape != expected[name].shape:
            raise ModelError(
                f"{path}: '{name}' has shape {tuple(t.shape)}, the {type(model).__name__} "
                f"needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=strict)
    return model


@dataclass
class _Entry:
    builder: Callable[..., Any]
    cards: dict[str, WeightsCard] = field(default_factory=dict)
    default_tag: str | None = None


_MODELS: dict[str, _Entry] = {}


def register_model(
    name: str, *, cards: tuple[WeightsCard, ...] = (), default_tag: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Returns a decorator registering an architecture builder under ``name``.

    Raises:
        ConfigError: the name is taken, contains a dot, or the default tag has no card.
    """
    if "." in name:
        raise ConfigError(f"model name '{name}' must not contain '.' (it separates the tag)")
    tags = {c.tag: c for c in cards}
    if default_tag is not None and default_tag not in tags:
        raise ConfigError(f"model '{name}': default tag '{default_tag}' has no card")

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ConfigError(f"model name '{name}' is already registered")
        _MODELS[name] = _Entry(builder, tags, default_tag or (cards[0].tag if cards else None))
        return builder

    return deco


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Returns the sorted registered names matching a glob ("arch" or, with weights, "arch.tag")."""
    names = []
    for arch, entry in _MODELS.items():
        if pretrained:
            names += [f"{arch}.{t}" for t in entry.cards]
        else:
            names.append(arch)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _lookup(name: str) -> tuple[_Entry, str, str | None]:
    arch, _, tag = name.partition(".")
    if arch not in _MODELS:
        close = difflib.get_close_matches(arch, list(_MODELS), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint}; see facexpr.nn.list_models()")
    entry = _MODELS[arch]
    tag = tag or entry.default_tag
    if tag is not None and tag not in entry.cards and entry.cards:
        raise ConfigError(f"model '{arch}' has no weights '{tag}' (has: {', '.join(entry.cards)})")
    return entry, arch, tag


def weights_card(name: str) -> WeightsCard:
    """Returns the card of "arch.tag" (or the architecture's default weights).

    Raises:
        ConfigError: unknown name or tag, or an architecture without weights.
    """
    entry, arch, tag = _lookup(name)
    if tag is None or tag not in entry.cards:
        raise ConfigError(f"model '{arch}' has no pretrained weights")
    return entry.cards[tag]


def create_model(name: str, pretrained: bool = False, **cfg: Any) -> Any:
    """Returns the model ``name`` ("arch" or "arch.tag"), with its weights if ``pretrained``.

    Args:
        name: a registered architecture, optionally with a weights tag.
        pretrained: load the tag's (or the default) weights, offline, checked against the card.
        **cfg: builder arguments (e.g. ``img_size=112``); none with ``pretrained``, whose
            architecture the card fixes.

    Raises:
        ConfigError: unknown name or tag (with close matches), or builder arguments with
            ``pretrained``.
        ModelError: the weights are missing (saying which command trains them) or do not load.
    """
    entry, arch, _ = _lookup(name)
    if not pretrained:
        return entry.builder(**cfg)
    if cfg:
        raise ConfigError(
            f"create_model('{name}', pretrained=True) takes no builder arguments "
            f"(got {', '.join(sorted(cfg))}): the weights card fixes the architecture"
        )
    card = weights_card(name)
    if card.loader is not None:
        return card.loader()
    path = card.path()
    if not path.is_file() or not card.sha256:
        how = f"; train them with  {card.train_command}" if card.train_command else ""
        raise ModelError(
            f"{path}: no weights are shipped yet for '{arch}.{card.tag}'{how}, then load the "
            "run's weights with facexpr.nn.load_weights(create_model(...), PATH)"
        )
    model = entry.builder(**dict(card.config))
    load_weights(model, path, card)
    return model.eval()

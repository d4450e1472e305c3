"""The multi-avatar animator: an actor's expression feature -> one avatar's rig weights.

FreeAvatar (Qiu et al. 2024, arXiv:2409.13180), section "expression-driven multi-avatar
animator": one small network drives every avatar; which avatar is driven is told by a learned
16-number identity code ("dynamic identity injection"). The authors' released animator puts the
code beside the input of a residual MLP with one output layer as wide as the largest rig; here
the code modulates every hidden layer by FiLM (Perez et al. 2018, arXiv:1709.07871:
``h * (1 + gamma(code)) + beta(code)``) and each avatar has its own output layer sized to its rig,
so rigs of any size (ICT's 53 shapes, a user's glTF morph targets) share the body. Outputs are
sigmoid-bounded to [0, 1].

Input: the frozen expression encoder's output of one face, the 16-d unit embedding concatenated
with the encoder's pooled features (192-d for the CPU-default ViT-Tiny): ``in_dim = 16 + 192``.

Adding an avatar (:meth:`MultiAvatarAnimator.add_avatar`) appends a code and an output layer;
:meth:`MultiAvatarAnimator.train_only` then leaves every other parameter frozen, so the other
avatars' outputs are unchanged (bit for bit: their parameters are never updated).

Registered as ``animator``; shipped weights are ``nn/weights/animator_<tag>.safetensors`` with a
card ``animator_<tag>.json`` whose ``config`` holds the builder arguments (the avatars and their
rig sizes). Until one is shipped, ``create_model("animator", pretrained=True)`` raises a
:class:`~facexpr.core.errors.ModelError` naming the training command.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facexpr.core.errors import ConfigError, ModelError
from facexpr.nn.registry import WEIGHTS_DIR, WeightsCard, load_weights, read_card, register_model

__all__ = [
    "ANIMATOR_CARD",
    "DEFAULT_TAG",
    "MultiAvatarAnimator",
    "animator_card",
    "expression_features",
    "load_animator",
    "load_expression_encoder",
    "shipped_animator_cards",
]


class _FiLMBlock(nn.Module):
    """A residual MLP block whose hidden activations the avatar code scales and shifts."""

    def __init__(self, hidden: int, code_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.linear = nn.Linear(hidden, hidden)
        self.film = nn.Linear(code_dim, 2 * hidden)
        self.drop = nn.Dropout(dropout)
        # Start as a plain MLP: gamma = beta = 0 for every code.
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(code).chunk(2, dim=-1)
        y = self.linear(self.norm(h))
        y = torch.nn.functional.gelu(y * (1 + gamma) + beta)
        return h + self.drop(y)


class MultiAvatarAnimator(nn.Module):
    """Expression features -> rig weights of any of its avatars.

    Args:
        avatars: ``(name, n_shapes)`` of every avatar, in order (the index of an avatar is its
            place here).
        in_dim: input width (embedding + pooled encoder features).
        hidden: hidden width.
        depth: residual FiLM blocks.
        code_dim: width of an avatar's identity code.
        dropout: dropout in the blocks.

    Raises:
        ConfigError: no avatar, a repeated name, a rig of fewer than 1 shape, or a width < 1.
    """

    def __init__(
        self,
        avatars: Sequence[tuple[str, int]] | Sequence[Sequence[Any]],
        *,
        in_dim: int = 208,
        hidden: int = 256,
        depth: int = 2,
        code_dim: int = 16,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("hidden", hidden), ("code_dim", code_dim)):
            if int(v) != v or v < 1:
                raise ConfigError(f"MultiAvatarAnimator: {name} must be an integer >= 1, got {v}")
        if int(depth) != depth or depth < 0:
            raise ConfigError(f"MultiAvatarAnimator: depth must be an integer >= 0, got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MultiAvatarAnimator: dropout must be in [0, 1), got {dropout}")
        pairs = [(str(a[0]), int(a[1])) for a in avatars]
        if not pairs:
            raise ConfigError("MultiAvatarAnimator: give at least one avatar")
        self.in_dim, self.hidden, self.depth = int(in_dim), int(hidden), int(depth)
        self.code_dim, self.dropout = int(code_dim), float(dropout)
        self.in_norm = nn.LayerNorm(self.in_dim)
        self.inp = nn.Linear(self.in_dim, self.hidden)
        self.in_film = nn.Linear(self.code_dim, 2 * self.hidden)
        nn.init.zeros_(self.in_film.weight)
        nn.init.zeros_(self.in_film.bias)
        self.blocks = nn.ModuleList(
            _FiLMBlock(self.hidden, self.code_dim, self.dropout) for _ in range(self.depth)
        )
        self.out_norm = nn.LayerNorm(self.hidden)
        self.codes = nn.ParameterList()
        self.heads = nn.ModuleList()
        self._names: list[str] = []
        self._sizes: list[int] = []
        for name, n in pairs:
            self.add_avatar(name, n)

    # -- avatars ----------------------------------------------------------------------------

    @property
    def avatars(self) -> tuple[str, ...]:
        """The avatar names, in index order."""
        return tuple(self._names)

    def n_shapes(self, avatar: str | int) -> int:
        """Returns the rig size of an avatar."""
        return self._sizes[self.index(avatar)]

    def index(self, avatar: str | int) -> int:
        """Returns the index of an avatar given by name or index.

        Raises:
            ConfigError: no such avatar.
        """
        if isinstance(avatar, int) and not isinstance(avatar, bool):
            if not 0 <= avatar < len(self._names):
                raise ConfigError(
                    f"animator: avatar index {avatar} out of range (it has {len(self._names)})"
                )
            return avatar
        try:
            return self._names.index(str(avatar))
        except ValueError:
            raise ConfigError(
                f"the animator was not trained for avatar '{avatar}' (it drives: "
                f"{', '.join(self._names)}); add it with  facexpr train animator --add-avatar"
            ) from None

    def add_avatar(self, name: str, n_shapes: int) -> int:
        """Adds an avatar with a fresh code and output layer; returns its index.

        The code starts at the mean of the existing codes (a new avatar starts from the
        average avatar), or small random numbers for the first one.

        Raises:
            ConfigError: the name is taken or ``n_shapes`` < 1.
        """
        if name in self._names:
            raise ConfigError(f"animator: avatar '{name}' is already there")
        if int(n_shapes) != n_shapes or n_shapes < 1:
            raise ConfigError(f"animator: avatar '{name}' needs >= 1 shape, got {n_shapes}")
        if self.codes:
            code = torch.stack([c.detach() for c in self.codes]).mean(0).clone()
        else:
            code = torch.randn(self.code_dim) * 0.1
        self.codes.append(nn.Parameter(code))
        head = nn.Linear(self.hidden, int(n_shapes))
        nn.init.normal_(head.weight, std=0.01)
        nn.init.constant_(head.bias, -2.0)  # most shapes are near 0 most of the time
        self.heads.append(head)
        self._names.append(name)
        self._sizes.append(int(n_shapes))
        return len(self._names) - 1

    def train_only(self, avatars: Iterable[str | int]) -> list[nn.Parameter]:
        """Freezes every parameter but the codes and output layers of ``avatars``; returns them.

        What adding an avatar trains: the shared body and the other avatars stay as they are.
        """
        keep = {self.index(a) for a in avatars}
        for p in self.parameters():
            p.requires_grad_(False)
        params: list[nn.Parameter] = []
        for i in sorted(keep):
            self.codes[i].requires_grad_(True)
            params.append(self.codes[i])
            for p in self.heads[i].parameters():
                p.requires_grad_(True)
                params.append(p)
        return params

    def config(self) -> dict[str, Any]:
        """Returns the builder arguments that rebuild this architecture (for a card)."""
        return {
            "avatars": [[n, s] for n, s in zip(self._names, self._sizes, strict=True)],
            "in_dim": self.in_dim,
            "hidden": self.hidden,
            "depth": self.depth,
            "code_dim": self.code_dim,
            "dropout": self.dropout,
        }

    # -- forward ----------------------------------------------------------------------------

    def hidden_features(self, x: torch.Tensor, avatar: str | int) -> torch.Tensor:
        """Returns the (B, hidden) features of ``avatar``'s output layer."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ConfigError(
                f"animator: input must be (B, {self.in_dim}) expression features, got "
                f"{tuple(x.shape)}"
            )
        code = self.codes[self.index(avatar)]
        gamma, beta = self.in_film(code).chunk(2, dim=-1)
        h = torch.nn.functional.gelu(self.inp(self.in_norm(x)) * (1 + gamma) + beta)
        for block in self.blocks:
            h = block(h, code)
        return self.out_norm(h)

    def forward(self, x: torch.Tensor, avatar: str | int) -> torch.Tensor:
        """Returns (B, n_shapes(avatar)) rig weights in [0, 1] of (B, in_dim) features."""
        i = self.index(avatar)
        return torch.sigmoid(self.heads[i](self.hidden_features(x, i)))


ANIMATOR_CARD = WeightsCard(
    tag="synth_ict",
    input_size=(112, 112),
    file="animator_synth_ict.safetensors",
    sha256="",  # set when trained weights are shipped
    architecture="animator: MultiAvatarAnimator (FiLM identity codes, per-avatar output layers)",
    config={},
    data=("synthetic actors rendered by facexpr synth (ICT FaceKit, MIT) with known rig weights",),
    license="Apache-2.0 (trained on synthetic data only)",
    source="facexpr train animator --config configs/animator_tiny.yaml",
    notes="input: the 'expression' encoder's embedding and pooled features of the same weights "
    "it was trained with (the card's encoder_sha256 in metrics/config)",
    train_command="facexpr train animator --config configs/animator_tiny.yaml",
)

#: The tag ``create_model("animator", pretrained=True)`` loads.
DEFAULT_TAG = "synth_ict"


def shipped_animator_cards() -> tuple[WeightsCard, ...]:
    """Returns the cards of the animator weights shipped in ``nn/weights/``, sorted by file."""
    return tuple(read_card(p) for p in sorted(WEIGHTS_DIR.glob("animator_*.json")))


def _cards() -> tuple[WeightsCard, ...]:
    shipped = shipped_animator_cards()
    tags = {c.tag for c in shipped}
    placeholder = () if ANIMATOR_CARD.tag in tags else (ANIMATOR_CARD,)
    return tuple(sorted((*shipped, *placeholder), key=lambda c: c.tag != DEFAULT_TAG))


@register_model("animator", cards=_cards())
def animator(
    avatars: Sequence[Sequence[Any]] = (("ict", 53),),
    in_dim: int = 208,
    hidden: int = 256,
    depth: int = 2,
    code_dim: int = 16,
    dropout: float = 0.1,
) -> MultiAvatarAnimator:
    """Returns an untrained animator for ``avatars`` (``(name, n_shapes)`` pairs)."""
    return MultiAvatarAnimator(
        avatars, in_dim=in_dim, hidden=hidden, depth=depth, code_dim=code_dim, dropout=dropout
    )


def animator_card(path: str | Path) -> WeightsCard:
    """Returns the card beside an animator weights file (``NAME.json`` for ``NAME.safetensors``).

    Raises:
        ModelError: no card there (an animator cannot be rebuilt without its avatars), or an
            invalid one (named).
    """
    path = Path(path)
    beside = path.with_suffix(".json")
    if not beside.is_file():
        raise ModelError(
            f"{path}: no card {beside.name} beside it; an animator's card lists its avatars "
            "(facexpr train animator writes animator.safetensors and animator.json)"
        )
    card = read_card(beside)
    if "avatars" not in card.config:
        raise ModelError(f"{beside}: not an animator card (its config lists no avatars)")
    return card


def load_animator(path: str | Path) -> tuple[MultiAvatarAnimator, WeightsCard]:
    """Returns an animator with the weights of ``path`` (and its card), in eval mode.

    Raises:
        ModelError: the file or its card is missing, corrupt or does not match (named).
    """
    card = animator_card(path)
    cfg = {k: v for k, v in card.config.items() if k != "encoder_sha256"}
    try:
        model = animator(**cfg)
    except (ConfigError, TypeError) as e:
        raise ModelError(f"{Path(path).with_suffix('.json')}: invalid animator config ({e})") from e
    load_weights(model, path, card)
    return model.eval(), card


# -- the frozen encoder whose output the animator reads ---------------------------------------

ENCODER_HOW = (
    "give a trained expression encoder with --encoder-weights PATH (a run's "
    "expression.safetensors, with its card NAME.json beside it when its architecture is not the "
    "default), or train one with  facexpr train heads  (configs/heads_tiny.yaml)"
)


def load_expression_encoder(path: str | Path | None = None) -> tuple[nn.Module, WeightsCard]:
    """Returns the ``expression`` encoder (eval mode, frozen) and its card.

    Args:
        path: a safetensors file of the ``expression`` model; a card ``NAME.json`` beside it
            gives its architecture and normalisation. None: the shipped weights.

    Raises:
        ModelError: no weights shipped and none given (saying how to get them), or the file does
            not load (named).
    """
    from facexpr.nn.expression import shipped_cards
    from facexpr.nn.registry import create_model, weights_card

    if path is None:
        if not any(c.sha256 for c in shipped_cards()):
            raise ModelError(f"no expression encoder weights are shipped yet: {ENCODER_HOW}")
        card = weights_card("expression")
        model = create_model("expression", pretrained=True)
    else:
        path = Path(path)
        beside = path.with_suffix(".json")
        card = read_card(beside) if beside.is_file() else weights_card("expression")
        model = create_model("expression", **dict(card.config))
        try:
            load_weights(model, path, card if beside.is_file() else None)
        except ModelError as e:
            raise ModelError(f"{e} ({ENCODER_HOW})") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, card


def expression_features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Returns the (B, dim + width) animator input of (B, 3, H, W) normalised faces: the unit
    embedding followed by the encoder's pooled features."""
    pooled = encoder.encoder(x)
    return torch.cat([encoder.head(pooled), pooled], dim=1)

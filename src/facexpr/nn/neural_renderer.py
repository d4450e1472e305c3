"""The multi-avatar neural renderer: rig weights (and an avatar's identity code) -> its face image.

FreeAvatar (Qiu et al. 2024, arXiv:2409.13180) trains a differentiable stand-in for each avatar's
real renderer, a DCGAN-style generator (Radford et al. 2016, arXiv:1511.06434) from rig values to
a 256 px render, so that an animator's loss can compare expressions in image space. Here one
network serves several avatars (their rigs may differ in size), with FreeAvatar's dynamic identity
injection instead of a decoder per avatar:

1. ``encode_rig``: a per-avatar linear input layer maps the avatar's (B, n_shapes) weights into one
   shared expression latent (rigs differ, so only this layer is per avatar);
2. ``style``: the avatar's learned 16-number identity code goes through a shared mapping MLP to a
   style vector;
3. ``forward_decoder``: a shared MLP and a projection to a 4x4 feature map, then transposed-conv
   upsampling blocks (x2 each) to ``size``; after every layer a parameter-free group
   normalisation is modulated by the style (FiLM: per-channel scale and shift computed from the
   style, i.e. AdaIN over channel groups), and a sigmoid gives RGB in [0, 1].

No batch statistics are used (group norm, not batch norm), so a sample's output depends on its own
inputs only: fine-tuning a new avatar's input layer and code with everything shared frozen
(:meth:`NeuralRenderer.add_avatar`, :meth:`NeuralRenderer.train_only`) leaves every other
avatar's output bit-identical.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from facexpr.core.errors import ConfigError, ModelError
from facexpr.nn.registry import WeightsCard, load_weights, read_card, register_model

__all__ = [
    "BUILTIN_AVATARS",
    "NEURAL_RENDERER_CARD",
    "NeuralRenderer",
    "load_neural_renderer",
    "neural_renderer",
]


class _FiLM(nn.Module):
    """Group-normalises (B, C, ...) features, then scales and shifts each channel by a style."""

    def __init__(self, channels: int, style_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels, affine=False)
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.normal_(self.affine.weight, std=0.02)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(style).chunk(2, dim=1)
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2)
        return self.norm(x) * (1 + gamma.view(shape)) + beta.view(shape)


class _UpBlock(nn.Module):
    """ConvTranspose2d 4x4 stride 2 (doubles the side), FiLM by the style, LeakyReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.film = _FiLM(cout, style_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return nn.functional.leaky_relu(self.film(self.conv(x), style), 0.2)


class NeuralRenderer(nn.Module):
    """Renders avatars from rig weights: ``forward(avatar, weights) -> images``.

    Args:
        avatars: avatar names, in code order.
        n_shapes: rig size (number of weights) of each avatar.
        size: output side, px (a power of two >= 16).
        latent_dim: width of the shared expression latent.
        id_dim: length of each avatar's identity code.
        style_dim: width of the style vector the codes map to.
        base_channels: channels of the last feature map before RGB; each coarser level doubles
            them, up to ``max_channels``.
        max_channels: the widest feature map.

    Raises:
        ConfigError: no avatars, duplicate names, sizes that differ in count, or bad sizes.
    """

    def __init__(
        self,
        avatars: Sequence[str],
        n_shapes: Sequence[int],
        size: int = 256,
        latent_dim: int = 256,
        id_dim: int = 16,
        style_dim: int = 64,
        base_channels: int = 16,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        avatars, n_shapes = tuple(avatars), tuple(int(n) for n in n_shapes)
        if not avatars or len(avatars) != len(n_shapes):
            raise ConfigError(
                f"NeuralRenderer: give one rig size per avatar, got {len(avatars)} avatars and "
                f"{len(n_shapes)} sizes"
            )
        if size < 16 or size & (size - 1):
            raise ConfigError(f"NeuralRenderer: size must be a power of two >= 16, got {size}")
        dims = {"latent_dim": latent_dim, "id_dim": id_dim, "style_dim": style_dim,
                "base_channels": base_channels, "max_channels": max_channels}  # fmt: skip
        for what, v in dims.items():
            if v < 1:
                raise ConfigError(f"NeuralRenderer: {what} must be >= 1, got {v}")
        self.size = size
        self.latent_dim, self.id_dim = latent_dim, id_dim
        self._config = {"size": size, "latent_dim": latent_dim, "id_dim": id_dim,
                        "style_dim": style_dim, "base_channels": base_channels,
                        "max_channels": max_channels}  # fmt: skip
        self.avatars: tuple[str, ...] = ()
        self._n_shapes: tuple[int, ...] = ()
        self.inputs = nn.ModuleList()
        self.codes = nn.ParameterList()
        for name, n in zip(avatars, n_shapes, strict=True):
            self._append(name, n, None)
        self.style = nn.Sequential(
            nn.Linear(id_dim, style_dim), nn.LeakyReLU(0.2), nn.Linear(style_dim, style_dim)
        )
        self.mlp = nn.Linear(latent_dim, latent_dim)
        self.mlp_film = _FiLM(latent_dim, style_dim)
        levels = int(math.log2(size)) - 2  # upsamplings from 4 px
        chans = [min(max_channels, base_channels * 2 ** (levels - 1 - k)) for k in range(levels)]
        self.fc = nn.Linear(latent_dim, chans[0] * 16)
        self.fc_film = _FiLM(chans[0], style_dim)
        self.blocks = nn.ModuleList(
            _UpBlock(chans[k], chans[k + 1], style_dim) for k in range(levels - 1)
        )
        self.to_rgb = nn.ConvTranspose2d(chans[-1], 3, 4, stride=2, padding=1)

    # ------------------------------------------------------------------ avatars
    def _append(self, name: str, n: int, code: torch.Tensor | None) -> int:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"NeuralRenderer: avatar names must be non-empty text, got {name!r}")
        if name in self.avatars:
            raise ConfigError(f"NeuralRenderer: avatar '{name}' is already one of its avatars")
        if n < 1:
            raise ConfigError(f"NeuralRenderer: avatar '{name}' needs >= 1 rig shape, got {n}")
        self.inputs.append(nn.Linear(n, self.latent_dim))
        if code is None:
            code = torch.randn(self.id_dim) * 0.5
        self.codes.append(nn.Parameter(code.detach().clone().reshape(self.id_dim)))
        self.avatars = (*self.avatars, name)
        self._n_shapes = (*self._n_shapes, n)
        return len(self.avatars) - 1

    def add_avatar(self, name: str, n_shapes: int) -> int:
        """Adds an avatar (a new input layer and identity code); returns its index.

        The new code starts at the mean of the existing codes, so the new avatar begins as the
        average look of the others.

        Raises:
            ConfigError: the name is taken or ``n_shapes`` < 1.
        """
        with torch.no_grad():
            start = torch.stack(list(self.codes)).mean(0) if len(self.codes) else None
        idx = self._append(name, int(n_shapes), start)
        device = self.codes[0].device
        self.inputs[idx].to(device)
        self.codes[idx].data = self.codes[idx].data.to(device)
        return idx

    def train_only(self, avatars: Sequence[str | int]) -> None:
        """Freezes every parameter but the input layers and identity codes of ``avatars``."""
        keep = {self.avatar_index(a) for a in avatars}
        for p in self.parameters():
            p.requires_grad_(False)
        for i in keep:
            self.codes[i].requires_grad_(True)
            for p in self.inputs[i].parameters():
                p.requires_grad_(True)

    def n_shapes(self, avatar: str | int) -> int:
        """Returns the rig size of an avatar (by name or index)."""
        return self._n_shapes[self.avatar_index(avatar)]

    def avatar_index(self, avatar: str | int) -> int:
        """Returns the code index of an avatar name (or checks an index).

        Raises:
            ConfigError: an unknown name (with close matches) or an index out of range.
        """
        if isinstance(avatar, int) and not isinstance(avatar, bool):
            if not 0 <= avatar < len(self.avatars):
                raise ConfigError(
                    f"NeuralRenderer: avatar index {avatar} out of range (it has "
                    f"{len(self.avatars)} avatars)"
                )
            return avatar
        if avatar not in self.avatars:
            close = difflib.get_close_matches(str(avatar), self.avatars, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ConfigError(
                f"NeuralRenderer: unknown avatar {avatar!r}{hint}; it renders "
                f"{', '.join(self.avatars)}"
            )
        return self.avatars.index(avatar)

    def config_dict(self) -> dict[str, object]:
        """Returns the builder arguments that rebuild this architecture (for its card)."""
        return {"avatars": list(self.avatars), "n_shapes": list(self._n_shapes), **self._config}

    # ------------------------------------------------------------------ forward
    def encode_rig(self, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns (B, latent_dim) expression latents of (B, max n) weights padded with zeros.

        Args:
            index: (B,) int64 avatar indices.
            weights: (B, >= n_shapes of each row's avatar) rig weights; a row's weights beyond its
                avatar's rig size are ignored.
        """
        out = weights.new_zeros(weights.shape[0], self.latent_dim)
        for a in torch.unique(index).tolist():
            sel = index == a
            out[sel] = self.inputs[a](weights[sel, : self._n_shapes[a]])
        return out

    def forward_decoder(self, latent: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Returns (B, 3, size, size) images in [0, 1] of latents and styles."""
        act = nn.functional.leaky_relu
        h = act(self.mlp_film(self.mlp(act(latent, 0.2)), style), 0.2)
        x = self.fc(h).view(h.shape[0], -1, 4, 4)
        x = act(self.fc_film(x, style), 0.2)
        for block in self.blocks:
            x = block(x, style)
        return torch.sigmoid(self.to_rgb(x))

    def render_batch(self, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns (B, 3, size, size) images of a batch mixing avatars.

        Args:
            index: (B,) int64 avatar indices.
            weights: (B, C) rig weights in [0, 1], each row padded with zeros to the batch's
                widest rig.
        """
        codes = torch.stack(list(self.codes))[index]
        return self.forward_decoder(self.encode_rig(index, weights), self.style(codes))

    def forward(self, avatar: str | int | torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns (B, 3, size, size) float32 images in [0, 1] of one avatar's rig weights.

        Differentiable in ``weights``.

        Args:
            avatar: an avatar name of :attr:`avatars` or its index; or (B,) int64 indices, one
                per row, for a batch mixing avatars (:meth:`render_batch`, rows zero-padded).
            weights: (B, n_shapes(avatar)) rig weights in [0, 1].

        Raises:
            ConfigError: an unknown avatar, or weights of another shape than (B, n_shapes).
        """
        if isinstance(avatar, torch.Tensor):
            if avatar.ndim != 1 or avatar.shape[0] != weights.shape[0]:
                raise ConfigError(
                    f"NeuralRenderer: give one avatar index per row, got {tuple(avatar.shape)} "
                    f"for weights {tuple(weights.shape)}"
                )
            if avatar.numel() and (int(avatar.min()) < 0 or int(avatar.max()) >= len(self.avatars)):
                raise ConfigError(
                    f"NeuralRenderer: avatar indices must be in [0, {len(self.avatars)})"
                )
            widest = max(self._n_shapes[a] for a in torch.unique(avatar).tolist())
            if weights.ndim != 2 or weights.shape[1] < widest:
                raise ConfigError(
                    f"NeuralRenderer: weights must be (B, >= {widest}), got {tuple(weights.shape)}"
                )
            return self.render_batch(avatar, weights)
        a = self.avatar_index(avatar)
        n = self._n_shapes[a]
        if weights.ndim != 2 or weights.shape[1] != n:
            raise ConfigError(
                f"NeuralRenderer: avatar '{self.avatars[a]}' has {n} rig shapes, so weights must "
                f"be (B, {n}), got {tuple(weights.shape)}"
            )
        index = torch.full((weights.shape[0],), a, dtype=torch.long, device=weights.device)
        return self.render_batch(index, weights)


BUILTIN_AVATARS = (*(f"ict_{k:03d}" for k in range(8)), "ict_toon")

NEURAL_RENDERER_CARD = WeightsCard(
    tag="ict9",
    input_size=(128, 128),
    file="neural_renderer_ict9.safetensors",
    sha256="281ec124a358fa6dec5385a680e97202efc0f830673035fcc7364e6af927f732",
    architecture="neural_renderer: per-avatar input layers, 16-d identity codes (FiLM), "
    "DCGAN-style transposed-conv decoder to 128 px",
    config={
        "avatars": list(BUILTIN_AVATARS),
        "n_shapes": [53] * len(BUILTIN_AVATARS),
        "size": 128,
    },
    data=("renders of facexpr's built-in avatars (ICT FaceKit, MIT) by facexpr's renderer",),
    license="MIT (trained on renders of the MIT-licensed ICT FaceKit only)",
    source="runs/renderer_9 (3,000 steps of 32 pairs, 11 min on 2 CPU cores), stored as "
    "float16 (max abs difference to float32 0.0007 on [0, 1] images)",
    notes="frontal view, fixed light and grey background, framed like the aligned crop; fine "
    "detail (teeth, wrinkles, irises) is blurred",
    metrics={
        "heldout_psnr_db_mean": 34.68,
        "heldout_l1_mean": 0.0080,
        "heldout_psnr_db_ict_toon": 29.8,
        "ms_per_frame_1thread_batch1": 4.2,
        "benchmark": "python benchmarks/neural_renderer.py --renderer runs/renderer_9 "
        "(64 held-out rig weights per avatar)",
    },
    train_command="facexpr train renderer --config configs/renderer_ict9.yaml --out "
    "runs/renderer_9",
)


@register_model("neural_renderer", cards=(NEURAL_RENDERER_CARD,))
def neural_renderer(
    avatars: Sequence[str] = BUILTIN_AVATARS,
    n_shapes: Sequence[int] = (53,) * len(BUILTIN_AVATARS),
    size: int = 256,
    latent_dim: int = 256,
    id_dim: int = 16,
    style_dim: int = 64,
    base_channels: int = 16,
    max_channels: int = 256,
) -> NeuralRenderer:
    """Returns an untrained :class:`NeuralRenderer` (default: the 9 built-in avatars, 256 px)."""
    return NeuralRenderer(
        avatars, n_shapes, size, latent_dim, id_dim, style_dim, base_channels, max_channels
    )


def load_neural_renderer(path: str | Path) -> NeuralRenderer:
    """Returns the renderer of an exported ``renderer.safetensors`` and its ``.json`` card, in
    eval mode.

    Args:
        path: the ``.safetensors`` file (its card is the ``.json`` beside it), or a run folder
            holding ``renderer.safetensors``.

    Raises:
        ModelError: the file or card is missing, corrupt, not a neural renderer's, or the weights
            do not fit the card's architecture (names the file).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "renderer.safetensors"
    card = read_card(p.with_suffix(".json"))
    if not card.architecture.startswith("neural_renderer"):
        raise ModelError(f"{p.with_suffix('.json')}: not a neural renderer's card")
    try:
        model = neural_renderer(**dict(card.config))
    except (TypeError, ConfigError) as e:
        raise ModelError(f"{p.with_suffix('.json')}: invalid neural renderer config ({e})") from e
    load_weights(model, p, card)
    return model.eval()

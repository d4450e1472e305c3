"""Vision Transformer encoders for faces (ViT; Dosovitskiy et al. 2021, arXiv:2010.11929).

The family follows the ViT/DeiT widths (tiny 192-d/3 heads, small 384-d/6 heads, base 768-d/12
heads, 12 pre-norm blocks each) with fixed 2D sine-cosine position embeddings as in MAE (He et al.
2022, arXiv:2111.06377), so that the MAE pretraining of :mod:`facexpr.nn.mae` and the expression
fine-tuning share one encoder. Registered names say patch size and input side:

===========================  =====  =====  =====  =======  =====================================
name                         dim    depth  heads  input    use
===========================  =====  =====  =====  =======  =====================================
``fxvit_tiny_d6_p16_112``    192    6      3      112 px   CPU default (49 patches)
``fxvit_tiny_p16_112``       192    12     3      112 px   CPU, ViT-Tiny's full depth
``fxvit_small_p16_112``      384    12     6      112 px   CPU/GPU, more capacity
``fxvit_base_p16_224``       768    12     12     224 px   GPU users (MAE-Face's ViT-B/16 layout)
===========================  =====  =====  =====  =======  =====================================

Why the 6-block tiny is the CPU default: the analysis must cost no more than MediaPipe's Face
Landmarker with blendshapes. Timed back to back on this project's 2 shared cores
(``benchmarks/encoder.py``, ``results/encoder_paired.json``), the encoder may cost what Face Mesh V2
plus Blendshape V2 cost beyond facexpr's own landmark model; the 12-block tiny at 112 px took
1.1-1.4x that budget (median of 15 rounds; within it in at most 4 of 15), the 6-block one
0.56-0.63x (ONNX Runtime at batch 1, or torch with one thread at batch 32; within it in 13-14 of
15 rounds).

Built from PyTorch's own pieces: attention is ``torch.nn.functional.scaled_dot_product_attention``
(fused kernels on CPU and GPU) inside a pre-norm block, not hand-written softmax(QK^T)V. We do not
use timm: it needs torchvision, and no torchvision wheel pairs with the CPU torch 2.13.0 wheel the
project pins. Parameter names follow timm's (``patch_embed.proj``, ``blocks.N.attn.qkv``,
``blocks.N.mlp.fc1``, ``norm``, ``cls_token``, ``pos_embed``), so timm-layout ViT checkpoints (MAE,
MAE-Face) map onto these models by name.

Input: (B, 3, H, W) float32, RGB scaled to [0, 1] then normalised with the weights card's
mean/std (:data:`FACE_MEAN`, :data:`FACE_STD`, ImageNet's, as MAE), H = W = ``img_size``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from facexpr.core.errors import ConfigError, InputError
from facexpr.nn.registry import register_model

__all__ = [
    "FACE_MEAN",
    "FACE_STD",
    "VIT_VARIANTS",
    "Block",
    "PatchEmbed",
    "ViTConfig",
    "VisionTransformer",
    "sincos_pos_embed_2d",
]

#: Normalisation of every fxvit input (ImageNet's, as MAE and MAE-Face use).
FACE_MEAN = (0.485, 0.456, 0.406)
FACE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    """The architecture of a :class:`VisionTransformer`, checked once here.

    Attributes:
        img_size: input side in px (square).
        patch_size: patch side in px; must divide ``img_size``.
        in_chans: input channels.
        embed_dim: token width; a multiple of ``num_heads`` and of 4 (2D sin-cos embedding).
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        drop_path_rate: stochastic depth at the last block (linear from 0 at the first).
        attn_drop: dropout on attention weights (training only).
        global_pool: ``forward``'s pooling: the class token ("token") or the mean of patch
            tokens ("avg").
    """

    img_size: int = 112
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    attn_drop: float = 0.0
    global_pool: Literal["token", "avg"] = "token"

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"ViTConfig.{name} must be an integer >= 1, got {v!r}")
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"ViTConfig: patch_size {self.patch_size} must divide img_size {self.img_size}"
            )
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"ViTConfig: embed_dim {self.embed_dim} must be a multiple of "
                f"num_heads {self.num_heads}"
            )
        if self.embed_dim % 4:
            raise ConfigError(
                f"ViTConfig: embed_dim {self.embed_dim} must be a multiple of 4 "
                "(2D sin-cos position embedding)"
            )
        if not self.mlp_ratio > 0:
            raise ConfigError(f"ViTConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")
        for name in ("drop_path_rate", "attn_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"ViTConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.global_pool not in ("token", "avg"):
            raise ConfigError(
                f"ViTConfig.global_pool must be 'token' or 'avg', got {self.global_pool!r}"
            )

    @property
    def grid_size(self) -> int:
        """Patches along a side."""
        return self.img_size // self.patch_size


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """Returns the fixed 2D sine-cosine position embedding of a square patch grid, as MAE.

    Half the channels encode the patch row, half the column; each half is sin/cos of the
    position at frequencies 1/10000^(k/(D/4)). The class token's row is zeros.

    Returns:
        (1 + grid_size**2, embed_dim) float32 if ``cls_token`` else (grid_size**2, embed_dim),
        patches in row-major order (as ``PatchEmbed`` flattens them).
    """
    if embed_dim % 4:
        raise ConfigError(f"sin-cos position embedding needs embed_dim % 4 == 0, got {embed_dim}")
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")

    def embed_1d(p: torch.Tensor) -> torch.Tensor:
        angles = p.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    emb = torch.cat([embed_1d(rows), embed_1d(cols)], dim=1).float()
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim), emb], dim=0)
    return emb


class PatchEmbed(nn.Module):
    """Cuts (B, C, H, W) images into non-overlapping patches and projects each to a token."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, N, D) patch tokens, row-major, of (B, C, img_size, img_size) input.

        Raises:
            InputError: the input is not (B, in_chans, img_size, img_size).
        """
        want = (self.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise InputError(
                None,
                f"expected a (B, {want[0]}, {want[1]}, {want[2]}) image tensor, "
                f"got {tuple(x.shape)}",
            )
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, L, D) attended tokens of (B, L, D) tokens."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, D/heads)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two linear layers with GELU between."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, L, D) of (B, L, D)."""
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drops a sample's whole residual branch with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``x`` with whole samples zeroed (and the rest rescaled) while training."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, L, D) of (B, L, D)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights(module: nn.Module) -> None:
    """Initialises as MAE: xavier-uniform linears with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VisionTransformer(nn.Module):
    """A ViT encoder: patch tokens plus a class token through pre-norm blocks.

    Args:
        img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, drop_path_rate,
        attn_drop, global_pool: see :class:`ViTConfig` (checked there).

    Attributes:
        config: the checked :class:`ViTConfig`.
        patch_embed: the :class:`PatchEmbed`.
        cls_token: (1, 1, D) learned class token.
        pos_embed: (1, 1 + N, D) fixed sin-cos buffer (saved in the state dict, as MAE).
        blocks: the transformer blocks.
        norm: final LayerNorm.
        num_patches: N, patches per image.
        embed_dim: D.
    """

    def __init__(
        self,
        img_size: int = 112,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        attn_drop: float = 0.0,
        global_pool: Literal["token", "avg"] = "token",
    ) -> None:
        super().__init__()
        cfg = ViTConfig(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate,
            attn_drop=attn_drop,
            global_pool=global_pool,
        )
        self.config = cfg
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(embed_dim, cfg.grid_size)[None], persistent=True
        )
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, rates[i], attn_drop) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init()

    def _init(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a linear layer, as MAE
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(init_weights)

    def config_dict(self) -> dict[str, object]:
        """Returns the builder arguments that rebuild this architecture."""
        return asdict(self.config)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, 1 + N, D) normalised tokens (class token first) of (B, C, H, W) input.

        Raises:
            InputError: the input is not (B, in_chans, img_size, img_size).
        """
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns (B, D) of (B, 1 + N, D) tokens: the class token or the patch-token mean."""
        return tokens[:, 0] if self.config.global_pool == "token" else tokens[:, 1:].mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, D) pooled features of (B, C, H, W) normalised input."""
        return self.pool(self.forward_features(x))


#: name -> (embed_dim, depth, num_heads, img_size, patch_size) of the registered encoders.
VIT_VARIANTS: dict[str, tuple[int, int, int, int, int]] = {
    "fxvit_tiny_d6_p16_112": (192, 6, 3, 112, 16),
    "fxvit_tiny_p16_112": (192, 12, 3, 112, 16),
    "fxvit_small_p16_112": (384, 12, 6, 112, 16),
    "fxvit_base_p16_224": (768, 12, 12, 224, 16),
}


def _register_variant(name: str) -> None:
    dim, depth, heads, size, patch = VIT_VARIANTS[name]

    def build(
        img_size: int = size,
        depth: int = depth,
        drop_path_rate: float = 0.0,
        global_pool: Literal["token", "avg"] = "token",
        in_chans: int = 3,
    ) -> VisionTransformer:
        return VisionTransformer(
            img_size=img_size,
            patch_size=patch,
            in_chans=in_chans,
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            drop_path_rate=drop_path_rate,
            global_pool=global_pool,
        )

    build.__name__ = name
    build.__doc__ = (
        f"Returns the {name} encoder ({dim}-d, {heads} heads, patch {patch}), randomly "
        f"initialised; ``img_size`` (default {size}) and ``depth`` (default {depth}) may change."
    )
    register_model(name)(build)


for _name in VIT_VARIANTS:
    _register_variant(_name)

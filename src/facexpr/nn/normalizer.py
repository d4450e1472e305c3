"""The identity normaliser: a face crop in, the same expression on one canonical face out.

Norface's normalisation network (Liu et al., "Norface: Improving Facial Expression Analysis by
Identity Normalization", ECCV 2024, arXiv:2407.15617), adapted to what trains on two CPU cores:

1. ``forward_encoder``: an encoder turns the input crop into expression tokens. Either a small
   conv encoder (stride 16, one token per 16 x 16 px cell), or an fxvit encoder of :mod:`.vit`
   (its patch tokens), which may start from a ``facexpr train mae`` run, as Norface starts its
   shared face encoder from an MAE.
2. ``forward_merge``: the Expression Merging Module. Norface merges the input's expression into
   the *target face's* tokens by attention; here the target face is always the same canonical
   face, so its tokens are a learned grid (one token per output cell, with a fixed 2D sin-cos
   position), which attends to the input's expression tokens (cross-attention: queries from the
   canonical grid, keys and values from the input), then to itself, in pre-norm blocks.
   A linear read-out of the pooled expression tokens to the 53 rig weights
   (``forward_latent``) is supervised by the trainer, so that the tokens carry the expression
   early: without it, a first run drew the mean canonical face for every input (docs/normalize.md).
3. ``forward_decoder``: a conv decoder upsamples the merged grid x16 to the image; its output is
   added to a learned canonical image (logits), so the network learns the canonical face once
   and the decoder only what the expression changes.

:class:`ExpressionProbe`, a small conv net on images in [0, 1], regresses the 53 rig weights; the
trainer uses it for the expression-consistency loss (the weights read from the output must be
the labels, as they are read from the canonical target).

Registered as ``normalizer``; trained by ``facexpr train normalizer`` (:mod:`facexpr.train.
recipes.normalizer`), used by ``facexpr normalize``. Input: (B, 3, S, S) float32 RGB scaled to
[0, 1] and normalised with :data:`~facexpr.nn.vit.FACE_MEAN` / :data:`~facexpr.nn.vit.FACE_STD`;
output (B, 3, S, S) float32 in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facexpr.core.errors import ConfigError
from facexpr.nn.registry import WEIGHTS_DIR, WeightsCard, read_card, register_model
from facexpr.nn.vit import FACE_MEAN, FACE_STD, VIT_VARIANTS, VisionTransformer, sincos_pos_embed_2d

__all__ = [
    "NORMALIZER_CARD",
    "N_RIG_WEIGHTS",
    "ConvEncoder",
    "ExpressionMergingModule",
    "ExpressionProbe",
    "FaceNormalizer",
]

#: Rig weights the expression probe regresses (ICT FaceKit's channels).
N_RIG_WEIGHTS = 53
_STRIDE = 16


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    groups = 8 if cout % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.GELU()
    )


class ConvEncoder(nn.Module):
    """(B, 3, S, S) -> (B, (S/16)^2, dim) tokens: four stride-2 stages of two 3x3 convs.

    Args:
        dim: token width (the last stage's channels).
        channels: channels of the first three stages.
    """

    def __init__(self, dim: int = 128, channels: tuple[int, int, int] = (32, 64, 96)) -> None:
        super().__init__()
        widths = (*channels, dim)
        layers: list[nn.Module] = []
        cin = 3
        for c in widths:
            layers += [_conv(cin, c, 2), _conv(c, c)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(2).transpose(1, 2)


class _MergeBlock(nn.Module):
    """Pre-norm cross-attention (canonical queries, input keys/values), self-attention, MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_s = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        k = self.norm_kv(kv)
        q = q + self.cross(self.norm_q(q), k, k, need_weights=False)[0]
        s = self.norm_s(q)
        q = q + self.self_attn(s, s, s, need_weights=False)[0]
        return q + self.mlp(self.norm_m(q))


class ExpressionMergingModule(nn.Module):
    """Learned canonical-face tokens that take the expression of the input's tokens.

    Args:
        dim: token width.
        grid: canonical grid side (output cells per side).
        depth: merge blocks.
        heads: attention heads (must divide ``dim``).
    """

    def __init__(self, dim: int, grid: int, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.canonical = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        self.register_buffer(
            "pos", sincos_pos_embed_2d(dim, grid, cls_token=False)[None], persistent=False
        )
        self.blocks = nn.ModuleList(_MergeBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.grid = grid

    def forward(self, tokens: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Returns (B, grid^2, dim) merged tokens of (B, N, dim) expression tokens; ``extra``
        (B, grid^2, dim) is added to the canonical queries (the weight code's cells)."""
        q = (self.canonical + self.pos).expand(tokens.shape[0], -1, -1)
        if extra is not None:
            q = q + extra
        for block in self.blocks:
            q = block(q, tokens)
        return self.norm(q)


class _Decoder(nn.Module):
    """(B, dim, g, g) -> (B, 3, 16g, 16g) logits: four x2 stages (nearest, a 3x3 conv), then a
    3x3 conv to RGB. One conv per stage: the full-resolution stages dominate the cost on a CPU."""

    def __init__(self, dim: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        cin = dim
        for c in channels:
            stages.append(nn.Sequential(nn.Upsample(scale_factor=2.0), _conv(cin, c)))
            cin = c
        self.stages = nn.Sequential(*stages)
        self.out = nn.Conv2d(cin, 3, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.stages(x))


class ExpressionProbe(nn.Module):
    """(B, 3, S, S) images in [0, 1] -> (B, 53) rig weights in [0, 1] (a small conv net)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for c in channels:
            layers.append(_conv(cin, c, 2))
            cin = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, N_RIG_WEIGHTS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.new_tensor(FACE_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(FACE_STD).view(1, 3, 1, 1)
        f = self.body((images - mean) / std).mean(dim=(2, 3))
        return torch.sigmoid(self.head(f))


class FaceNormalizer(nn.Module):
    """Normalised face crops -> the canonical face with the same expression (module docstring).

    Args:
        encoder: a :class:`ConvEncoder` or a :class:`~facexpr.nn.vit.VisionTransformer`.
        img_size: input and output side, px (a multiple of 16; a ViT's own input side).
        dim: merge width.
        merge_depth: Expression Merging Module blocks.
        heads: attention heads.
        decoder_channels: channels of the decoder's four x2 stages.
        probe: build the expression probe (the trainer's consistency loss).
        code: what the decoder draws from. ``"tokens"``: the merge cross-attends to the input's
            expression tokens. ``"weights"``: a bottleneck: the merge sees only the 53 rig
            weights read from the tokens (:meth:`forward_latent`, supervised), or the true
            weights when the trainer teacher-forces them (``forward(x, code=w)``), so no
            identity can pass and the decoder must use the expression code.

    Raises:
        ConfigError: sizes that do not fit (naming the option).
    """

    def __init__(
        self,
        encoder: nn.Module,
        img_size: int = 96,
        *,
        dim: int = 128,
        merge_depth: int = 2,
        heads: int = 4,
        decoder_channels: tuple[int, ...] = (128, 96, 64, 32),
        probe: bool = True,
        code: str = "tokens",
    ) -> None:
        super().__init__()
        if code not in ("tokens", "weights"):
            raise ConfigError(f"normalizer: code must be 'tokens' or 'weights', got '{code}'")
        if img_size % _STRIDE or img_size < 32:
            raise ConfigError(
                f"normalizer: img_size must be a multiple of 16, >= 32; got {img_size}"
            )
        if dim % heads or dim % 4:
            raise ConfigError(f"normalizer: dim {dim} must be a multiple of heads {heads} and of 4")
        if len(decoder_channels) != 4 or min(decoder_channels) < 1:
            raise ConfigError(
                f"normalizer: decoder_channels must be 4 widths >= 1 (x16), got {decoder_channels}"
            )
        if isinstance(encoder, VisionTransformer) and encoder.config.img_size != img_size:
            raise ConfigError(
                f"normalizer: the ViT takes {encoder.config.img_size} px, img_size is {img_size}"
            )
        self.img_size = img_size
        self.grid = img_size // _STRIDE
        self.encoder = encoder
        width = encoder.embed_dim if isinstance(encoder, VisionTransformer) else encoder.dim
        self.proj = nn.Linear(width, dim) if width != dim else nn.Identity()
        # Conv tokens carry no position of their own (a ViT's have its table): give them the
        # same sin-cos table, so the merge's attention knows where on the face a token lies.
        self.register_buffer(
            "token_pos",
            sincos_pos_embed_2d(dim, img_size // _STRIDE, cls_token=False)[None]
            if not isinstance(encoder, VisionTransformer)
            else torch.zeros(1, 1, dim),
            persistent=False,
        )
        # Rig weights read from the pooled expression tokens: supervised by the trainer
        # (``latent`` loss), it makes the tokens carry the expression from the first steps.
        # ``code="weights"``: the read-out sees every token (flattened: the crops are aligned,
        # so a cell's place on the face is fixed) and predicts standardised weights (z-scores of
        # the training labels, ``weight_mean`` / ``weight_std``, set by the trainer): with a
        # sigmoid on these sparse labels a first read-out stayed at the mean (docs/normalize.md).
        n_in = dim * (img_size // _STRIDE) ** 2 if code == "weights" else dim
        if code == "weights" and isinstance(encoder, VisionTransformer):
            n_in = dim * (img_size // encoder.config.patch_size) ** 2
        self.latent = nn.Linear(n_in, N_RIG_WEIGHTS)
        if code == "weights":
            self.register_buffer("weight_mean", torch.full((N_RIG_WEIGHTS,), 0.1))
            self.register_buffer("weight_std", torch.full((N_RIG_WEIGHTS,), 0.2))
        self.merge = ExpressionMergingModule(dim, self.grid, merge_depth, heads)
        self.code = code
        # ``code="weights"``: the 53 weights -> one token per output cell, the merge's only keys
        # and values (and added to its queries), so the decoder cannot bypass the code.
        self.code_embed = (
            nn.Sequential(
                nn.Linear(N_RIG_WEIGHTS, 4 * dim), nn.GELU(), nn.Linear(4 * dim, self.grid**2 * dim)
            )
            if code == "weights"
            else None
        )
        self.decoder = _Decoder(dim, tuple(decoder_channels))
        self.canonical_logits = nn.Parameter(torch.zeros(1, 3, img_size, img_size))
        self.probe = ExpressionProbe() if probe else None

    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, N, dim) expression tokens of (B, 3, S, S) normalised input."""
        if isinstance(self.encoder, VisionTransformer):
            tokens = self.encoder.forward_features(x)[:, 1:]
        else:
            tokens = self.encoder(x)
        return self.proj(tokens) + self.token_pos

    def forward_merge(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns (B, grid^2, dim) canonical tokens carrying the expression of (B, N, dim)
        expression tokens (``code="tokens"``)."""
        return self.merge(tokens)

    def forward_code(self, weights: torch.Tensor) -> torch.Tensor:
        """Returns (B, grid^2, dim) canonical tokens carrying (B, 53) rig weights
        (``code="weights"``: the bottleneck)."""
        if self.code_embed is None:
            raise ConfigError("normalizer: forward_code needs code='weights'")
        kv = self.code_embed(weights).view(weights.shape[0], self.grid**2, -1)
        return self.merge(kv, extra=kv)

    def forward_decoder(self, merged: torch.Tensor) -> torch.Tensor:
        """Returns (B, 3, S, S) images in [0, 1] of (B, grid^2, dim) merged tokens."""
        b, _, d = merged.shape
        x = merged.transpose(1, 2).reshape(b, d, self.grid, self.grid)
        return torch.sigmoid(self.decoder(x) + self.canonical_logits)

    def forward_latent(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns (B, 53) rig weights read from (B, N, dim) expression tokens: in [0, 1]
        (``code="tokens"``), or unclipped ``weight_mean + z * weight_std`` (``code="weights"``;
        the decoder gets them clipped to [0, 1])."""
        if self.code == "weights":
            return self.weight_mean + self.latent(tokens.flatten(1)) * self.weight_std
        return torch.sigmoid(self.latent(tokens.mean(dim=1)))

    def forward(
        self, x: torch.Tensor, return_latent: bool = False, code: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Returns (B, 3, S, S) float32 normalised faces in [0, 1] of (B, 3, S, S) normalised
        input crops (:data:`~facexpr.nn.vit.FACE_MEAN` / ``FACE_STD``); with ``return_latent``
        also the (B, 53) rig weights of :meth:`forward_latent` (the trainer's). ``code``
        (B, 53), with ``code="weights"`` only: drawn instead of the read-out (teacher forcing;
        rows that are NaN keep the read-out)."""
        if x.ndim != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ConfigError(
                f"normalizer: input must be (B, 3, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}"
            )
        tokens = self.forward_encoder(x)
        if self.code == "weights":
            latent = self.forward_latent(tokens)
            w = latent.clamp(0.0, 1.0)
            if code is not None:
                if code.shape != latent.shape:
                    raise ConfigError(
                        f"normalizer: code must be {tuple(latent.shape)}, got {tuple(code.shape)}"
                    )
                w = torch.where(torch.isnan(code), w, code)
            out = self.forward_decoder(self.forward_code(w))
            return (out, latent) if return_latent else out
        if code is not None:
            raise ConfigError("normalizer: a code is given but the model has code='tokens'")
        out = self.forward_decoder(self.forward_merge(tokens))
        return (out, self.forward_latent(tokens)) if return_latent else out


#: The weights ``create_model("normalizer", pretrained=True)`` loads once shipped (no sha256
#: yet: loading raises a ModelError naming the training command; random weights never ship).
NORMALIZER_CARD = WeightsCard(
    tag="norface_tiny",
    input_size=(96, 96),
    mean=FACE_MEAN,
    std=FACE_STD,
    file="normalizer_norface_tiny.safetensors",
    sha256="",
    architecture="normalizer: conv encoder + Expression Merging Module + conv decoder, 96 px",
    config={"encoder": "conv", "img_size": 96},
    data=("facexpr.synth.pairs renders of the ICT FaceKit model (MIT)",),
    license="trained on renders of the ICT FaceKit model (MIT)",
    source="facexpr train normalizer --config configs/normalizer_tiny.yaml",
    train_command="facexpr train normalizer --config configs/normalizer_tiny.yaml",
)


def shipped_cards() -> tuple[WeightsCard, ...]:
    """Returns the normaliser cards shipped in ``nn/weights/`` (``normalizer_<tag>.json``),
    or the placeholder :data:`NORMALIZER_CARD` when none is.

    Raises:
        ModelError: a card file there is unreadable or invalid (naming it).
    """
    cards = tuple(read_card(p) for p in sorted(WEIGHTS_DIR.glob("normalizer_*.json")))
    return cards or (NORMALIZER_CARD,)


@register_model("normalizer", cards=shipped_cards())
def normalizer(
    encoder: str = "conv",
    img_size: int = 96,
    dim: int = 128,
    merge_depth: int = 2,
    heads: int = 4,
    decoder_channels: tuple[int, ...] | list[int] = (128, 96, 64, 32),
    encoder_channels: tuple[int, ...] | list[int] = (32, 64, 96),
    depth: int | None = None,
    probe: bool = True,
    code: str = "tokens",
) -> FaceNormalizer:
    """Returns an untrained identity normaliser.

    Args:
        encoder: ``"conv"`` (the small conv encoder) or an fxvit name
            (:data:`facexpr.nn.vit.VIT_VARIANTS`, patch 16, built at ``img_size``).
        img_size: input and output side, px (multiple of 16).
        dim: merge width (conv encoder: its token width).
        merge_depth: Expression Merging Module blocks.
        heads: attention heads.
        decoder_channels: the decoder's four stage widths.
        encoder_channels: the conv encoder's first three stage widths.
        depth: ViT blocks (default the variant's).
        probe: build the expression probe used by the trainer.
        code: ``"tokens"`` or ``"weights"`` (the 53-weight bottleneck; :class:`FaceNormalizer`).

    Raises:
        ConfigError: an unknown encoder or sizes that do not fit.
    """
    if encoder == "conv":
        if len(encoder_channels) != 3:
            raise ConfigError(
                f"normalizer: encoder_channels must be 3 widths, got {encoder_channels}"
            )
        enc: nn.Module = ConvEncoder(dim, tuple(encoder_channels))  # type: ignore[arg-type]
    elif encoder in VIT_VARIANTS:
        from facexpr.nn.registry import create_model

        kw = {"img_size": img_size, **({"depth": depth} if depth else {})}
        enc = create_model(encoder, global_pool="avg", **kw)
    else:
        raise ConfigError(
            f"normalizer: unknown encoder '{encoder}' (conv, or {', '.join(VIT_VARIANTS)})"
        )
    return FaceNormalizer(
        enc, img_size, dim=dim, merge_depth=merge_depth, heads=heads,
        decoder_channels=tuple(decoder_channels), probe=probe, code=code,
    )  # fmt: skip


def region_boxes(size: int) -> tuple[tuple[int, int, int, int], ...]:
    """Returns the (x0, y0, x1, y1) px boxes of the eyes and the mouth on the canonical crop.

    The target is the canonical face, frontal, aligned to :data:`facexpr.faces.align.
    ALIGN_TEMPLATE` (eye centres at (0.37, 0.38) and (0.63, 0.38), mouth centre at (0.50, 0.68)
    of the side; the template is repeated here, as ``nn`` does not import ``faces``), so fixed
    boxes around those points hold the eyes with their lids and brows' lower edge, and the
    mouth open or closed (checked on the renders: ``tests/nn/test_normalizer.py``).
    """
    s = size

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return round(x0 * s), round(y0 * s), round(x1 * s), round(y1 * s)

    return (box(0.26, 0.29, 0.48, 0.46), box(0.52, 0.29, 0.74, 0.46), box(0.34, 0.58, 0.66, 0.84))


def region_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """Returns a (1, 1, size, size) float32 mask: 1 inside :func:`region_boxes`, 0 elsewhere."""
    m = torch.zeros(1, 1, size, size, device=device)
    for x0, y0, x1, y1 in region_boxes(size):
        m[..., y0:y1, x0:x1] = 1.0
    return m


def normalizer_losses(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    region: torch.Tensor,
    weights_true: torch.Tensor | None = None,
    weights_out: torch.Tensor | None = None,
    weights_target: torch.Tensor | None = None,
    weights_latent: torch.Tensor | None = None,
    latent_scale: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Returns the unweighted loss terms of a batch.

    Args:
        output: (B, 3, S, S) normaliser output in [0, 1].
        target: (B, 3, S, S) canonical renders in [0, 1].
        region: (1, 1, S, S) eye/mouth mask (:func:`region_mask`).
        weights_true: (B, 53) rig weights of the pairs.
        weights_out: (B, 53) the probe's weights read from ``output``.
        weights_target: (B, 53) the probe's weights read from ``target``.
        weights_latent: (B, 53) the weights read from the input's expression tokens.
        latent_scale: (53,) divides the ``latent`` error per channel (the labels' standard
            deviations: the error of standardised weights, so that rare channels count).

    Returns:
        ``pixel`` (L1 over the image), ``region`` (L1 inside the eye and mouth boxes) and, with
        the weights, mean squared errors to the labels: ``expression`` (the output's weights),
        ``probe`` (the target's, which trains the probe on clean faces) and ``latent`` (the
        input tokens' weights).
    """
    err = (output - target).abs()
    out = {
        "pixel": err.mean(),
        "region": (err * region).sum() / (region.sum() * err.shape[0] * err.shape[1]),
    }
    # Squared errors for the weights, not L1: the labels are sparse (half the channels near 0),
    # and under L1 predicting 0 everywhere is the optimum a probe finds first and stays in
    # (the first run's probe did: its L1 equalled the mean |w|, 0.051, read from any image).
    if weights_true is not None and weights_out is not None:
        out["expression"] = F.mse_loss(weights_out, weights_true)
    if weights_true is not None and weights_target is not None:
        out["probe"] = F.mse_loss(weights_target, weights_true)
    if weights_true is not None and weights_latent is not None:
        err_lat = weights_latent - weights_true
        out["latent"] = (err_lat if latent_scale is None else err_lat / latent_scale).pow(2).mean()
    return out

"""The analysis model: one encoder, every head (issue 13).

One forward pass of the foundation encoder feeds:

- ``embedding``: the 16-d unit-length expression embedding (the ``expression`` model's head);
- ``emotion``: logits of the 8 emotions of :data:`facexpr.core.affect.EMOTIONS`;
- ``va``: valence and arousal in [-1, 1];
- ``blendshapes``: the 52 ARKit blendshapes in [0, 1] (:data:`facexpr.core.arkit.ARKIT_NAMES`);
- ``aus``: AU occurrence logits and 0-5 intensities of :data:`facexpr.core.affect.HEAD_AUS`
  through the Local AU Features Module (:class:`~facexpr.nn.heads.outputs.LocalAUFeatures`).

Any subset of heads may be built (``heads=``); the output heads may be Mixture-of-Experts layers
(``experts`` > 1, Norface). Registered as ``analysis``; the trainer is ``facexpr train heads``.

Norface's classifier reads the original face and its identity-normalised image
(:mod:`facexpr.nn.normalizer`) together. With ``normalized=True`` the model takes both: the
normalised crop goes through the same encoder in a second pass, and every head reads the two
passes' features concatenated (pooled features for the pooled heads and the embedding, patch
tokens channel-wise for the AU module), mixed by the (MoE) output layers. No shipped heads are
trained this way yet: the option is the mechanism.
"""

from __future__ import annotations

import torch
from torch import nn

from facexpr.core.affect import EMOTIONS, HEAD_AUS
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError
from facexpr.nn.heads.embedding import EmbeddingHead
from facexpr.nn.heads.outputs import LocalAUFeatures, MoELinear
from facexpr.nn.registry import WEIGHTS_DIR, WeightsCard, create_model, read_card, register_model
from facexpr.nn.vit import FACE_MEAN, FACE_STD, VIT_VARIANTS, VisionTransformer

__all__ = [
    "ANALYSIS_CARD",
    "HEADS",
    "PACKED_LAYOUT",
    "FaceAnalysisModel",
    "PackedAnalysis",
    "shipped_cards",
]

#: The heads the model can carry, in output order.
HEADS = ("embedding", "emotion", "va", "blendshapes", "aus")


class _PooledHead(nn.Module):
    """LayerNorm, a hidden GELU layer, then a (MoE) linear output."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, experts: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU())
        self.out = MoELinear(hidden, out_dim, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class FaceAnalysisModel(nn.Module):
    """Face images -> a dict of head outputs (see the module docstring).

    Args:
        encoder: the ViT (patch tokens and pooled features).
        heads: which heads to build (a subset of :data:`HEADS`).
        dim: embedding width.
        hidden_dim: hidden width of the pooled heads and the embedding head.
        experts: Mixture-of-Experts size of the output layers (1: plain linear).
        au_dim: width of each AU's local feature in the Local AU Features Module.
        normalized: also take the identity-normalised crop (a second encoder pass whose
            features are concatenated to the original's; ``forward(x, x_norm)``).

    Raises:
        ConfigError: an unknown or repeated head, or no head.
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        heads: tuple[str, ...] = HEADS,
        *,
        dim: int = 16,
        hidden_dim: int = 256,
        experts: int = 1,
        au_dim: int = 32,
        normalized: bool = False,
    ) -> None:
        super().__init__()
        heads = tuple(heads)
        bad = [h for h in heads if h not in HEADS]
        if bad or not heads or len(set(heads)) != len(heads):
            raise ConfigError(
                f"analysis heads must be distinct names of {', '.join(HEADS)}; got {list(heads)}"
            )
        self.encoder = encoder
        self.heads = tuple(h for h in HEADS if h in heads)
        self.normalized = bool(normalized)
        c = encoder.embed_dim * (2 if self.normalized else 1)
        self.head = EmbeddingHead(c, dim, hidden_dim) if "embedding" in heads else None
        self.emotion = _PooledHead(c, len(EMOTIONS), hidden_dim, experts) if (
            "emotion" in heads) else None  # fmt: skip
        self.va = _PooledHead(c, 2, hidden_dim, experts) if "va" in heads else None
        self.blendshapes = _PooledHead(c, len(ARKIT_NAMES), hidden_dim, experts) if (
            "blendshapes" in heads) else None  # fmt: skip
        self.aus = LocalAUFeatures(c, len(HEAD_AUS), au_dim, experts) if "aus" in heads else None

    def forward(
        self, x: torch.Tensor, x_norm: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Returns the heads' outputs of (B, 3, H, W) normalised faces: ``embedding`` (B, dim),
        ``emotion`` (B, 8) logits, ``va`` (B, 2), ``blendshapes`` (B, 52), ``au_logits`` and
        ``au_intensity`` (B, 20); only the built heads' keys.

        Args:
            x: (B, 3, H, W) face crops, normalised with the card's mean/std.
            x_norm: with ``normalized=True``, their identity-normalised crops, (B, 3, H, W),
                normalised the same way (resize the normaliser's output to H x W first).

        Raises:
            ConfigError: ``x_norm`` missing for a ``normalized`` model, given to another, or of
                another shape than ``x``.
        """
        if self.normalized != (x_norm is not None):
            need = "needs x_norm, the normalised crops" if self.normalized else "takes no x_norm"
            raise ConfigError(f"FaceAnalysisModel(normalized={self.normalized}) {need}")
        tokens = self.encoder.forward_features(x)
        pooled = self.encoder.pool(tokens)
        if x_norm is not None:
            if x_norm.shape != x.shape:
                raise ConfigError(
                    f"FaceAnalysisModel: x_norm {tuple(x_norm.shape)} differs from x "
                    f"{tuple(x.shape)}"
                )
            tokens_n = self.encoder.forward_features(x_norm)
            pooled = torch.cat([pooled, self.encoder.pool(tokens_n)], dim=-1)
            tokens = torch.cat([tokens, tokens_n], dim=-1)
        out: dict[str, torch.Tensor] = {}
        if self.head is not None:
            out["embedding"] = self.head(pooled)
        if self.emotion is not None:
            out["emotion"] = self.emotion(pooled)
        if self.va is not None:
            out["va"] = torch.tanh(self.va(pooled))
        if self.blendshapes is not None:
            out["blendshapes"] = torch.sigmoid(self.blendshapes(pooled))
        if self.aus is not None:
            out["au_logits"], out["au_intensity"] = self.aus(tokens[:, 1:])
        return out


#: Column slices of :class:`PackedAnalysis`'s output: name -> width, in order.
PACKED_LAYOUT = (
    ("embedding", 16),
    ("emotion", len(EMOTIONS)),
    ("va", 2),
    ("blendshapes", len(ARKIT_NAMES)),
    ("au_probability", len(HEAD_AUS)),
    ("au_intensity", len(HEAD_AUS)),
)


class PackedAnalysis(nn.Module):
    """The analysis model with one (B, 118) output for runtimes that take one tensor (ONNX):
    the columns of :data:`PACKED_LAYOUT`; emotion as probabilities, AUs as occurrence
    probabilities; heads the model lacks are NaN.

    Raises:
        ConfigError: the model's embedding is not 16-d.
    """

    def __init__(self, model: FaceAnalysisModel) -> None:
        super().__init__()
        if model.head is not None and model.head.dim != 16:
            raise ConfigError(f"PackedAnalysis needs a 16-d embedding, got {model.head.dim}")
        if model.normalized:
            raise ConfigError("PackedAnalysis takes one input; a normalized model takes two")
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        b = x.shape[0]
        parts = {
            "embedding": out.get("embedding"),
            "emotion": torch.softmax(out["emotion"], -1) if "emotion" in out else None,
            "va": out.get("va"),
            "blendshapes": out.get("blendshapes"),
            "au_probability": torch.sigmoid(out["au_logits"]) if "au_logits" in out else None,
            "au_intensity": out.get("au_intensity"),
        }
        cols = [
            parts[name] if parts[name] is not None else x.new_full((b, width), float("nan"))
            for name, width in PACKED_LAYOUT
        ]
        return torch.cat([c.float() for c in cols], dim=1)


#: The default card while no analysis weights are shipped (no sha256: ``pretrained=True`` then
#: raises a ModelError naming the training command; random weights are never shipped).
ANALYSIS_CARD = WeightsCard(
    tag="heads",
    input_size=(112, 112),
    mean=FACE_MEAN,
    std=FACE_STD,
    file="analysis_heads.safetensors",
    sha256="",
    architecture="analysis: fxvit_tiny_d6_p16_112 + embedding, emotion, va, blendshapes, aus",
    config={"encoder": "fxvit_tiny_d6_p16_112"},
    license="weights trained on research-use datasets (UTKFace, FER+): research use only",
    notes="UTKFace and FER+ are research-use datasets: these weights are for research use only",
    train_command="facexpr train heads --config configs/heads_tiny.yaml",
)


def shipped_cards() -> tuple[WeightsCard, ...]:
    """Returns the cards of the analysis weights shipped in ``nn/weights/``
    (``analysis_<tag>.json``, written by ``scripts/ship_analysis_weights.py``), default tag
    ``heads`` first.

    Raises:
        ModelError: a card file there is unreadable or invalid (naming it).
    """
    cards = [read_card(p) for p in sorted(WEIGHTS_DIR.glob("analysis_*.json"))]
    if not any(c.tag == ANALYSIS_CARD.tag for c in cards):
        cards.append(ANALYSIS_CARD)
    return tuple(sorted(cards, key=lambda c: c.tag != "heads"))


@register_model("analysis", cards=shipped_cards())
def analysis(
    encoder: str = "fxvit_tiny_d6_p16_112",
    heads: tuple[str, ...] | list[str] = HEADS,
    dim: int = 16,
    hidden_dim: int = 256,
    experts: int = 1,
    au_dim: int = 32,
    img_size: int | None = None,
    depth: int | None = None,
    normalized: bool = False,
) -> FaceAnalysisModel:
    """Returns an untrained analysis model on a registered fxvit encoder (patch-mean pooling);
    ``normalized=True`` also takes the identity-normalised crop (:class:`FaceAnalysisModel`).

    Raises:
        ConfigError: an unknown encoder or head.
    """
    if encoder not in VIT_VARIANTS:
        raise ConfigError(
            f"analysis: unknown encoder '{encoder}' (known: {', '.join(VIT_VARIANTS)})"
        )
    overrides = {k: v for k, v in (("img_size", img_size), ("depth", depth)) if v is not None}
    vit = create_model(encoder, global_pool="avg", **overrides)
    return FaceAnalysisModel(
        vit, tuple(heads), dim=dim, hidden_dim=hidden_dim, experts=experts, au_dim=au_dim,
        normalized=normalized,
    )  # fmt: skip

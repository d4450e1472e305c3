"""The expression encoder: a ViT encoder plus a 16-d embedding head, trained on triplets so that
distances follow expression similarity and ignore identity.

The two-stage recipe of MAE-Face / FreeAvatar (an MAE-pretrained ViT fine-tuned on expression
triplets) with FECNet's compact embedding (Vemulapalli and Agarwal 2019, arXiv:1811.11283).
Registered as ``expression``: ``create_model("expression")`` builds it untrained (the trainer's
starting point), ``create_model("expression", pretrained=True)`` loads the shipped weights offline.

Shipped weights are a pair of files in ``nn/weights/``: ``expression_<tag>.safetensors`` and its
card ``expression_<tag>.json`` (a :class:`WeightsCard` as JSON, written with its sha256 by
``scripts/ship_expression_weights.py RUN_DIR``). Every such card registers its tag at import;
``mae_triplet`` is the default. Until one is shipped, ``pretrained=True`` raises a
:class:`~facexpr.core.errors.ModelError` naming the training commands (the placeholder
:data:`EXPRESSION_CARD` has no sha256; random weights are never shipped).
"""

from __future__ import annotations

import torch
from torch import nn

from facexpr.core.errors import ConfigError
from facexpr.nn.heads.embedding import EmbeddingHead
from facexpr.nn.registry import WEIGHTS_DIR, WeightsCard, create_model, read_card, register_model
from facexpr.nn.vit import FACE_MEAN, FACE_STD, VIT_VARIANTS, VisionTransformer

__all__ = ["DEFAULT_TAG", "EXPRESSION_CARD", "ExpressionEncoder", "shipped_cards"]


class ExpressionEncoder(nn.Module):
    """Face images -> unit-length expression embeddings.

    Args:
        encoder: the ViT (its pooled features feed the head).
        head: the embedding head; its ``in_dim`` must be the encoder's width.
    """

    def __init__(self, encoder: VisionTransformer, head: EmbeddingHead) -> None:
        super().__init__()
        if head.in_dim != encoder.embed_dim:
            raise ConfigError(
                f"ExpressionEncoder: head in_dim {head.in_dim} differs from the encoder's "
                f"width {encoder.embed_dim}"
            )
        self.encoder = encoder
        self.head = head

    @property
    def dim(self) -> int:
        """Embedding width."""
        return self.head.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, dim) float32 unit-length embeddings of (B, 3, H, W) normalised faces."""
        return self.head(self.encoder(x))


EXPRESSION_CARD = WeightsCard(
    tag="mae_triplet",
    input_size=(112, 112),
    mean=FACE_MEAN,
    std=FACE_STD,
    file="expression_mae_triplet.safetensors",
    sha256="",  # set when trained weights are shipped
    architecture=(
        "expression: fxvit_tiny_d6_p16_112 (ViT-Tiny/16 with 6 blocks, 112 px) "
        "+ EmbeddingHead(192, 16, hidden 512)"
    ),
    config={"encoder": "fxvit_tiny_d6_p16_112", "dim": 16, "hidden_dim": 512},
    data=(
        "stage 1 (MAE): UTKFace (research use only, non-commercial) and FER+ (research use; "
        "FER2013 images, terms unclear) faces, plus facexpr's synthetic faces (ICT FaceKit, MIT)",
        "stage 2 (triplets): synthetic rig-weight triplets; MediaPipe Blendshape V2 teacher "
        "triplets (model Apache-2.0) on UTKFace, FER+ and video frames; FER+ vote distributions",
    ),
    license="weights trained on research-use datasets (UTKFace, FER+): research use only",
    source="facexpr train mae, then facexpr train expression",
    notes="UTKFace and FER+ are research-use datasets: these weights are for research use only",
    train_command="facexpr train mae  then  facexpr train expression  (configs/ in the repo)",
)


#: The tag ``create_model("expression", pretrained=True)`` loads.
DEFAULT_TAG = "mae_triplet"


def shipped_cards() -> tuple[WeightsCard, ...]:
    """Returns the cards of the expression weights shipped in ``nn/weights/``, sorted by file.

    Raises:
        ModelError: a card file there is unreadable or invalid (naming it): a packaging error.
    """
    return tuple(read_card(p) for p in sorted(WEIGHTS_DIR.glob("expression_*.json")))


def _cards() -> tuple[WeightsCard, ...]:
    shipped = shipped_cards()
    tags = {c.tag for c in shipped}
    # The default tag first: a shipped card replaces the placeholder of the same tag.
    placeholder = () if EXPRESSION_CARD.tag in tags else (EXPRESSION_CARD,)
    return tuple(sorted((*shipped, *placeholder), key=lambda c: c.tag != DEFAULT_TAG))


@register_model("expression", cards=_cards())
def expression(
    encoder: str = "fxvit_tiny_d6_p16_112",
    dim: int = 16,
    hidden_dim: int | None = 512,
    img_size: int | None = None,
    depth: int | None = None,
) -> ExpressionEncoder:
    """Returns an untrained expression encoder on a registered fxvit encoder.

    The default encoder is the CPU default, ``fxvit_tiny_d6_p16_112`` (why: :mod:`.vit`).

    Args:
        encoder: an fxvit name (see :data:`facexpr.nn.vit.VIT_VARIANTS`).
        dim: embedding width.
        hidden_dim: the head's hidden width (``None``: one linear layer).
        img_size: input side, default the encoder's.
        depth: encoder blocks, default the encoder's.

    Raises:
        ConfigError: an unknown encoder name.
    """
    if encoder not in VIT_VARIANTS:
        raise ConfigError(
            f"expression: unknown encoder '{encoder}' (known: {', '.join(VIT_VARIANTS)})"
        )
    overrides: dict[str, int] = {}
    if img_size is not None:
        overrides["img_size"] = img_size
    if depth is not None:
        overrides["depth"] = depth
    # Mean of the patch tokens, not the class token: MAE trains no loss through the class token,
    # so after stage 1 it barely depends on the face (the first stage-2 run with it stayed at
    # chance, its embeddings collapsed); MAE's own fine-tuning pools the same way.
    vit = create_model(encoder, global_pool="avg", **overrides)
    return ExpressionEncoder(vit, EmbeddingHead(vit.embed_dim, dim, hidden_dim))

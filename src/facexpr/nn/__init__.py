"""facexpr.nn: networks (tensors in, tensors out) and the model registry.

Importing it fills the registry (explicit imports, no lookup by globals): the fxvit encoders
(:mod:`.vit`), the expression encoder (:mod:`.expression`), the animator
(:mod:`.animator`), the neural renderer (:mod:`.neural_renderer`), the identity normaliser
(:mod:`.normalizer`) and the training-time teachers (:mod:`.teachers`). ``nn`` imports
``facexpr.core`` only.
"""

from facexpr.nn import analysis as _analysis  # noqa: F401  (registers "analysis")
from facexpr.nn import animator as _animator  # noqa: F401  (registers "animator")
from facexpr.nn import expression as _expression  # noqa: F401  (registers "expression")
from facexpr.nn import neural_renderer as _neural_renderer  # noqa: F401  (registers it)
from facexpr.nn import normalizer as _normalizer  # noqa: F401  (registers "normalizer")
from facexpr.nn import vit as _vit  # noqa: F401  (registers the fxvit encoders)
from facexpr.nn.analysis import FaceAnalysisModel
from facexpr.nn.animator import MultiAvatarAnimator
from facexpr.nn.expression import ExpressionEncoder
from facexpr.nn.heads import EmbeddingHead
from facexpr.nn.losses import triplet_accuracy, triplet_loss
from facexpr.nn.mae import MaskedAutoencoder
from facexpr.nn.neural_renderer import NeuralRenderer, load_neural_renderer
from facexpr.nn.normalizer import FaceNormalizer
from facexpr.nn.registry import (
    WeightsCard,
    create_model,
    list_models,
    load_weights,
    read_card,
    register_model,
    weights_card,
    weights_to_bytes,
)
from facexpr.nn.teachers import registry as _teachers  # noqa: F401  (registers teachers)
from facexpr.nn.vit import FACE_MEAN, FACE_STD, VisionTransformer

__all__ = [
    "FACE_MEAN",
    "FACE_STD",
    "EmbeddingHead",
    "ExpressionEncoder",
    "FaceAnalysisModel",
    "FaceNormalizer",
    "MaskedAutoencoder",
    "MultiAvatarAnimator",
    "NeuralRenderer",
    "VisionTransformer",
    "WeightsCard",
    "create_model",
    "list_models",
    "load_neural_renderer",
    "load_weights",
    "read_card",
    "register_model",
    "triplet_accuracy",
    "triplet_loss",
    "weights_card",
    "weights_to_bytes",
]

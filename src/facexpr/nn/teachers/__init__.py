"""Ported third-party networks used as training-time teachers (never shipped with facexpr)."""

from facexpr.nn.teachers.mini_xception import (
    FER2013_LABELS,
    INPUT_SIZE,
    MiniXception,
    preprocess,
)
from facexpr.nn.teachers.port import (
    TEACHER_NAME,
    TeacherCard,
    card_dict,
    keras_state_dict,
    load_teacher,
    read_card,
    sha256_file,
    teacher_cache_dir,
)

__all__ = [
    "FER2013_LABELS",
    "INPUT_SIZE",
    "TEACHER_NAME",
    "MiniXception",
    "TeacherCard",
    "card_dict",
    "keras_state_dict",
    "load_teacher",
    "preprocess",
    "read_card",
    "sha256_file",
    "teacher_cache_dir",
]

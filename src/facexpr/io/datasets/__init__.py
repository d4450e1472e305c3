"""Readers of external labelled face datasets, and their conversion to facexpr shards."""

from facexpr.io.datasets.ferplus import (
    EMOTIONS,
    FER2013_EMOTIONS,
    FER2013_TO_FERPLUS,
    VOTE_COLUMNS,
    FerPlus,
    FerPlusSample,
    FerPlusUpstream,
    majority_label,
    soft_label,
    to_shards,
)

__all__ = [
    "EMOTIONS",
    "FER2013_EMOTIONS",
    "FER2013_TO_FERPLUS",
    "VOTE_COLUMNS",
    "FerPlus",
    "FerPlusSample",
    "FerPlusUpstream",
    "majority_label",
    "soft_label",
    "to_shards",
]

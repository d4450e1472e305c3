"""Readers of external labelled face datasets, and their conversion to facexpr shards."""

from facexpr.io.datasets.fec import FecDataset, FecTriplet, read_fec_csv
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
from facexpr.io.datasets.utkface import UTKFace, UTKFaceName, parse_name

__all__ = [
    "EMOTIONS",
    "FER2013_EMOTIONS",
    "FER2013_TO_FERPLUS",
    "VOTE_COLUMNS",
    "FecDataset",
    "FecTriplet",
    "FerPlus",
    "FerPlusSample",
    "FerPlusUpstream",
    "UTKFace",
    "UTKFaceName",
    "majority_label",
    "parse_name",
    "read_fec_csv",
    "soft_label",
    "to_shards",
]

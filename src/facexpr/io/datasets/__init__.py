"""Readers of external labelled face datasets, and their conversion to facexpr shards."""

from facexpr.io.datasets._common import FaceRecord, write_shards
from facexpr.io.datasets.affectnet import AffectNet
from facexpr.io.datasets.affwild2 import AffWild2
from facexpr.io.datasets.bp4d import BP4D
from facexpr.io.datasets.ckplus import CKPlus
from facexpr.io.datasets.disfa import DISFA
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
from facexpr.io.datasets.protocols import Fold, fold_splits, get_fold, published_folds
from facexpr.io.datasets.rafdb import RafDB
from facexpr.io.datasets.utkface import UTKFace, UTKFaceName, parse_name

__all__ = [
    "BP4D",
    "DISFA",
    "EMOTIONS",
    "FER2013_EMOTIONS",
    "FER2013_TO_FERPLUS",
    "VOTE_COLUMNS",
    "AffWild2",
    "AffectNet",
    "CKPlus",
    "FaceRecord",
    "FecDataset",
    "FecTriplet",
    "FerPlus",
    "FerPlusSample",
    "FerPlusUpstream",
    "Fold",
    "RafDB",
    "UTKFace",
    "UTKFaceName",
    "fold_splits",
    "get_fold",
    "majority_label",
    "parse_name",
    "published_folds",
    "read_fec_csv",
    "soft_label",
    "to_shards",
    "write_shards",
]

"""Expression analysis: media in, one table of per-face measurements out."""

from __future__ import annotations

import importlib

__all__ = [
    "Analyzer",
    "AnalyzerOptions",
    "BatchReport",
    "EmbeddingOptions",
    "ExpressionEmbedder",
    "ExpressionTable",
    "FaceHeads",
    "Failure",
    "HeadsOptions",
    "SimilarResult",
    "find_similar",
    "run_batch",
]

_WHERE = {
    "Analyzer": "analyzer",
    "AnalyzerOptions": "analyzer",
    "BatchReport": "batch",
    "Failure": "batch",
    "run_batch": "batch",
    "ExpressionTable": "table",
    "EmbeddingOptions": "embedding",
    "ExpressionEmbedder": "embedding",
    "FaceHeads": "heads",
    "HeadsOptions": "heads",
    "SimilarResult": "similarity",
    "find_similar": "similarity",
}


def __getattr__(name: str):
    # Lazy: the table and writers import without loading the face models' runtime.
    if name in _WHERE:
        return getattr(importlib.import_module(f"facexpr.analyze.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'facexpr.analyze' has no attribute {name!r}")

"""Heads: small networks on top of an encoder's pooled features."""

from facexpr.nn.heads.embedding import EmbeddingHead

__all__ = ["EmbeddingHead"]

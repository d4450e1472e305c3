"""facexpr: fine-grained facial expression measurement and expression-driven avatars.

Quick start::

    import facexpr
    table = facexpr.Analyzer().analyze("video.mp4")   # an ExpressionTable
    table.to_csv("video.csv")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Analyzer", "AnalyzerOptions", "ExpressionTable", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import facexpr` stays cheap and `facexpr.core` users don't load cv2/av.
    if name in ("Analyzer", "AnalyzerOptions", "ExpressionTable"):
        from facexpr import analyze

        return getattr(analyze, name)
    raise AttributeError(f"module 'facexpr' has no attribute {name!r}")

"""The one interface of the analysis stages that follow the face front-end.

The front-end turns a :class:`~facexpr.core.types.Frame` into a
:class:`~facexpr.core.types.FrameResult`; every later stage (the blendshape fitter, the
expression embedding, the learned heads as they land) takes a list of consecutive frame results
and returns them with its fields filled in. The :class:`~facexpr.analyze.analyzer.Analyzer`
keeps them in one list and runs them in order on chunks of frames, so a new head is one file
with this shape, not a new branch in ``Analyzer.iter_results``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from facexpr.core.types import FrameResult

__all__ = ["Stage", "run_stages"]


@runtime_checkable
class Stage(Protocol):
    """A step after the front-end: frame results in, the same frames with more fields out."""

    def process(self, results: list[FrameResult], *, tracked: bool) -> list[FrameResult]:
        """Returns ``results`` (same frames, same faces, same order) with this stage's fields.

        Args:
            results: consecutive frames of one source (a chunk of a video, or photos).
            tracked: faces with the same ``face_id`` across ``results`` are one person.
        """
        ...

    def reset(self) -> None:
        """Forgets what was learnt about the previous source (called before each source)."""
        ...


def run_stages(
    stages: list[Stage], results: list[FrameResult], *, tracked: bool
) -> list[FrameResult]:
    """Returns ``results`` passed through every stage in order."""
    for stage in stages:
        out = stage.process(results, tracked=tracked)
        if len(out) != len(results):  # an internal invariant of every stage
            raise AssertionError(f"{type(stage).__name__} returned {len(out)} of {len(results)}")
        results = out
    return results

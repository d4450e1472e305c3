"""``facexpr analyze --blendshapes mediapipe``: MediaPipe's Blendshape V2 scores of each face.

The baseline users know from MediaPipe's Face Landmarker: Blendshape V2
(:class:`~facexpr.faces.blendshape_model.BlendshapeModel`, the vendored
``face_blendshapes.tflite``) on the 478 Face Mesh V2 points of the front-end, so the front-end
must run ``mesh478``. In IMAGE mode with the short-range detector the scores are MediaPipe's
own (``tests/faces/test_mediapipe_golden.py``: within 0.002); in VIDEO mode they are computed on
the front-end's smoothed landmarks, where MediaPipe scores its unsmoothed ones.

The 52 columns are the ARKit names the fitter writes (:data:`facexpr.core.arkit.ARKIT_NAMES`);
the model has no ``tongueOut`` output, so that column is 0 (a table ``facexpr animate`` can
read; MediaPipe's ``_neutral`` score is dropped, as MediaPipe's docs say to ignore it). The AU
intensity columns come from these scores through the same ARKit-to-FACS table as with ``fit``;
``fit_residual`` is NaN (nothing was fitted).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError
from facexpr.core.types import FaceResult, FrameResult
from facexpr.faces.blendshape_model import BlendshapeModel

__all__ = ["MediaPipeBlendshapes"]

C.register_group("aus", tuple(C.au_intensity_column(a) for a in AU_NAMES))


class MediaPipeBlendshapes:
    """The Blendshape V2 stage: fills ``blendshapes`` and ``aus`` of every face.

    Args:
        num_threads: interpreter CPU threads (>= 1).
    """

    def __init__(self, num_threads: int = 1) -> None:
        self._model = BlendshapeModel(num_threads)

    def reset(self) -> None:
        """Nothing is kept between sources."""

    def process(self, results: list[FrameResult], *, tracked: bool) -> list[FrameResult]:
        """Returns ``results`` with each face's Blendshape V2 scores (frames are independent).

        Raises:
            ConfigError: a face has no iris points (the front-end ran the 468-point model).
        """
        del tracked  # each frame is scored alone
        return [
            dataclasses.replace(r, faces=tuple(self._face(f) for f in r.faces)) for r in results
        ]

    def _face(self, face: FaceResult) -> FaceResult:
        if face.mesh is None or face.iris is None:
            raise ConfigError(
                "--blendshapes mediapipe needs Face Mesh V2's 478 points: run the front-end "
                "with landmark_model='mesh478' (--landmarks mesh478)"
            )
        scores = self._model(np.concatenate([face.mesh, face.iris]))
        arkit = BlendshapeModel.to_arkit(scores, tongue_out=0.0)
        return dataclasses.replace(
            face,
            blendshapes=arkit,
            aus=arkit_to_au(arkit).astype(np.float32),
            fit_residual=float("nan"),
        )

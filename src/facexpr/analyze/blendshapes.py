"""Geometric ARKit blendshapes and AU intensities by fitting the ICT FaceKit model to landmarks.

``facexpr analyze --blendshapes fit``: for every face, the 68 landmarks of the front-end are fitted
with the ICT morphable model (53 expression weights in [0, 1], identity, rigid pose; see
:mod:`facexpr.avatars.fitting`); the weights become the 52 ARKit blendshapes and, through the
documented ARKit-to-FACS table (:mod:`facexpr.avatars.facs`), AU intensities on the 0-5 scale.
In a video, a tracked face's identity is fitted on its first frames and then held fixed, so its
expression is not re-explained as a change of identity; the camera's focal length, unknown for
a user's video, is chosen once per video from a few candidates by the fit residual of the first
frames (one photo alone does not constrain it: photos use a focal length of one image width).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict

import numpy as np

from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.avatars.fitting import FitOptions, LandmarkModel, Points, fit_landmarks
from facexpr.core import columns as C
from facexpr.core.arkit import ict_to_arkit_matrix
from facexpr.core.types import FaceResult, FrameResult

log = logging.getLogger(__name__)

AU_COLUMNS = tuple(C.au_intensity_column(a) for a in AU_NAMES)
# Focal lengths tried for a video, in image widths (fields of view of about 65 to 18 degrees).
FOCAL_CANDIDATES = (0.8, 1.0, 1.4, 2.0, 3.0)
C.register_group("aus", AU_COLUMNS)


def default_landmark_model(points: Points = "mesh468") -> LandmarkModel:
    """Returns the shipped ICT FaceKit model at the vertices matching the front-end's points."""
    from facexpr.avatars.ict import load_ict

    return LandmarkModel.from_rig(load_ict(), points=points)


class BlendshapeFitter:
    """Adds blendshapes, AU intensities and the fit residual to the faces of frame results.

    Args:
        options: fitting options.
        points: fit the 468 mesh points ("mesh468", default: more constraints on eyes, lips and
            cheeks) or the 68 iBUG landmarks ("ibug68").
        model: the landmark model (default: the shipped ICT FaceKit at ``points``).
        device: torch device.
        focal: focal length in px, or "auto" (default): chosen per video among
            :data:`FOCAL_CANDIDATES` by fit residual, one image width for photos.
    """

    def __init__(
        self,
        options: FitOptions | None = None,
        *,
        points: Points = "mesh468",
        model: LandmarkModel | None = None,
        device: str = "cpu",
        focal: float | str = "auto",
    ) -> None:
        self.options = options or FitOptions()
        self.points = points
        self.model = model or default_landmark_model(points)
        self.device = device
        self._to_arkit = ict_to_arkit_matrix()
        self._identity: dict[int, np.ndarray] = {}
        self.focal = focal
        self._video_focal: float | None = None

    @property
    def video_focal(self) -> float | None:
        """The focal length (px) chosen for the current video, or None before its first frames."""
        return self._video_focal

    def reset(self) -> None:
        """Forgets the identities of tracked faces and the focal length (call between videos)."""
        self._identity.clear()
        self._video_focal = None

    def process(self, results: list[FrameResult], *, tracked: bool) -> list[FrameResult]:
        """Returns the results with every face's blendshapes filled in.

        Args:
            results: consecutive frames (a chunk of a video, or independent photos).
            tracked: faces with the same face_id across ``results`` are one person (video).
        """
        groups: dict[object, list[tuple[int, int]]] = defaultdict(list)
        for fi, r in enumerate(results):
            for ki, face in enumerate(r.faces):
                key = face.face_id if tracked else (fi, ki)
                groups[key].append((fi, ki))
        filled: dict[tuple[int, int], FaceResult] = {}
        for key, members in groups.items():
            lm = np.stack([self._points(results[fi].faces[ki]) for fi, ki in members])
            fi0 = members[0][0]
            size = (results[fi0].width, results[fi0].height)
            identity = self._identity.get(key) if tracked else None  # type: ignore[arg-type]
            opts = self.options
            if tracked and len(members) > 1:
                opts = dataclasses.replace(opts, temporal=max(opts.temporal, 1e-3))
            focal = self._focal(lm, size, opts, tracked)
            fit = fit_landmarks(
                lm, size, self.model, opts, identity=identity, device=self.device, focal=focal
            )
            if tracked and identity is None:
                self._identity[key] = fit.identity  # type: ignore[index]
            arkit = fit.weights @ self._to_arkit.T
            aus = arkit_to_au(arkit)
            for j, (fi, ki) in enumerate(members):
                filled[(fi, ki)] = dataclasses.replace(
                    results[fi].faces[ki],
                    blendshapes=arkit[j].astype(np.float32),
                    aus=aus[j].astype(np.float32),
                    fit_residual=float(fit.residual[j]),
                )
        return [
            dataclasses.replace(r, faces=tuple(filled[(fi, ki)] for ki in range(len(r.faces))))
            for fi, r in enumerate(results)
        ]

    def _focal(
        self, lm: np.ndarray, size: tuple[int, int], opts: FitOptions, tracked: bool
    ) -> float:
        if self.focal != "auto":
            return float(self.focal)
        if not tracked:
            return float(size[0])
        if self._video_focal is None:
            sample = lm[:: max(1, len(lm) // 8)]  # a few frames decide
            best = None
            for k in FOCAL_CANDIDATES:
                r = fit_landmarks(sample, size, self.model, opts, focal=k * size[0]).residual
                if best is None or float(r.mean()) < best[0]:
                    best = (float(r.mean()), k * size[0])
            self._video_focal = best[1]
            log.debug("focal length %.0f px chosen for this video", self._video_focal)
        return self._video_focal

    def _points(self, face: FaceResult) -> np.ndarray:
        if self.points == "mesh468":
            if face.mesh is None:
                raise ValueError("mesh468 fitting needs the front-end's mesh")
            return face.mesh[:, :2]
        return face.landmarks

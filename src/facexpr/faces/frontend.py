"""The face front-end: frames in, faces with landmarks, pose and aligned crops out.

IMAGE mode detects every frame (BlazeFace) and runs Face Mesh on each detection. VIDEO and STREAM
modes track: each face's mesh ROI comes from its previous landmarks, the detector runs when a
track is lost or every ``redetect_every`` frames to catch new faces, and landmarks are smoothed
with a One Euro filter.

Two landmark models (``landmark_model``): the 468-point Face Mesh, or Face Mesh V2 (478 points
with the iris, which give the gaze). With V2 the ROIs are the Face Landmarker task's (detection
box x 1.5 unsquared; from landmarks, their axis-aligned extent), and the short-range detector
shrinks the image bilinearly as MediaPipe does, so that IMAGE mode with it reproduces MediaPipe's
Face Landmarker (``tests/faces/test_mediapipe_golden.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.core.types import FaceResult, Frame, FrameResult, RunningMode
from facexpr.faces.align import align_face
from facexpr.faces.detector import Detection, FaceDetector, FaceDetectorOptions, as_rgb
from facexpr.faces.gaze import estimate_gaze
from facexpr.faces.landmarks68 import eye_centres, landmarks68
from facexpr.faces.mesh import (
    LEFT_EYE_OUTER,
    RIGHT_EYE_OUTER,
    FaceMesh,
    MeshModel,
    MeshResult,
    RotatedRect,
    roi_from_detection,
    roi_from_points,
)
from facexpr.faces.pose import head_pose
from facexpr.faces.tracking import OneEuroFilter, Track, greedy_match, iou_matrix

log = logging.getLogger(__name__)

_MESH_NOSE_TIP, _MESH_MOUTH, _MESH_RIGHT_EAR, _MESH_LEFT_EAR = 1, 13, 234, 454
_IRIS_CENTRES = (468, 473)  # Face Mesh V2: eye 0 (image left), eye 1


@dataclass
class FaceFrontEndOptions:
    """Options of :class:`FaceFrontEnd`.

    Attributes:
        mode: IMAGE (independent photos), VIDEO or STREAM (tracking and smoothing).
        detector: ``"full"`` (full-range BlazeFace, best recall) or ``"short"`` (MediaPipe Face
            Landmarker's own detector, fed as MediaPipe feeds it, bilinear; faster, faces
            within ~2 m).
        min_face_score: detector score threshold, in (0, 1); also the Face Mesh presence
            threshold under which a track counts as lost.
        max_faces: most faces per frame (>= 1).
        align_size: side of the aligned crop in px; 0 for no crop (else >= 16).
        smoothing: One Euro landmark smoothing in VIDEO/STREAM modes.
        redetect_every: in VIDEO/STREAM, run the detector every this many frames to catch new
            faces (>= 1); it also runs whenever a track is lost or none exists.
        new_track_score: in VIDEO/STREAM, the detector score and the mesh presence a detection
            needs to start a new track, in [min_face_score, 1). Stricter than ``min_face_score``
            because a false track, once started, is kept alive by the mesh: lettering in
            ``no_face.mp4`` scores up to 0.70 as a detection and 0.61 as Face Mesh V2 presence;
            real faces in our fixture videos score 0.74-0.95 and >= 0.91 (presence, both models).
        max_misses: frames a track survives without a face before it is dropped (>= 0).
        num_threads: interpreter CPU threads (>= 1).
        min_face_size: faces whose detector box is narrower than this, px, are ignored (>= 0).
        aligned: inputs are already face crops (one roughly upright face filling the image, as
            in FER+ or AffectNet crops): detection is skipped, the mesh runs on the whole image
            and the face is reported with its mesh presence as confidence, so tiny crops (48 px)
            that a detector would miss still get landmarks.
        pose: compute the head pose.
    """

    mode: RunningMode = RunningMode.IMAGE
    detector: Literal["full", "short"] = "full"
    min_face_score: float = 0.5
    max_faces: int = 10
    align_size: int = 224
    smoothing: bool = True
    redetect_every: int = 10
    new_track_score: float = 0.7
    max_misses: int = 3
    num_threads: int = 1
    min_face_size: float = 0.0
    pose: bool = True
    aligned: bool = False
    landmark_model: MeshModel = "mesh478"

    def __post_init__(self) -> None:
        name = "FaceFrontEndOptions"
        if self.landmark_model not in ("mesh468", "mesh478"):
            raise ConfigError(
                f"{name}.landmark_model: {self.landmark_model!r} is not 'mesh468' or 'mesh478'"
            )
        if not isinstance(self.mode, RunningMode):
            raise ConfigError(f"{name}.mode: {self.mode!r} is not a RunningMode")
        if self.detector not in ("full", "short"):
            raise ConfigError(f"{name}.detector: {self.detector!r} is not 'full' or 'short'")
        if not 0.0 < self.min_face_score < 1.0:
            raise ConfigError(f"{name}.min_face_score: {self.min_face_score} not in (0, 1)")
        if self.max_faces < 1:
            raise ConfigError(f"{name}.max_faces: {self.max_faces} < 1")
        if self.align_size != 0 and self.align_size < 16:
            raise ConfigError(f"{name}.align_size: {self.align_size} must be 0 or >= 16")
        if not self.min_face_score <= self.new_track_score < 1.0:
            raise ConfigError(
                f"{name}.new_track_score: {self.new_track_score} not in "
                f"[min_face_score={self.min_face_score}, 1)"
            )
        if self.redetect_every < 1:
            raise ConfigError(f"{name}.redetect_every: {self.redetect_every} < 1")
        if self.max_misses < 0:
            raise ConfigError(f"{name}.max_misses: {self.max_misses} < 0")
        if self.num_threads < 1:
            raise ConfigError(f"{name}.num_threads: {self.num_threads} < 1")
        if self.min_face_size < 0:
            raise ConfigError(f"{name}.min_face_size: {self.min_face_size} < 0")


class FaceFrontEnd:
    """Finds faces in frames and measures them.

    Output per face (:class:`~facexpr.core.types.FaceResult`): ``box`` is the extent of the
    mesh points (tighter and steadier than the detector box, and defined on tracked frames where
    the detector does not run); ``score`` the detector score of the detection that started or last
    refreshed the face; ``confidence`` the Face Mesh presence probability; ``landmarks`` the 68
    iBUG points; ``mesh`` the 468x3 mesh; ``keypoints`` the detector keypoints in IMAGE mode, and
    in VIDEO/STREAM the same six points taken from the mesh (eye centres, nose tip vertex 1, mouth
    vertex 13, ear vertices 234 and 454); ``pose``; ``aligned`` and ``align_matrix``; with
    ``mesh478`` also ``iris`` (points 468-477) and ``gaze``.

    Args:
        options: front-end options; defaults to ``FaceFrontEndOptions()``.
    """

    def __init__(self, options: FaceFrontEndOptions | None = None) -> None:
        self.options = options or FaceFrontEndOptions()
        o = self.options
        self._detector = FaceDetector(
            FaceDetectorOptions(
                model=o.detector,
                min_score=o.min_face_score,
                num_threads=o.num_threads,
                max_faces=max(o.max_faces * 2, 10),
                # The short-range model is the Face Landmarker's own detector: it is fed as
                # MediaPipe feeds it. The full-range one keeps the area resize its recall
                # figures were measured with.
                resize="bilinear" if o.detector == "short" else "area",
            )
        )
        self._mesh = FaceMesh(o.num_threads, o.landmark_model)
        # The Face Landmarker task's ROIs with V2 (MediaPipe's output is reproduced); the legacy
        # Face Mesh graph's squared detection ROI and our rotated-frame extent with 468 points.
        self._mp_rois = o.landmark_model == "mesh478"
        self._closed = False
        self.reset()

    def reset(self) -> None:
        """Forgets all tracks (call before a new video); ids restart at 0."""
        self._tracks: list[Track] = []
        self._next_id = 0
        self._frames = 0
        self._last_t = -np.inf

    def close(self) -> None:
        """Releases the models; the front-end cannot be used afterwards."""
        self._detector.close()
        self._mesh.close()
        self._closed = True

    def __enter__(self) -> FaceFrontEnd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, frame: Frame) -> FrameResult:
        """Returns the faces of ``frame``, ordered by face_id.

        Raises:
            InputError: if the front-end is closed or the frame is not an image.
        """
        if self._closed:
            raise InputError(frame.source or None, "FaceFrontEnd.process called after close()")
        image = as_rgb(frame.image)
        if self.options.aligned:
            faces = self._process_aligned(image)
        elif self.options.mode is RunningMode.IMAGE:
            faces = self._process_image(image)
        else:
            faces = self._process_video(image, frame)
        return FrameResult(
            source=frame.source,
            index=frame.index,
            timestamp=frame.timestamp,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            faces=tuple(faces),
        )

    # IMAGE mode -----------------------------------------------------------------------------

    def _detect(self, image: np.ndarray) -> list[Detection]:
        dets = self._detector.detect(image)
        m = self.options.min_face_size
        return [d for d in dets if d.box[2] - d.box[0] >= m]

    def _process_image(self, image: np.ndarray) -> list[FaceResult]:
        found = []
        for det in self._detect(image):
            res = self._mesh.run(image, self._det_roi(det))
            if res.presence >= self.options.min_face_score:
                found.append((det, res))
        found = _dedupe(found)[: self.options.max_faces]
        boxes = [_extent(res.landmarks) for _, res in found]
        order = sorted(
            range(len(found)),
            key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]),
        )
        return [
            self._face(
                image,
                found[i][1].landmarks,
                boxes[i],
                found[i][0].score,
                found[i][1].presence,
                rank,
                found[i][0].keypoints,
            )
            for rank, i in enumerate(order)
        ]

    def _process_aligned(self, image: np.ndarray) -> list[FaceResult]:
        h, w = image.shape[:2]
        # Face Mesh expects the face to fill ~2/3 of its square ROI (detector box x 1.5); a tight
        # crop is the face, so the ROI is the crop enlarged by the same margin.
        roi = RotatedRect(np.array([w / 2, h / 2], np.float32), 1.5 * max(w, h) / 1.25, 0.0)
        res = self._mesh.run(image, roi)
        box = _extent(res.landmarks)
        return [self._face(image, res.landmarks, box, 1.0, res.presence, 0, None)]

    # VIDEO / STREAM mode --------------------------------------------------------------------

    def _process_video(self, image: np.ndarray, frame: Frame) -> list[FaceResult]:
        o = self.options
        t = float(frame.timestamp)
        if not t > self._last_t:  # missing or repeated timestamps: assume 30 frames/s
            t = self._last_t + 1.0 / 30 if np.isfinite(self._last_t) else 0.0
        self._last_t = t
        hits: dict[int, MeshResult] = {}
        lost = False
        for tr in self._tracks:
            res = self._mesh.run(image, tr.roi)
            if res.presence >= o.min_face_score:
                hits[tr.face_id] = res
                tr.misses = 0
            else:
                tr.misses += 1
                lost = True
        need_detect = lost or not self._tracks or self._frames % o.redetect_every == 0
        self._frames += 1
        if need_detect:
            self._associate(image, hits)
        self._tracks = [tr for tr in self._tracks if tr.misses <= o.max_misses]
        self._drop_duplicates(hits)
        faces = []
        for tr in self._tracks:
            res = hits.get(tr.face_id)
            if res is None:
                continue
            raw = res.landmarks
            tr.roi = self._next_roi(raw)
            tr.box = _extent(raw)
            mesh = raw
            if tr.filter is not None:
                scale = float(max(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1], 1.0))
                mesh = tr.filter(raw, t, scale)
            faces.append(
                self._face(image, mesh, _extent(mesh), tr.score, res.presence, tr.face_id, None)
            )
        return faces

    def _associate(self, image: np.ndarray, hits: dict[int, MeshResult]) -> None:
        """Matches detections to tracks; refreshes lost tracks, starts tracks for new faces."""
        dets = self._detect(image)
        if not dets:
            return
        track_boxes = np.zeros((len(self._tracks), 4), np.float32)
        for i, tr in enumerate(self._tracks):
            if tr.face_id in hits:
                track_boxes[i] = _extent(hits[tr.face_id].landmarks)
            else:
                # The ROI is 1.5x the face: shrink it about its centre to compare like with like.
                c, h = tr.roi.center, tr.roi.size / 3
                track_boxes[i] = [c[0] - h, c[1] - h, c[0] + h, c[1] + h]
        det_boxes = np.array([d.box for d in dets])
        pairs = greedy_match(iou_matrix(track_boxes, det_boxes), 0.2)
        matched = set()
        for ti, di in pairs:
            matched.add(di)
            tr, det = self._tracks[ti], dets[di]
            tr.score, tr.keypoints = det.score, det.keypoints
            if tr.face_id not in hits:  # re-acquire a lost track from its detection
                res = self._mesh.run(image, self._det_roi(det))
                if res.presence >= self.options.min_face_score:
                    hits[tr.face_id] = res
                    tr.misses = 0
        for di, det in enumerate(dets):
            if di in matched or len(self._tracks) >= self.options.max_faces:
                continue
            if det.score < self.options.new_track_score:
                continue
            res = self._mesh.run(image, self._det_roi(det))
            if res.presence < self.options.new_track_score:
                continue
            box = _extent(res.landmarks)
            if any(
                iou_matrix(box[None], b[None])[0, 0] > 0.3
                for b in (_extent(h.landmarks) for h in hits.values())
            ):
                continue
            tr = Track(
                face_id=self._next_id,
                roi=res.roi,
                score=det.score,
                keypoints=det.keypoints,
                filter=OneEuroFilter() if self.options.smoothing else None,
                box=box,
            )
            self._next_id += 1
            self._tracks.append(tr)
            hits[tr.face_id] = res
            log.debug("new face track %d at %s", tr.face_id, np.round(box))

    def _drop_duplicates(self, hits: dict[int, MeshResult]) -> None:
        """Drops the younger of two tracks that converged onto the same face."""
        live = [tr for tr in self._tracks if tr.face_id in hits]
        boxes = np.array([_extent(hits[tr.face_id].landmarks) for tr in live]).reshape(-1, 4)
        iou = iou_matrix(boxes, boxes)
        drop = set()
        for i in range(len(live)):
            for j in range(i + 1, len(live)):
                if iou[i, j] > 0.5:
                    drop.add(max(live[i].face_id, live[j].face_id))
        if drop:
            self._tracks = [tr for tr in self._tracks if tr.face_id not in drop]

    # Shared ---------------------------------------------------------------------------------

    def _det_roi(self, det: Detection) -> RotatedRect:
        return roi_from_detection(det.box, det.keypoints, square=not self._mp_rois)

    def _next_roi(self, points: np.ndarray) -> RotatedRect:
        return roi_from_points(
            points[:, :2],
            points[RIGHT_EYE_OUTER, :2],
            points[LEFT_EYE_OUTER, :2],
            extent="axis" if self._mp_rois else "rotated",
        )

    def _face(
        self,
        image: np.ndarray,
        mesh: np.ndarray,
        box: np.ndarray,
        score: float,
        presence: float,
        face_id: int,
        keypoints: np.ndarray | None,
    ) -> FaceResult:
        points = mesh
        mesh, iris = points[:468], (points[468:] if len(points) > 468 else None)
        lm = landmarks68(mesh)
        if keypoints is None:
            er, el = eye_centres(lm)
            keypoints = np.stack(
                [er, el]
                + [
                    mesh[i, :2]
                    for i in (_MESH_NOSE_TIP, _MESH_MOUTH, _MESH_RIGHT_EAR, _MESH_LEFT_EAR)
                ]
            ).astype(np.float32)
        h, w = image.shape[:2]
        pose = head_pose(lm, w, h) if self.options.pose else None
        gaze = None
        if iris is not None and pose is not None:
            gaze = estimate_gaze(points[list(_IRIS_CENTRES)], pose, w, h, lm)
        aligned = matrix = None
        if self.options.align_size:
            aligned, matrix = align_face(image, lm, self.options.align_size)
        return FaceResult(
            box=box,
            score=float(score),
            landmarks=lm,
            confidence=float(presence),
            face_id=face_id,
            mesh=mesh.astype(np.float32, copy=False),
            keypoints=keypoints,
            pose=pose,
            aligned=aligned,
            align_matrix=matrix,
            iris=None if iris is None else iris.astype(np.float32, copy=False),
            gaze=gaze,
        )


def _extent(mesh: np.ndarray) -> np.ndarray:
    """Returns the (4,) float32 xyxy box of the mesh's x, y."""
    xy = mesh[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)


def _dedupe(found: list[tuple[Detection, MeshResult]]) -> list[tuple[Detection, MeshResult]]:
    """Drops meshes overlapping a better-scored one by IoU > 0.5 (two detections, one face)."""
    keep: list[tuple[Detection, MeshResult]] = []
    for det, res in sorted(found, key=lambda p: -p[0].score):
        b = _extent(res.landmarks)[None]
        if all(iou_matrix(b, _extent(r.landmarks)[None])[0, 0] <= 0.5 for _, r in keep):
            keep.append((det, res))
    return keep

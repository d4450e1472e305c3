"""Capture of a real person as a textured ICT FaceKit avatar, from a photo or a video.

The front-end finds the face and its 468 mesh points; the landmark fitter
(:mod:`facexpr.avatars.fitting`) solves the ICT identity, pose and expression of each frame; the
fitted mesh, posed in the frame's camera, unwraps the visible pixels into the model's UV space
(:func:`facexpr.avatars.texture.unwrap`: depth test, facing angle, cosine weights, the face's
landmark hull as a mask so hair and background never paint the head). Of a video, near-neutral
frontal frames are chosen by the fit (smallest expression weights, smallest angle to the camera)
and merged by visibility weight. What no frame shows is filled (mirror, skin tone of the cheeks,
feathered seams), and the avatar's geometry is the fitted identity at zero expression: the
source's own expression is not kept, the rig's 53 channels animate it.

It lives in ``synth`` because it needs both ``faces`` (the front-end) and ``avatars`` (the
fitter, the texture): the synthetic engine renders these identities with known expressions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.avatars.avatar import Avatar, Look
from facexpr.avatars.fitting import FitOptions, LandmarkModel, fit_landmarks, interocular
from facexpr.avatars.ict import load_ict
from facexpr.avatars.texture import (
    Camera,
    TextureOptions,
    TextureSample,
    atlas_rig,
    delight,
    fill_texture,
    merge,
    unwrap,
)
from facexpr.avatars.warp import SourceView
from facexpr.core.errors import ConfigError, DamagedInputError, InputError
from facexpr.core.types import FaceResult, Frame, RunningMode

log = logging.getLogger(__name__)

__all__ = ["CaptureOptions", "CaptureResult", "capture", "capture_frames"]

_FLIP = np.diag([1.0, -1.0, -1.0])
# Gaze moves the eyeballs only: it says nothing about how neutral the skin is.
_GAZE = ("eyeLook",)
# Face Mesh contours of the mouth opening and the eye openings: pixels inside show teeth, tongue,
# sclera and iris, which are the model's own materials, never skin.
_INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178,
               88, 95)  # fmt: skip
_RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
_LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
_CHEEKS = (50, 280)  # Face Mesh points at the middle of each cheek


@dataclass
class CaptureOptions:
    """Options of :func:`capture`.

    Attributes:
        texture: texture size and unwrapping (see :class:`TextureOptions`).
        fit: the landmark fitter's options.
        frames: most video frames merged into the texture (>= 1).
        sample_frames: video frames looked at, spread evenly over the video (>= frames).
        max_angle: degrees between the face's forward direction and the camera beyond which a
            frame is a profile view and not used (in (0, 90)).
        min_eye_distance: px between the eye centres below which a face is too small (>= 4).
        several: with several faces in a frame, capture the ``"largest"`` (and say so in the
            result's notes) or ``"refuse"`` the input.
        min_face_score: the detector's score threshold, in (0, 1).
        name: the avatar's name.
    """

    texture: TextureOptions = field(default_factory=TextureOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    frames: int = 5
    sample_frames: int = 48
    max_angle: float = 40.0
    min_eye_distance: float = 30.0
    several: Literal["largest", "refuse"] = "largest"
    min_face_score: float = 0.5
    name: str = "captured"

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError(f"CaptureOptions.frames must be >= 1, got {self.frames}")
        if self.sample_frames < self.frames:
            raise ConfigError(
                f"CaptureOptions.sample_frames ({self.sample_frames}) must be >= frames "
                f"({self.frames})"
            )
        if not 0.0 < self.max_angle < 90.0:
            raise ConfigError(f"CaptureOptions.max_angle must be in (0, 90), got {self.max_angle}")
        if self.min_eye_distance < 4:
            raise ConfigError(
                f"CaptureOptions.min_eye_distance must be >= 4 px, got {self.min_eye_distance}"
            )
        if self.several not in ("largest", "refuse"):
            raise ConfigError(
                f"CaptureOptions.several must be 'largest' or 'refuse', got {self.several!r}"
            )
        if not 0.0 < self.min_face_score < 1.0:
            raise ConfigError(
                f"CaptureOptions.min_face_score must be in (0, 1), got {self.min_face_score}"
            )
        if not self.name:
            raise ConfigError("CaptureOptions.name must not be empty")


@dataclass(frozen=True)
class CaptureResult:
    """A captured avatar and how it was made.

    Attributes:
        avatar: the textured avatar (atlas rig of :func:`facexpr.avatars.texture.atlas_rig`,
            the fitted identity, the (S, 2S, 3) texture).
        frames: indices of the frames merged (0 for a photo).
        weights: (T, 53) float32 fitted expression weights of those frames (not kept in the
            avatar: its geometry is neutral).
        angles: (T,) float32 degrees between each merged face's forward direction and the camera.
        residual: (T,) float32 fit residuals (mean landmark error / inter-ocular distance).
        tone: (3,) float32 RGB in [0, 1], the skin tone used to fill unseen skin.
        seen_fraction: fraction of the skin texels some merged frame showed.
        seen: (S, 2S) float32 >= 0, the summed visibility weights of the texels (0: filled).
        faces_found: the most faces found in one frame looked at.
        frames_looked_at: frames the front-end ran on.
        notes: sentences for the user (several faces, frames dropped ...).
        view: the best merged frame as a :class:`~facexpr.avatars.warp.SourceView` (the face's
            crop, camera and fitted pose), to show the person with other expressions in it.
    """

    avatar: Avatar
    frames: tuple[int, ...]
    weights: np.ndarray
    angles: np.ndarray
    residual: np.ndarray
    tone: np.ndarray
    seen_fraction: float
    seen: np.ndarray
    faces_found: int
    frames_looked_at: int
    notes: tuple[str, ...]
    view: SourceView


def _area(face: FaceResult) -> float:
    b = face.box
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))


def _video_frames(path: Path, n: int) -> Iterator[Frame]:
    """Yields about ``n`` frames spread evenly over the video."""
    from facexpr.io.video import VideoReader, probe_video

    info = probe_video(path)
    fps = None
    if info.fps > 0 and info.duration > 0:
        fps = min(info.fps, max(n / info.duration, 1e-3))
    every = 1 if fps is not None or info.n_frames <= n else max(1, info.n_frames // n)
    with VideoReader(path, fps=fps, every=every) as reader:
        for k, frame in enumerate(reader):
            if k >= n:
                break
            yield frame


def _face_angle(rotation: np.ndarray, translation: np.ndarray) -> float:
    """Returns degrees between the fitted face's forward direction and the direction to the
    camera."""
    import cv2

    rm, _ = cv2.Rodrigues(np.asarray(rotation, np.float64))
    forward = rm @ _FLIP @ np.array([0.0, 0.0, 1.0])
    to_cam = -np.asarray(translation, np.float64)
    cos = forward @ to_cam / max(float(np.linalg.norm(to_cam)), 1e-9)
    return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def _face_mask(image: np.ndarray, points: np.ndarray, feather: float) -> np.ndarray:
    """Returns (H, W) float32 in [0, 1]: the pixels that show the face's skin.

    1 inside the mesh points' convex hull, fading to 0 over ``feather`` px at its edge and around
    the mouth and eye openings (teeth, tongue, sclera and iris are the model's own materials).
    In the outer band of the hull (three feathers wide), where hair and background can lie
    inside the face oval, pixels far in colour (CIE Lab) from the cheeks' skin count less;
    inside it only clear colours of another hue than skin (blue, green) are dropped, so brows,
    lips and beards stay.
    """
    import cv2

    shape = image.shape[:2]
    m = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points * 4).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 255, shift=2)
    holes = [np.round(points[list(ids)] * 4).astype(np.int32) for ids in
             (_INNER_LIPS, _RIGHT_EYE, _LEFT_EYE)]  # fmt: skip
    edge = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    cv2.fillPoly(m, holes, 0, shift=2)
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    mask = np.clip(dist / max(feather, 1.0), 0.0, 1.0)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    r = max(2, round(feather))
    # The cheek deeper inside the oval: on a turned face the far one may lie on the background.
    h, w = shape
    xy = [np.clip(np.round(points[k]).astype(int), 0, [w - 1, h - 1]) for k in _CHEEKS]
    x, y = max(xy, key=lambda p: edge[p[1], p[0]])
    patch = lab[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].reshape(-1, 3)
    if len(patch):
        skin = np.median(patch, axis=0)
        d = np.linalg.norm(lab - skin, axis=-1)
        skin_like = 1.0 / (1.0 + (d / 30.0) ** 4)
        band = np.clip(1.0 - edge / (3.0 * max(feather, 1.0)), 0.0, 1.0)
        mask = mask * (1.0 - band * (1.0 - skin_like))
        # Anywhere in the oval: a clear colour of another hue than skin (a blue or green
        # background behind a turned face's far side, where the model overhangs the real
        # silhouette) is never skin. Dark or grey hair and brows have little chroma: kept.
        ab = lab[..., 1:] - 128.0
        chroma = np.linalg.norm(ab, axis=-1)
        hue = np.arctan2(ab[..., 1], ab[..., 0])
        skin_hue = math.atan2(float(skin[2]) - 128.0, float(skin[1]) - 128.0)
        dh = np.degrees(np.abs(np.angle(np.exp(1j * (hue - skin_hue)))))
        # Thresholds well clear of JPEG's 8x8 chroma blocks on low-chroma skin.
        other = np.clip((dh - 70.0) / 30.0, 0.0, 1.0) * np.clip((chroma - 12.0) / 8.0, 0.0, 1.0)
        mask = mask * (1.0 - other)
    return mask.astype(np.float32)


def _crop(image: np.ndarray, points: np.ndarray, limit: int) -> tuple[np.ndarray, tuple]:
    """Returns the image around the face (the points' box grown by 60%), scaled so its longer
    side is at most ``limit`` px, and (x0, y0, width, height, scale)."""
    import cv2

    lo, hi = points.min(axis=0), points.max(axis=0)
    c, half = (lo + hi) / 2, (hi - lo).max() * 0.8
    h, w = image.shape[:2]
    x0, y0 = int(max(0, math.floor(c[0] - half))), int(max(0, math.floor(c[1] - half)))
    x1, y1 = int(min(w, math.ceil(c[0] + half))), int(min(h, math.ceil(c[1] + half)))
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, limit / max(crop.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop), (x0, y0, x1 - x0, y1 - y0, scale)


def capture_frames(
    frames: list[Frame],
    source: str | Path,
    options: CaptureOptions | None = None,
    *,
    notes: tuple[str, ...] = (),
) -> CaptureResult:
    """Returns the avatar captured from decoded frames of one person (a photo: one frame).

    Args:
        frames: the frames (all the same size).
        source: the file they came from (named in errors).
        options: see :class:`CaptureOptions`.
        notes: sentences about the input to pass on in the result's notes.

    Raises:
        InputError: no face, several faces with ``several="refuse"``, every face too small or a
            profile view.
    """
    from facexpr.faces.frontend import FaceFrontEnd, FaceFrontEndOptions

    o = options or CaptureOptions()
    src = Path(source)
    where = "" if len(frames) == 1 else f" in the {len(frames)} frames looked at"
    notes = list(notes)
    found: list[tuple[Frame, FaceResult]] = []
    most = 0
    fe_opts = FaceFrontEndOptions(
        mode=RunningMode.IMAGE, align_size=0, pose=False, min_face_score=o.min_face_score
    )
    with FaceFrontEnd(fe_opts) as front:
        for fr in frames:
            faces = [f for f in front.process(fr).faces if f.mesh is not None]
            most = max(most, len(faces))
            if not faces:
                continue
            if len(faces) > 1 and o.several == "refuse":
                at = "" if len(frames) == 1 else f" (frame {fr.index})"
                raise InputError(
                    src, f"{len(faces)} faces found{at}; capture takes one person (without "
                    "--single-face the largest face is captured)",
                )  # fmt: skip
            found.append((fr, max(faces, key=_area)))
    if not found:
        raise InputError(src, f"no face found{where}")
    if most > 1:
        notes.append(f"{most} faces found; the largest was captured")
    eyes = interocular(np.stack([f.landmarks for _, f in found]))
    big = eyes >= o.min_eye_distance
    if not big.any():
        raise InputError(
            src, f"the face is too small: {float(eyes.max()):.0f} px between the eye centres"
            f"{where}, capture needs at least {o.min_eye_distance:.0f} (use a larger photo or a "
            "closer crop)",
        )  # fmt: skip
    if not big.all():
        notes.append(f"{int((~big).sum())} frames with a face too small were not used")
    found = [x for x, ok in zip(found, big, strict=True) if ok]

    ict = load_ict()
    model = LandmarkModel.from_rig(ict, points="mesh468")
    lm = np.stack([f.mesh[:, :2] for _, f in found]).astype(np.float32)
    height, width = found[0][0].image.shape[:2]
    fit = fit_landmarks(lm, (width, height), model, o.fit, focal=float(width))
    angles = np.array(
        [_face_angle(r, t) for r, t in zip(fit.rotation, fit.translation, strict=True)]
    )
    frontal = angles <= o.max_angle
    if not frontal.any():
        raise InputError(
            src, f"the face is turned {float(angles.min()):.0f} degrees from the camera (a "
            f"profile view){where}; capture needs a face within {o.max_angle:.0f} degrees of "
            "frontal",
        )  # fmt: skip
    expr = [i for i, n in enumerate(fit.channel_names) if not n.startswith(_GAZE)]
    conf = np.array([f.confidence for _, f in found], np.float64)
    # Near-neutral (expression weights), frontal (1 per 10 degrees), well fitted and clearly a
    # face (occlusions raise the residual and lower the mesh's confidence).
    score = (
        fit.weights[:, expr].sum(axis=1) + angles / 10.0 + 20.0 * fit.residual + 2.0 * (1 - conf)
    )
    score = np.where(frontal & fit.reliable, score, score + 1e3)
    if not (frontal & fit.reliable).any():
        notes.append("no frame fits the model well (residual above the limit); the best was used")
    chosen = [int(i) for i in np.argsort(score, kind="stable")[: o.frames] if frontal[i]]
    if len(frames) > 1:
        notes.append(
            f"{len(chosen)} of {len(found)} frames with a face merged (near-neutral, frontal)"
        )

    import cv2

    rig = atlas_rig(ict)
    samples: list[TextureSample] = []
    limit = max(512, 2 * o.texture.size)
    for i in chosen:
        fr, face = found[i]
        rm, _ = cv2.Rodrigues(fit.rotation[i].astype(np.float64))
        verts = rig.evaluate(fit.weights[i], fit.identity).astype(np.float64)
        cam_v = (verts @ _FLIP.T) @ rm.T + fit.translation[i].astype(np.float64)
        crop, (x0, y0, cw, ch, scale) = _crop(fr.image, face.mesh[:, :2], limit)
        f = float(width)
        cam = Camera(f, f, width / 2, height / 2, width, height).crop(x0, y0, cw, ch, scale)
        cam = Camera(cam.fx, cam.fy, cam.cx, cam.cy, crop.shape[1], crop.shape[0])
        pts = (face.mesh[:, :2] - [x0, y0]) * scale
        feather = 0.04 * float(np.ptp(pts[:, 0]))
        mask = _face_mask(crop, pts, feather)
        sample = unwrap(crop, cam_v.astype(np.float32), cam, rig, o.texture, mask=mask)
        light = None
        if o.texture.delight:
            try:
                sample, light = delight(sample)
            except ConfigError as e:  # too little skin seen to fit a light: keep the colours
                log.debug("%s: not de-lit (%s)", src, e)
        samples.append(sample)
        if i == chosen[0]:
            view = SourceView(
                crop, cam, rm @ _FLIP, fit.translation[i].astype(np.float64),
                fit.weights[i].astype(np.float32), mask, light,
            )  # fmt: skip
    sample = merge(samples)
    look = Look(lips=None)
    texture, tone = fill_texture(sample, rig, o.texture, look=look)
    avatar = Avatar(o.name, rig, identity=fit.identity, look=look, texture=texture)
    for n in notes:
        log.info("%s: %s", src, n)
    return CaptureResult(
        avatar=avatar,
        frames=tuple(int(found[i][0].index) for i in chosen),
        weights=fit.weights[chosen].astype(np.float32),
        angles=angles[chosen].astype(np.float32),
        residual=fit.residual[chosen].astype(np.float32),
        tone=tone,
        seen_fraction=sample.seen_fraction,
        seen=sample.weight,
        faces_found=most,
        frames_looked_at=len(frames),
        notes=tuple(notes),
        view=view,
    )


def capture(path: str | Path, options: CaptureOptions | None = None) -> CaptureResult:
    """Returns the textured avatar of the person in a photo or a video.

    Args:
        path: a photo, or a video (of one person; near-neutral frontal frames are merged).
        options: see :class:`CaptureOptions`.

    Raises:
        InputError: the file is missing, not an image or video, or shows no usable face (see
            :func:`capture_frames`).
    """
    from facexpr.io.images import check_input_file, read_image
    from facexpr.io.sources import scan_inputs

    o = options or CaptureOptions()
    p = Path(path)
    check_input_file(p)
    scan = scan_inputs([p])
    if scan.problems:
        raise scan.problems[0]
    kind = scan.sources[0].kind
    if kind == "image":
        frames = [Frame(read_image(p), source=str(p))]
        return capture_frames(frames, p, o)
    frames = []
    damage: tuple[str, ...] = ()
    try:
        frames.extend(_video_frames(p, o.sample_frames))
    except DamagedInputError as e:
        # Every decodable frame was delivered before this: capture from those, and say so.
        damage = (f"damaged video, captured from the decodable frames ({e.problem})",)
    if not frames:
        raise InputError(p, "the video has no decodable frame")
    return capture_frames(frames, p, o, notes=damage)

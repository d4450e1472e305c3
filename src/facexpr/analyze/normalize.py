"""Identity normalisation of real faces: photos, folders and videos -> canonical faces.

The front-end (:mod:`facexpr.faces.frontend`) finds the face and crops it with the same
alignment the normaliser was trained on (:func:`facexpr.faces.align.align_face`, at the
weights' input size); the normaliser (:mod:`facexpr.nn.normalizer`, Norface) redraws that crop as
the canonical face with the same expression. A photo gives one PNG (the normalised face); a video
gives a side-by-side video (aligned input | normalised) of its main face.

A face that cannot be normalised well is refused, naming the file: none found, several (the
largest is used and the notes say so, or ``several="refuse"``), turned too far from the camera
(the pairs are rendered within 30 degrees of yaw), or too small (the crop would be mostly
upsampled blur). A batch writes every good input and reports the others
(:class:`facexpr.analyze.batch.Failure`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, DamagedInputError, InputError, ModelError

log = logging.getLogger(__name__)

__all__ = [
    "NormalizeOptions",
    "NormalizeReport",
    "NormalizedFace",
    "Normalizer",
    "load_normalizer",
    "normalize_inputs",
]

CARD = "normalizer.json"
_TRAIN_HINT = (
    "train them with  facexpr train normalizer --config configs/normalizer_tiny.yaml --out "
    "runs/normalizer_tiny  and pass  --weights runs/normalizer_tiny"
)


@dataclass
class NormalizeOptions:
    """Options of :class:`Normalizer`.

    Attributes:
        weights: a ``facexpr train normalizer`` run folder, or its ``model.safetensors`` (with
            ``normalizer.json`` beside it); None: the shipped weights.
        several: with several faces, normalise the ``"largest"`` (said in the notes) or
            ``"refuse"`` the input.
        max_yaw: degrees of head yaw beyond which a face is a profile view and refused (0, 90).
        min_eye_distance: px between the eye centres, in the source image, under which a face
            is too small (>= 2).
        min_face_score: detector score threshold, in (0, 1).
        num_threads: torch and front-end CPU threads (>= 1).
        batch_size: crops per forward pass (>= 1).
    """

    weights: str | None = None
    several: Literal["largest", "refuse"] = "largest"
    max_yaw: float = 45.0
    min_eye_distance: float = 16.0
    min_face_score: float = 0.5
    num_threads: int = 1
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.several not in ("largest", "refuse"):
            raise ConfigError(
                f"NormalizeOptions.several must be 'largest' or 'refuse', got {self.several!r}"
            )
        if not 0.0 < self.max_yaw < 90.0:
            raise ConfigError(f"NormalizeOptions.max_yaw must be in (0, 90), got {self.max_yaw}")
        if not self.min_eye_distance >= 2.0:
            raise ConfigError(
                f"NormalizeOptions.min_eye_distance must be >= 2 px, got {self.min_eye_distance}"
            )
        if not 0.0 < self.min_face_score < 1.0:
            raise ConfigError(
                f"NormalizeOptions.min_face_score must be in (0, 1), got {self.min_face_score}"
            )
        if self.num_threads < 1 or self.batch_size < 1:
            raise ConfigError("NormalizeOptions: num_threads and batch_size must be >= 1")


@dataclass(frozen=True, slots=True)
class NormalizedFace:
    """One normalised face.

    Attributes:
        aligned: (S, S, 3) uint8 RGB, the front-end's aligned crop of the input face.
        normalized: (S, S, 3) uint8 RGB, the canonical face with its expression.
        box: (4,) float32 xyxy px of the face in the source.
        faces_found: faces in the frame.
    """

    aligned: np.ndarray
    normalized: np.ndarray
    box: np.ndarray
    faces_found: int


@dataclass
class NormalizeReport:
    """What :func:`normalize_inputs` did.

    Attributes:
        written: output files, in input order.
        failures: inputs that failed, with the problem (``.line`` names the file).
        notes: sentences for the user (several faces, frames without a usable face ...).
        faces: faces normalised.
    """

    written: list[Path] = field(default_factory=list)
    failures: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    faces: int = 0


def load_normalizer(weights: str | Path | None):
    """Returns (model in eval mode, input side px) of a run folder, a weights file, or None (the
    shipped weights).

    Raises:
        ModelError: no shipped weights (saying how to train them), or a missing, corrupt or
            mismatched weights file or card (named).
    """
    from facexpr.nn import create_model, load_weights, read_card
    from facexpr.nn.registry import weights_card

    if weights is None:
        card = weights_card("normalizer")
        if not card.sha256 or not card.path().is_file():
            raise ModelError(f"no normaliser weights are shipped yet; {_TRAIN_HINT}")
        model = create_model("normalizer", pretrained=True)
        return model.eval(), int(card.input_size[0])
    path = Path(weights)
    if path.is_dir():
        card_path, file = path / CARD, path / "model.safetensors"
    else:
        card_path, file = path.parent / CARD, path
    if not file.exists():
        raise ModelError(f"{file}: normaliser weights not found; {_TRAIN_HINT}")
    if not card_path.is_file():
        raise ModelError(
            f"{card_path}: not found: the weights need the card a 'facexpr train normalizer' run "
            "writes beside them (it says how to rebuild the network)"
        )
    card = read_card(card_path)
    try:
        model = create_model("normalizer", **dict(card.config))
    except (ConfigError, TypeError) as e:
        raise ModelError(f"{card_path}: the card's config does not build a normaliser ({e})") from e
    same = Path(card.file).resolve() == file.resolve() if card.file else False
    load_weights(model, file, card if same else None)
    return model.eval(), int(card.input_size[0])


def _eyes(landmarks: np.ndarray) -> float:
    from facexpr.faces.landmarks68 import eye_centres

    r, left = eye_centres(np.asarray(landmarks, np.float64))
    return float(np.linalg.norm(left - r))


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


class Normalizer:
    """Faces in images -> normalised faces (module docstring).

    Args:
        options: see :class:`NormalizeOptions`.

    Raises:
        ModelError: see :func:`load_normalizer`.
    """

    def __init__(self, options: NormalizeOptions | None = None) -> None:
        import torch

        self.options = options or NormalizeOptions()
        torch.set_num_threads(self.options.num_threads)
        self.model, self.size = load_normalizer(self.options.weights)
        self._image_front = None  # one IMAGE-mode front-end for every photo, made on first use

    def close(self) -> None:
        """Releases the front-end's interpreters."""
        if self._image_front is not None:
            self._image_front.close()
            self._image_front = None

    def __enter__(self) -> Normalizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def normalize_crops(self, crops: np.ndarray) -> np.ndarray:
        """Returns (N, S, S, 3) uint8 normalised faces of (N, S, S, 3) uint8 aligned crops."""
        import torch

        from facexpr.nn import FACE_MEAN, FACE_STD

        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ConfigError(
                f"normalize_crops: expected (N, {self.size}, {self.size}, 3) uint8 crops, got "
                f"{crops.shape}"
            )
        out = []
        mean = torch.tensor(FACE_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(FACE_STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            for i in range(0, len(crops), self.options.batch_size):
                x = torch.from_numpy(crops[i : i + self.options.batch_size]).permute(0, 3, 1, 2)
                y = self.model((x.float() / 255.0 - mean) / std)
                out.append((y.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.size, self.size, 3), np.uint8)

    def _pick(self, faces: list, where: str, frame: str = "") -> tuple[object, int]:
        """Returns the face to normalise and how many were found, or raises InputError."""
        o = self.options
        if not faces:
            raise InputError(where, f"no face found{frame}")
        if len(faces) > 1 and o.several == "refuse":
            raise InputError(
                where, f"{len(faces)} faces found{frame}; --single-face takes one person "
                "(without it the largest face is normalised)",
            )  # fmt: skip
        face = max(faces, key=lambda f: _area(f.box))
        eyes = _eyes(face.landmarks)
        if eyes < o.min_eye_distance:
            raise InputError(
                where, f"the face is too small{frame}: {eyes:.0f} px between the eye centres, "
                f"normalising needs at least {o.min_eye_distance:.0f} (use a larger photo)",
            )  # fmt: skip
        if face.pose is not None and abs(face.pose.yaw) > o.max_yaw:
            raise InputError(
                where, f"the face is turned {abs(face.pose.yaw):.0f} degrees from the camera (a "
                f"profile view){frame}; normalising needs a face within {o.max_yaw:.0f} degrees "
                "of frontal",
            )  # fmt: skip
        if face.aligned is None:
            raise InputError(where, f"the face could not be aligned{frame}")
        return face, len(faces)

    def _front(self, video: bool):
        from facexpr.core.types import RunningMode
        from facexpr.faces.frontend import FaceFrontEnd, FaceFrontEndOptions

        return FaceFrontEnd(
            FaceFrontEndOptions(
                mode=RunningMode.VIDEO if video else RunningMode.IMAGE,
                align_size=self.size,
                min_face_score=self.options.min_face_score,
                num_threads=self.options.num_threads,
            )
        )

    def normalize_image(self, image: np.ndarray, source: str | Path = "image") -> NormalizedFace:
        """Returns the normalised main face of an (H, W, 3) uint8 RGB image.

        Raises:
            InputError: no face, several with ``several="refuse"``, a profile view or a face too
                small (naming ``source``).
        """
        from facexpr.core.types import Frame

        if self._image_front is None:
            self._image_front = self._front(video=False)
        faces = list(self._image_front.process(Frame(image, source=str(source))).faces)
        face, n = self._pick(faces, str(source))
        out = self.normalize_crops(face.aligned[None])[0]
        return NormalizedFace(face.aligned, out, np.asarray(face.box, np.float32), n)

    def normalize_file(
        self, path: str | Path, out: Path, report: NormalizeReport, kind: str = "image"
    ) -> Path:
        """Normalises one photo (to a PNG) or video (``kind="video"``, to a side-by-side video)
        at ``out``.

        Raises:
            InputError: see :meth:`normalize_image`; a video where no frame has a usable face.
        """
        from facexpr.io.images import read_image, write_image

        path = Path(path)
        if kind == "webcam":
            raise InputError(path, "normalize reads photos and videos, not a webcam")
        if kind == "video":
            return self._normalize_video(path, out, report)
        result = self.normalize_image(read_image(path), path)
        if result.faces_found > 1:
            report.notes.append(
                f"{path}: {result.faces_found} faces found; the largest was normalised"
            )
        write_image(out, result.normalized)
        report.faces += 1
        return out

    def _normalize_video(self, path: Path, out: Path, report: NormalizeReport) -> Path:
        from facexpr.io.video import VideoReader, VideoWriter

        s = self.size
        blank = np.full((s, 2 * s, 3), 127, np.uint8)
        used = skipped = several = 0
        first_problem = ""
        damage: DamagedInputError | None = None
        with VideoReader(path) as reader, self._front(video=True) as front:
            fps = reader.info.fps if reader.info.fps > 0 else 25.0
            writer = VideoWriter(out, fps)
            try:
                frames = iter(reader)
                while True:
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    except DamagedInputError as e:
                        damage = e
                        break
                    faces = list(front.process(frame).faces)
                    try:
                        face, n = self._pick(faces, str(path), f" in frame {frame.index}")
                    except InputError as e:
                        if self.options.several == "refuse" and len(faces) > 1:
                            raise
                        skipped += 1
                        first_problem = first_problem or e.problem
                        writer.write(blank)
                        continue
                    several += n > 1
                    norm = self.normalize_crops(face.aligned[None])[0]
                    writer.write(np.concatenate([face.aligned, norm], axis=1))
                    used += 1
                if used == 0:
                    raise InputError(
                        path, f"no frame has a usable face ({first_problem or 'no frames'})"
                    )
                writer.close()
            except BaseException:
                writer.abort()
                raise
        report.faces += used
        if skipped:
            report.notes.append(
                f"{path}: {skipped} of {used + skipped} frames had no usable face (grey in the "
                f"video), e.g. {first_problem}"
            )
        if several:
            report.notes.append(f"{path}: {several} frames with several faces; the largest used")
        if damage is not None:
            raise DamagedInputError(path, f"{damage.problem}; the decodable frames were written")
        return out


def normalize_inputs(
    inputs: Sequence[str | Path], out_dir: str | Path, options: NormalizeOptions | None = None
) -> NormalizeReport:
    """Normalises every photo and video of ``inputs`` (files, folders, globs) into ``out_dir``:
    ``NAME.png`` per photo, ``NAME.mp4`` (aligned input | normalised) per video; names from
    :func:`facexpr.analyze.batch.output_names`. A bad input is reported, the others written.

    Raises:
        ModelError: the weights cannot be loaded (before any input is read).
        InputError: another run is writing into ``out_dir``.
    """
    from facexpr.analyze.batch import _failure, output_names
    from facexpr.io._files import FolderLock
    from facexpr.io.sources import scan_inputs

    report = NormalizeReport()
    scan = scan_inputs(list(inputs))
    report.failures.extend(_failure(p.path or "input", p.problem) for p in scan.problems)
    out = Path(out_dir)
    names = output_names(scan.sources)
    with Normalizer(options) as norm, FolderLock(out, "facexpr normalize"):
        for source, name in zip(scan.sources, names, strict=True):
            suffix = ".mp4" if source.kind == "video" else ".png"
            target = out / f"{name}{suffix}"
            try:
                report.written.append(norm.normalize_file(source.path, target, report, source.kind))
            except DamagedInputError as e:
                report.written.append(target)
                report.failures.append(_failure(source.path, str(e)))
            except (InputError, ConfigError) as e:
                report.failures.append(_failure(source.path, str(e)))
    return report

"""Building a real-face training set from photos, folders and videos (``facexpr dataset build``).

It lives in ``analyze`` because it is the analysis pipeline (front-end + model fitting) writing
its per-face results as a dataset instead of a table.

The face front-end runs over every input; faces that pass a quality filter (size, sharpness, head
pose, detector score) are kept as aligned crops in the shard format of :mod:`facexpr.io.shards`,
with pseudo-labels from fitting the ICT FaceKit model to their landmarks (52 ARKit blendshapes,
FACS AU intensities 0-5, the fit residual and a reliability flag). A face's subject id is its input
file plus its track id, the best identity proxy without face recognition: frames of one tracked
face never straddle a subject-exclusive split.

A UTKFace root among the inputs (:mod:`facexpr.io.datasets.utkface`) is read in its upstream
layout: its photos are already aligned 200x200 faces, so they run through the front-end's
``aligned`` mode (no detection; the mesh on the whole photo, then the same similarity alignment
as every other face), which gives UTKFace the one framing of the rest of the corpus. Age, gender
and race from the file names are kept as labels for bias checks (absent where a name lacks them);
the subject id is the file's processing-time minute cluster (UTKFace has no identity ids; see
that module for what this does and does not rule out).

With ``teacher_bundle`` set, the Blendshape V2 teacher (:mod:`facexpr.faces.blendshape_teacher`)
scores every kept crop, so training reads cached teacher vectors instead of rerunning it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions
from facexpr.avatars.facs import AU_NAMES
from facexpr.avatars.fitting import FitOptions
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, FacexprError
from facexpr.core.types import FaceResult
from facexpr.faces.blendshape_teacher import TEACHER_NAMES
from facexpr.io.datasets.utkface import GENDERS, RACES, UTKFace, UTKFaceName, is_utkface_root
from facexpr.io.shard_writer import ShardWriter
from facexpr.io.shards import LabelField, Sample
from facexpr.io.sources import MediaSource, scan_inputs

log = logging.getLogger(__name__)

SOURCE = "real"


def corpus_schema() -> list[LabelField]:
    """Returns the label fields of a real-face dataset built by :func:`build_dataset`."""
    return [
        LabelField("landmarks68", (68, 2), "float32", "iBUG 68 landmarks, px in the crop"),
        LabelField("pose", (3,), "float32", "pitch, yaw, roll in degrees"),
        LabelField(
            "arkit",
            (len(ARKIT_NAMES),),
            "float32",
            "ARKit blendshapes in [0, 1], pseudo-label by ICT model fitting",
        ),
        LabelField(
            "aus",
            (len(AU_NAMES),),
            "float32",
            f"FACS AU intensities 0-5 ({', '.join(AU_NAMES)}) from the fitted blendshapes",
        ),
        LabelField(
            "fit_residual", (), "float32", "mean landmark error of the fit / inter-ocular distance"
        ),
        LabelField("fit_reliable", (), "int32", "1 if the fit residual is under its threshold"),
        LabelField(
            "emotion_teacher",
            (7,),
            "float32",
            "FER2013 7-class probabilities (angry, disgust, fear, happy, sad, surprise, neutral) "
            "of the ported mini-Xception teacher on the grey aligned crop (soft pseudo-label)",
        ),
        LabelField("det_score", (), "float32", "face detector score"),
        LabelField("sharpness", (), "float32", "variance of the Laplacian of the grey crop"),
        LabelField("face_px", (), "float32", "face box width in source px"),
        LabelField("frame", (), "int64", "0-based frame index in the source"),
        LabelField("timestamp", (), "float64", "seconds in the source"),
        *utkface_fields(),
        *teacher_fields(),
    ]


def utkface_fields() -> list[LabelField]:
    """Returns the subject metadata fields of UTKFace samples (for bias checks, never targets)."""
    return [
        LabelField("age", (), "int32", "age in years, from the UTKFace file name"),
        LabelField("gender", (), "int32", "UTKFace gender: " + ", ".join(GENDERS)),
        LabelField("race", (), "int32", "UTKFace ethnicity group: " + ", ".join(RACES)),
    ]


def teacher_fields() -> list[LabelField]:
    """Returns the fields the Blendshape V2 teacher writes."""
    return [
        LabelField(
            "arkit_teacher",
            (len(TEACHER_NAMES),),
            "float32",
            "Blendshape V2 teacher scores in [0, 1] on the aligned crop: the first 51 ARKit "
            "names in order (no tongueOut); absent when the teacher's face presence < 0.5",
        ),
        LabelField("neutral_teacher", (), "float32", "Blendshape V2 '_neutral' score"),
        LabelField("teacher_presence", (), "float32", "Face Mesh V2 face presence in [0, 1]"),
    ]


def teacher_labels(teacher, crop: np.ndarray, min_presence: float = 0.5) -> dict[str, object]:
    """Returns the teacher's labels of one aligned crop (scores absent below ``min_presence``)."""
    r = teacher.run_crop(crop)
    out: dict[str, object] = {"teacher_presence": np.float32(r.presence)}
    if r.presence >= min_presence:
        out["arkit_teacher"] = r.scores
        out["neutral_teacher"] = np.float32(r.neutral)
    return out


@dataclass
class CorpusOptions:
    """What to keep.

    Attributes:
        stride: keep every Nth video frame.
        size: aligned crop side in px.
        min_face_px: smallest face box width kept, source px.
        min_score: smallest detector score kept.
        max_yaw: largest |yaw| kept, degrees.
        max_pitch: largest |pitch| kept, degrees.
        min_sharpness: smallest variance of the Laplacian of the grey crop (blur filter).
        pseudo_labels: fit the ICT model for blendshape/AU pseudo-labels.
        teacher: path of the ported emotion teacher (``scripts/port_fer_teacher.py``) for
            soft emotion pseudo-labels, "auto" for its default cache location, or None.
        aligned: inputs are pre-cropped faces (no detection; the mesh presence replaces the
            detector score; the size and blur filters are off, as small crops are upscaled).
        samples_per_shard: samples per tar shard.
        teacher_bundle: cached Blendshape V2 teacher labels on every kept crop: "vendored" (the
            models shipped with facexpr), "env" (``$FACEXPR_LANDMARKER_TASK``, else the vendored
            models), a ``face_landmarker.task`` path; None for no teacher labels.
        limit: read at most this many files of each UTKFace root (quick runs), or None.
    """

    stride: int = 5
    size: int = 224
    min_face_px: float = 64.0
    min_score: float = 0.6
    max_yaw: float = 45.0
    max_pitch: float = 35.0
    min_sharpness: float = 20.0
    pseudo_labels: bool = True
    teacher: str | None = None
    aligned: bool = False
    samples_per_shard: int = 1000
    teacher_bundle: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, not {self.limit}")
        if self.stride < 1:
            raise ConfigError(f"stride must be >= 1, not {self.stride}")
        if self.size < 32:
            raise ConfigError(f"size must be >= 32 px, not {self.size}")
        if self.samples_per_shard < 1:
            raise ConfigError(f"samples_per_shard must be >= 1, not {self.samples_per_shard}")


@dataclass
class BuildReport:
    """What a dataset build kept, rejected and failed on."""

    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    inputs: int = 0

    def reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1


def sharpness(crop: np.ndarray) -> float:
    """Returns the variance of the Laplacian of an RGB crop's grey image (higher is sharper)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _quality(face: FaceResult, o: CorpusOptions) -> str | None:
    if face.aligned is None:
        return "no crop"
    # Pre-cropped inputs have no detector: the mesh's presence score stands in for it.
    if (face.confidence if o.aligned else face.score) < o.min_score:
        return "low detector score"
    if not o.aligned and float(face.box[2] - face.box[0]) < o.min_face_px:
        return "face too small"
    if face.pose is not None and (
        abs(face.pose.yaw) > o.max_yaw or abs(face.pose.pitch) > o.max_pitch
    ):
        return "head turned too far"
    if not o.aligned and sharpness(face.aligned) < o.min_sharpness:  # small crops are upscaled
        return "blurred"
    return None


def build_dataset(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    options: CorpusOptions | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildReport:
    """Runs the front-end over the inputs and writes the kept faces as a dataset.

    Args:
        inputs: photos, folders, globs, videos, or UTKFace roots (read in their layout).
        out_dir: dataset folder.
        options: filters and pseudo-labelling.
        overwrite: replace a dataset already in ``out_dir``.
        progress: tqdm bar over inputs on stderr.

    Returns:
        counts of kept and rejected faces (by reason) and failed inputs.
    """
    o = options or CorpusOptions()
    report = BuildReport()
    # (source, options it runs with, UTKFace name labels or None)
    jobs: list[tuple[MediaSource, CorpusOptions, UTKFaceName | None]] = []
    utk_options = dataclasses.replace(o, aligned=True)
    for inp in inputs:
        try:
            if is_utkface_root(inp):
                utk = UTKFace(inp, limit=o.limit)
                jobs.extend(
                    (MediaSource(str(utk.path(i)), "image"), utk_options, n)
                    for i, n in enumerate(utk.names)
                )
                log.info("%s: UTKFace root, %d faces (aligned mode)", inp, len(utk))
                continue
            scan = scan_inputs([inp])
            jobs.extend((s, o, None) for s in scan.sources)
            report.failures.extend((e.path or str(inp), e.problem) for e in scan.problems)
        except FacexprError as e:
            report.failures.append((str(inp), str(e)))
    attributes = {"options": {k: getattr(o, k) for k in o.__dataclass_fields__}}
    if o.teacher_bundle is not None:
        attributes["blendshape_teacher"] = {
            "bundle": str(o.teacher_bundle),
            "names": list(TEACHER_NAMES),
            "note": "MediaPipe Face Landmarker (Apache-2.0): Face Mesh V2 + Blendshape V2",
        }
    # The writer first: it takes the folder's lock, so a second build into the same folder is
    # refused before any model is loaded.
    writer = ShardWriter(
        out_dir,
        samples_per_shard=o.samples_per_shard,
        schema=corpus_schema(),
        created_by="facexpr dataset build",
        attributes=attributes,
        overwrite=overwrite,
    )
    analyzers: dict[bool, Analyzer] = {}

    def analyzer_for(aligned: bool) -> Analyzer:
        if aligned not in analyzers:
            analyzers[aligned] = Analyzer(
                AnalyzerOptions(
                    every=o.stride,
                    align_size=o.size,
                    blendshapes="fit" if o.pseudo_labels else "none",
                    aligned=aligned,
                    device="cpu",
                    embedding=None,  # crops and labels only; models train on the crops
                )
            )
        return analyzers[aligned]

    bs_teacher = None
    with writer:
        try:
            teacher = None
            if o.teacher is not None:
                from facexpr.nn.teachers import load_teacher

                teacher = load_teacher(None if o.teacher == "auto" else o.teacher)
            if o.teacher_bundle is not None:
                from facexpr.faces.blendshape_teacher import BlendshapeTeacher

                bs_teacher = BlendshapeTeacher(
                    None if o.teacher_bundle in ("env", "vendored") else o.teacher_bundle
                )
            it = jobs
            if progress:
                from tqdm import tqdm

                it = tqdm(jobs, desc="dataset", unit="input")
            for pos, (src, so, utk_name) in enumerate(it):
                report.inputs += 1
                stem = f"{pos:05d}_{_key_part(Path(src.path).stem)}"
                try:
                    for frame, result in analyzer_for(so.aligned).iter_results(src):
                        for face in result.faces:
                            why = _quality(face, so)
                            if why is not None:
                                report.reject(why)
                                continue
                            extra = {}
                            if teacher is not None:
                                extra["emotion_teacher"] = _teach(teacher, face.aligned)
                            if bs_teacher is not None:
                                extra.update(teacher_labels(bs_teacher, face.aligned))
                            if utk_name is not None:
                                extra.update(
                                    age=utk_name.age, gender=utk_name.gender, race=utk_name.race
                                )
                            sample = _sample(
                                src.path, stem, frame.index, frame.timestamp, face, extra
                            )
                            if utk_name is not None:
                                sample = dataclasses.replace(
                                    sample, source="utkface", subject_id=utk_name.subject_id
                                )
                            writer.write(sample)
                            report.kept += 1
                except FacexprError as e:
                    report.failures.append((src.path, str(e)))
                    log.error("%s", e)
        finally:
            for a in analyzers.values():
                a.close()
            if bs_teacher is not None:
                bs_teacher.close()
    return report


def _sample(
    path: str, stem: str, index: int, timestamp: float, face: FaceResult, extra: dict
) -> Sample:
    m = face.align_matrix
    lm = face.landmarks @ m[:, :2].T + m[:, 2] if m is not None else None
    labels: dict[str, object] = {
        "landmarks68": lm,
        "pose": None
        if face.pose is None
        else np.array([face.pose.pitch, face.pose.yaw, face.pose.roll], np.float32),
        "det_score": np.float32(face.score),
        "sharpness": np.float32(sharpness(face.aligned)),
        "face_px": np.float32(face.box[2] - face.box[0]),
        "frame": np.int64(index),
        "timestamp": np.float64(timestamp),
        **extra,
    }
    if face.blendshapes is not None:
        labels["arkit"] = face.blendshapes
        labels["aus"] = face.aus
        labels["fit_residual"] = np.float32(face.fit_residual)
        labels["fit_reliable"] = np.int32(face.fit_residual <= FitOptions().max_residual)
    key = f"{stem}_f{index:07d}_id{face.face_id}"
    return Sample(
        key=key,
        image=face.aligned,
        labels=labels,
        source=SOURCE,
        subject_id=f"{stem}#{face.face_id}",
        provenance={"file": path, "frame": index, "box": [float(v) for v in face.box]},
    )


def _teach(teacher, crop: np.ndarray) -> np.ndarray:
    import torch

    from facexpr.nn.teachers import preprocess

    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    with torch.inference_mode():
        return teacher(preprocess(torch.from_numpy(grey)[None]))[0].numpy().astype(np.float32)


def _key_part(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)

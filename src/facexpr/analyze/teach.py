"""Cached teacher labels: a copy of a dataset with the Blendshape V2 teacher's scores added.

``facexpr dataset teach IN -o OUT`` reads any facexpr dataset (FER+, UTKFace, video frames, a
corpus built without ``--teacher-bundle``), runs the teacher on every stored crop and writes the
same samples with ``arkit_teacher``, ``neutral_teacher`` and ``teacher_presence`` added (fields of
:func:`facexpr.analyze.corpus.teacher_fields`), so training never reruns the teacher. Teacher
labels already in the input are recomputed (the teacher is deterministic: the same values).
Splits and attributes are kept; the teacher's bundle is recorded in the attributes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from facexpr.analyze.corpus import teacher_fields, teacher_labels
from facexpr.core.errors import ConfigError
from facexpr.faces.blendshape_teacher import TEACHER_NAMES, BlendshapeTeacher
from facexpr.io.shards import Sample, ShardDataset, ShardWriter

log = logging.getLogger(__name__)

__all__ = ["TeachReport", "teach_dataset"]


@dataclass
class TeachReport:
    """What :func:`teach_dataset` did: samples written, those the teacher found no face in (their
    scores absent), and the seconds the teacher took."""

    samples: int = 0
    no_face: int = 0
    seconds: float = 0.0


def teach_dataset(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    bundle: str | Path | None = None,
    samples_per_shard: int | None = None,
    min_presence: float = 0.5,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> TeachReport:
    """Writes ``in_dir``'s samples with teacher labels into ``out_dir``.

    Args:
        in_dir: a facexpr dataset.
        out_dir: the new dataset (never ``in_dir``).
        bundle: ``face_landmarker.task``; default ``$FACEXPR_LANDMARKER_TASK``.
        samples_per_shard: default: the input's first shard size.
        min_presence: teacher face presence below which the scores are left absent.
        limit: label only the first ``limit`` samples (quick runs and timing).
        overwrite: replace a dataset in ``out_dir``.
        progress: tqdm bar on stderr.

    Raises:
        ConfigError: ``out_dir`` is ``in_dir``, or bad options.
        InputError, ModelError: unreadable dataset or teacher bundle.
    """
    if Path(out_dir).resolve() == Path(in_dir).resolve():
        raise ConfigError(f"{out_dir}: the output must be another folder than the input")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, not {limit}")
    ds = ShardDataset(in_dir, shuffle_buffer=0)
    m = ds.manifest
    new = teacher_fields()
    new_names = {f.name for f in new}
    kept_fields = [f for f in m.fields if f.name not in new_names]
    teacher = BlendshapeTeacher(bundle)
    per_shard = samples_per_shard or (m.shards[0].n_samples if m.shards else 1000)
    attributes = dict(m.attributes)
    attributes["blendshape_teacher"] = {
        "bundle": str(teacher.bundle),
        "names": list(TEACHER_NAMES),
        "min_presence": min_presence,
        "source_dataset": str(Path(in_dir)),
        "note": "MediaPipe Face Landmarker (Apache-2.0): Face Mesh V2 + Blendshape V2",
    }
    report = TeachReport()
    total = m.n_samples if limit is None else min(limit, m.n_samples)
    it = iter(ds)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=total, desc="teacher", unit="face")
    with ShardWriter(
        out_dir,
        samples_per_shard=per_shard,
        schema=[*kept_fields, *new],
        created_by="facexpr dataset teach",
        attributes=attributes,
        overwrite=overwrite,
    ) as writer:
        writer.set_splits(m.splits)
        for s in it:
            if report.samples >= total:
                break
            t0 = time.perf_counter()
            labels = teacher_labels(teacher, s.image, min_presence)
            report.seconds += time.perf_counter() - t0
            if "arkit_teacher" not in labels:
                report.no_face += 1
            old = {k: v for k, v in s.labels.items() if k not in new_names}
            writer.write(
                Sample(s.key, s.image, {**old, **labels}, s.source, s.subject_id, s.provenance)
            )
            report.samples += 1
    teacher.close()
    log.info("%s: %d samples, teacher %.1f ms a face", out_dir, report.samples,
             1000 * report.seconds / max(1, report.samples))  # fmt: skip
    return report

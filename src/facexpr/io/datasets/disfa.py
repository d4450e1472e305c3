"""DISFA reader: per-frame FACS AU intensities (0-5) of 27 subjects, with their stereo videos.

Mavadati et al., "DISFA: A Spontaneous Facial Action Intensity Database", IEEE Transactions on
Affective Computing 2013.

Upstream layout (as JAA-Net and ME-GraphAU's ``tool/DISFA_image_label_process.py`` read it)::

    ROOT/ActionUnit_Labels/SN001/SN001_au1.txt     one file per subject and AU: "frame,intensity"
    ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi   (any folder under ROOT; found by name)
    ROOT/Video_RightCamera/RightVideoSN001_comp.avi

The label files number frames from 1; line t is frame t of the video (video frame t - 1 when
counting from 0, the ``SN001/0.png`` of the JAA-Net lists). The 12 coded AUs are 1, 2, 4, 5, 6, 9,
12, 15, 17, 20, 25, 26. ``au_intensity`` keeps the 0-5 codes; ``au_occurrence`` is intensity >= 2
(``occurrence_threshold``), the rule of the JAA-Net / ME-GraphAU protocol. The published 3-fold
split of :mod:`facexpr.io.datasets.protocols` is recorded. DISFA is for research use under its
licence agreement: never copy its frames into the repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.datasets._common import (
    EMOTIONS,
    FaceRecord,
    ImageLoader,
    OnError,
    au_fields,
    au_name,
    check_stride,
    meta_fields,
    need_dir,
    read_lines,
    safe_key,
)
from facexpr.io.datasets.protocols import fold_splits

log = logging.getLogger(__name__)

__all__ = ["DISFA", "DISFA_AUS", "DisfaSubject", "read_intensity_file"]

DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


@dataclass(frozen=True, slots=True)
class DisfaSubject:
    """One subject's labels and video.

    Attributes:
        subject: 'SN001'.
        frames: (N,) int64 1-based frame numbers.
        intensity: (N, K) int32 FACS codes 0-5, columns in the reader's AU order.
        video: the chosen camera's video file.
    """

    subject: str
    frames: np.ndarray
    intensity: np.ndarray
    video: Path


def read_intensity_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (frames (N,) int64, intensities (N,) int32) of one ``SN001_au1.txt``.

    Raises:
        InputError: missing or unreadable, a line that is not ``frame,intensity``, an intensity
            outside 0-5, or frame numbers that do not increase.
    """
    lines = [ln for ln in read_lines(path, "DISFA AU intensity file") if ln.strip()]
    if not lines:
        raise InputError(path, "empty AU intensity file (need 'frame,intensity' lines)")
    frames = np.empty(len(lines), np.int64)
    values = np.empty(len(lines), np.int32)
    for i, line in enumerate(lines):
        parts = line.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            frames[i], values[i] = int(parts[0]), int(float(parts[1]))
        except ValueError:
            raise InputError(
                path, f"line {i + 1}: expected 'frame,intensity', got {line[:60]!r}"
            ) from None
        if not 0 <= values[i] <= 5:
            raise InputError(path, f"line {i + 1}: intensity {values[i]} is outside 0-5")
    if np.any(np.diff(frames) <= 0) or frames[0] < 1:
        raise InputError(path, "frame numbers must start at 1 or later and increase")
    return frames, values


class DISFA:
    """Reads DISFA from the upstream layout.

    Args:
        root: the dataset folder (holding ``ActionUnit_Labels/`` and the video folders).
        camera: 'left' (``LeftVideoSN*.avi``) or 'right'.
        aus: AU numbers to keep (default all 12).
        occurrence_threshold: intensity at which an AU counts as present (2: the protocol's).
        stride: keep every Nth labelled frame.
        on_error: 'raise' when a labelled frame is missing from the video, or 'skip' it.

    Raises:
        InputError: no label folder or subject in it; a missing or garbled label file (named);
            the AU files of a subject listing different frames; a subject without its video.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        camera: Literal["left", "right"] = "left",
        aus: Sequence[int] = DISFA_AUS,
        occurrence_threshold: int = 2,
        stride: int = 1,
        on_error: OnError = "raise",
    ) -> None:
        if camera not in ("left", "right"):
            raise ConfigError(f"camera must be 'left' or 'right', got {camera!r}")
        if not 1 <= occurrence_threshold <= 5:
            raise ConfigError(f"occurrence_threshold must be in 1..5, got {occurrence_threshold}")
        check_stride(stride)
        self.root = Path(root)
        self.name = "disfa"
        self.camera = camera
        self.aus = tuple(int(a) for a in aus)
        self.au_names = tuple(au_name(a) for a in self.aus)
        self.threshold = int(occurrence_threshold)
        self.stride = int(stride)
        self._loader = ImageLoader(on_error)
        labels = need_dir(self.root / "ActionUnit_Labels", "DISFA label folder ActionUnit_Labels/")
        folders = sorted(p for p in labels.iterdir() if p.is_dir() and p.name.startswith("SN"))
        if not folders:
            raise InputError(labels, "no subject folder (SN001 ...) in it")
        prefix = "LeftVideo" if camera == "left" else "RightVideo"
        videos = {p.name: p for p in self.root.rglob(f"{prefix}SN*.avi")}
        self.subjects: list[DisfaSubject] = []
        for d in folders:
            sn = d.name
            frames = None
            cols = []
            for a in self.aus:
                f, v = read_intensity_file(d / f"{sn}_au{a}.txt")
                if frames is None:
                    frames = f
                elif not np.array_equal(f, frames):
                    raise InputError(
                        d / f"{sn}_au{a}.txt",
                        f"lists other frames than {sn}_au{self.aus[0]}.txt",
                    )
                cols.append(v)
            video = next((p for n, p in sorted(videos.items()) if n.startswith(prefix + sn)), None)
            if video is None:
                raise InputError(
                    self.root, f"no {camera} video {prefix}{sn}_comp.avi for subject {sn}"
                )
            assert frames is not None
            keep = slice(None, None, self.stride)
            self.subjects.append(
                DisfaSubject(sn, frames[keep], np.stack(cols, axis=1)[keep], video)
            )

    @property
    def n_skipped(self) -> int:
        return self._loader.n_skipped

    def __len__(self) -> int:
        return sum(len(s.frames) for s in self.subjects)

    def __iter__(self) -> Iterator[FaceRecord]:
        from facexpr.io.video import VideoReader

        for s in self.subjects:
            wanted = {int(f) - 1: i for i, f in enumerate(s.frames)}  # video index -> row
            last = max(wanted)
            found: set[int] = set()
            with VideoReader(s.video) as video:
                for frame in video:
                    row = wanted.get(frame.index)
                    if row is not None:
                        found.add(frame.index)
                        yield self._record(s, row, frame.image)
                    if frame.index >= last:
                        break
            for idx in sorted(set(wanted) - found):
                self._loader.skip_or_raise(
                    InputError(s.video, f"labelled frame {idx + 1} is not in the video")
                )

    def _record(self, s: DisfaSubject, row: int, image: np.ndarray) -> FaceRecord:
        inten = s.intensity[row]
        frame = int(s.frames[row])
        return FaceRecord(
            key=safe_key(s.subject, self.camera, f"{frame:05d}"),
            image=np.ascontiguousarray(image),
            subject_id=s.subject,
            labels={
                "au_intensity": inten.astype(np.float32),
                "au_occurrence": (inten >= self.threshold).astype(np.int32),
                "frame": frame,
            },
            provenance={"video": str(s.video), "video_frame": frame - 1},
        )

    def schema(self) -> list[Any]:
        return [*au_fields(self.au_names, intensity=True), *meta_fields(split=False)]

    def _all_subjects(self) -> list[str]:
        return [s.subject for s in self.subjects for _ in range(len(s.frames))]

    def splits(self) -> dict[str, list[str]]:
        return fold_splits("disfa", self._all_subjects())[0]

    def attributes(self) -> dict[str, Any]:
        kind = fold_splits("disfa", self._all_subjects())[1]
        return {
            "dataset": "DISFA",
            "au_names": list(self.au_names),
            "emotions": list(EMOTIONS),
            "aligned": False,
            "images": f"full frames of the {self.camera} camera (a face detector finds the face)",
            "occurrence_threshold": self.threshold,
            "protocol": {
                "folds": 3,
                "kind": kind,
                "source": "JAA-Net / ME-GraphAU part lists" if kind == "published" else kind,
            },
            "licence": "research use under the DISFA licence agreement; never redistribute",
            "origin": {"root": str(self.root), "camera": self.camera, "stride": self.stride},
        }

"""Faces ranked by expression similarity to a query face (``facexpr similar``).

The query is the largest face of a photo, or of one video frame named ``clip.mp4@12.5s`` (the
first frame at or after 12.5 s; a video without ``@`` gives its first frame). Every face of the
inputs (photos, folders, videos) is embedded by the expression encoder
(:mod:`facexpr.analyze.embedding`) and scored by the cosine similarity of its embedding with the
query's, so 1.0 is the same expression and identity plays no part by training. The best ``top``
are kept with their aligned crops (memory bounded by ``top``, whatever the number of faces), for
a CSV and a contact sheet.

A bad input is recorded with its problem and the others are still ranked; a bad query is an
:class:`~facexpr.core.errors.InputError` naming it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions
from facexpr.analyze.batch import Failure, _failure
from facexpr.analyze.embedding import cosine_similarity
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError, DamagedInputError, FacexprError, InputError, ModelError
from facexpr.core.types import FaceResult, FrameResult
from facexpr.io import iter_frames
from facexpr.io.sources import printable_path, scan_inputs

log = logging.getLogger(__name__)

__all__ = [
    "SHEET_CAPTION",
    "SHEET_COLUMNS",
    "SHEET_PAD",
    "SHEET_TILE",
    "SimilarFace",
    "SimilarResult",
    "find_similar",
    "parse_query",
    "similarity_sheet",
]

_AT = re.compile(r"^(?P<path>.+)@(?P<t>\d+(?:\.\d*)?|\.\d+)s?$")


@dataclass(frozen=True, slots=True)
class SimilarFace:
    """One face and its similarity to the query.

    Attributes:
        input: the file it was found in (printable).
        frame: 1-based frame number (1 for a photo), as in the analysis table.
        timestamp: seconds (0.0 for a photo).
        face_id: the face's id in its frame (track id in a video; size rank in a photo).
        box: (4,) float32 xyxy px in the source frame.
        similarity: cosine similarity of the embeddings, in [-1, 1].
        embedding: (16,) float32 unit vector.
        crop: (S, S, 3) uint8 RGB aligned crop.
    """

    input: str
    frame: int
    timestamp: float
    face_id: int
    box: np.ndarray
    similarity: float
    embedding: np.ndarray
    crop: np.ndarray


@dataclass(frozen=True)
class SimilarResult:
    """The query face and the best matches, best first.

    Attributes:
        query: the query face (similarity 1.0).
        matches: at most ``top`` faces, by decreasing similarity (ties: input order).
        compared: faces compared with the query.
        failures: inputs that could not be read (or only in part), with the problem.
    """

    query: SimilarFace
    matches: tuple[SimilarFace, ...]
    compared: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    def to_dataframe(self) -> pd.DataFrame:
        """Returns the matches as rows: rank (1 = best), input, frame, timestamp, face_id,
        similarity, and the box as face_x, face_y, face_width, face_height (px)."""
        rows = []
        for rank, m in enumerate(self.matches, 1):
            x0, y0, x1, y1 = (float(v) for v in m.box)
            meta = (rank, m.input, m.frame, m.timestamp, m.face_id, m.similarity)
            rows.append((*meta, x0, y0, x1 - x0, y1 - y0))
        cols = ["rank", C.INPUT, C.FRAME, C.TIMESTAMP, C.FACE_ID, "similarity", *C.FACE_BOX]
        return pd.DataFrame(rows, columns=cols)


def parse_query(text: str | Path) -> tuple[Path, float | None]:
    """Returns (file, seconds or None) of a query: ``photo.jpg`` or ``clip.mp4@12.5s``.

    A path that exists as named is taken as is (even with an ``@`` in its name).

    Raises:
        InputError: the file does not exist.
    """
    text = str(text)
    if Path(text).exists():
        return Path(text), None
    m = _AT.match(text)
    if m and Path(m["path"]).exists():
        return Path(m["path"]), float(m["t"])
    name = m["path"] if m else text
    raise InputError(name, "query file not found")


def _largest(faces: Sequence[FaceResult]) -> FaceResult:
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


def _as_match(src: str, r: FrameResult, f: FaceResult, sim: float) -> SimilarFace:
    return SimilarFace(
        input=printable_path(src),
        frame=r.index + 1,
        timestamp=float(r.timestamp),
        face_id=int(f.face_id),
        box=np.asarray(f.box, np.float32),
        similarity=float(sim),
        embedding=np.asarray(f.embedding, np.float32),
        crop=f.aligned,
    )


def _query_face(analyzer: Analyzer, query: str | Path) -> SimilarFace:
    path, t = parse_query(query)
    scan = scan_inputs([path])
    if scan.problems:
        raise scan.problems[0]
    (src,) = scan.sources
    if src.kind == "image":
        if t is not None:
            raise InputError(path, f"is a photo; '@{t:g}s' names a video frame")
        (result,) = [r for _, r in analyzer.iter_results(src)]
        where = ""
    else:
        frame = next(iter_frames(src, start=t), None)
        if frame is None:
            raise InputError(path, f"has no frame at or after {t or 0:g} s")
        result = analyzer.analyze_image(frame.image)
        result = FrameResult(
            src.path, frame.index, frame.timestamp, result.width, result.height, result.faces
        )
        where = f" at {frame.timestamp:.2f} s"
    if not result.faces:
        raise InputError(path, f"no face found in the query{where}")
    face = _largest(result.faces)
    return _as_match(src.path, result, face, 1.0)


def find_similar(
    query: str | Path,
    inputs: Sequence[str | Path],
    *,
    top: int = 10,
    options: AnalyzerOptions | None = None,
    progress: bool = False,
) -> SimilarResult:
    """Returns the ``top`` faces of ``inputs`` whose expression is most like the query's.

    Args:
        query: a photo, or a video frame as ``clip.mp4@12.5s`` (its largest face is the query).
        inputs: photos, videos, folders or globs (as ``facexpr analyze`` takes).
        top: how many matches to keep (>= 1).
        options: analysis options (frame sampling, detector, expression weights); the
            embedding must be on (``options.embedding`` with weights available).
        progress: a tqdm bar over the inputs on stderr.

    Raises:
        ConfigError: ``top`` < 1, or the options turn the embedding off.
        ModelError: no expression weights (none shipped, none given), or they do not load.
        InputError: the query cannot be read or has no face (named).
    """
    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be an integer >= 1, not {top!r}")
    options = options or AnalyzerOptions()
    if "expr" not in options.groups:
        if options.embedding is None:
            raise ConfigError("ranking by expression needs the embedding: options.embedding=None")
        raise ModelError(
            "ranking by expression needs expression weights, and none are shipped yet: give "
            "trained ones with --expression-weights PATH (Python: EmbeddingOptions(weights=PATH))"
        )
    failures: list[Failure] = []
    heap: list[tuple[float, int, SimilarFace]] = []  # the best `top`, worst first
    order = itertools.count()
    compared = 0
    with Analyzer(options) as analyzer:
        q = _query_face(analyzer, query)
        scan = scan_inputs(inputs)
        failures += [_failure(e.path or "", e.problem) for e in scan.problems]
        sources = scan.sources
        if progress:
            from tqdm import tqdm

            sources = tqdm(sources, unit="input", leave=False)
        for src in sources:
            try:
                for _, r in analyzer.iter_results(src):
                    if not r.faces:
                        continue
                    sims = cosine_similarity(q.embedding, np.stack([f.embedding for f in r.faces]))
                    for f, s in zip(r.faces, sims, strict=True):
                        compared += 1
                        # Ties keep input order: a later face must beat the kept one.
                        key = (float(s), -next(order))
                        if len(heap) < top:
                            heapq.heappush(heap, (*key, _as_match(src.path, r, f, s)))
                        elif key > heap[0][:2]:
                            heapq.heapreplace(heap, (*key, _as_match(src.path, r, f, s)))
            except DamagedInputError as e:  # the faces before the damage are ranked
                failures.append(_failure(src.path, str(e)))
            except FacexprError as e:
                failures.append(_failure(src.path, str(e)))
                log.info("failed: %s", e)
    matches = tuple(m for *_, m in sorted(heap, key=lambda h: (-h[0], -h[1])))
    return SimilarResult(q, matches, compared, tuple(failures))


SHEET_TILE = 160  # px, side of each face tile
SHEET_CAPTION = 36  # px, caption band under each tile
SHEET_PAD = 4  # px, border around each cell
SHEET_COLUMNS = 6  # most cells in a row


def similarity_sheet(result: SimilarResult, *, tile: int = SHEET_TILE) -> np.ndarray:
    """Returns an (H, W, 3) uint8 RGB contact sheet: the query, then the matches with scores.

    Cells of ``tile + 2 * SHEET_PAD`` px wide and ``tile + SHEET_CAPTION + 2 * SHEET_PAD`` high,
    ``min(1 + len(matches), SHEET_COLUMNS)`` to a row; the query's cell is framed in blue, each
    match captioned with its rank, similarity and where it is (file, and time in a video).
    """
    import cv2

    cells = [result.query, *result.matches]
    cols = min(len(cells), SHEET_COLUMNS)
    rows = math.ceil(len(cells) / cols)
    cw, ch = tile + 2 * SHEET_PAD, tile + SHEET_CAPTION + 2 * SHEET_PAD
    sheet = np.full((rows * ch, cols * cw, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, face in enumerate(cells):
        y, x = (i // cols) * ch, (i % cols) * cw
        if i == 0:
            sheet[y : y + ch, x : x + cw] = (40, 90, 220)  # the query's frame
            sheet[y + 2 : y + ch - 2, x + 2 : x + cw - 2] = 255
        crop = cv2.resize(face.crop, (tile, tile), interpolation=cv2.INTER_AREA)
        sheet[y + SHEET_PAD : y + SHEET_PAD + tile, x + SHEET_PAD : x + SHEET_PAD + tile] = crop
        title = "query" if i == 0 else f"#{i}  {face.similarity:.3f}"
        name = Path(face.input).name
        if face.frame > 1 or face.timestamp > 0:
            name = f"{name} {face.timestamp:.1f}s"
        if face.face_id:
            name = f"{name} f{face.face_id}"
        ty = y + SHEET_PAD + tile
        cv2.putText(sheet, title, (x + SHEET_PAD, ty + 14), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(
            sheet, name[:26], (x + SHEET_PAD, ty + 30), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA
        )
    return sheet

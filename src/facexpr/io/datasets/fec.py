"""Reader of Google's Facial Expression Comparison (FEC) annotation CSVs and their local images.

Vemulapalli, Agarwala, "A Compact Embedding for Facial Expression Similarity", CVPR 2019.

The public files (``faceexp-comparison-data-{train,test}-public.csv``) have no header; each row::

    URL1, left1, right1, top1, bottom1,  URL2, ...(4),  URL3, ...(4),
    triplet_type, annotator_id_1, annotation_1, annotator_id_2, annotation_2, ...

``left``/``right`` are the face box's columns divided by the image width, ``top``/``bottom`` its
rows divided by the height; ``triplet_type`` is ``ONE_CLASS_TRIPLET``, ``TWO_CLASS_TRIPLET`` or
``THREE_CLASS_TRIPLET``; each annotation is 1, 2 or 3, the face the annotator found **most
different** in expression (the other two are the similar pair). The number of annotators varies
by row. FEC ships URLs only: users fetch the images themselves; this module resolves a URL to a
local file by its basename, or through a mapping file (CSV ``url,file`` or JSON ``{url: file}``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io._checks import BadJSON, loads_json

log = logging.getLogger(__name__)

__all__ = [
    "TRIPLET_TYPES",
    "FecDataset",
    "FecFaces",
    "FecTriplet",
    "read_fec_csv",
    "read_mapping",
    "url_basename",
]

TRIPLET_TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")
_N_FIXED = 16  # 3 x (url + 4 box values) + triplet type


@dataclass(frozen=True, slots=True)
class FecTriplet:
    """One FEC row.

    Attributes:
        row: 0-based line number in the CSV.
        urls: the three image URLs.
        boxes: (3, 4) float32 face boxes, normalised xyxy (left, top, right, bottom) in [0, 1].
        triplet_type: index into :data:`TRIPLET_TYPES`.
        annotator_ids: one id per annotation.
        annotations: 0-based index (0, 1, 2) of the face each annotator found most different.
    """

    row: int
    urls: tuple[str, str, str]
    boxes: np.ndarray
    triplet_type: int
    annotator_ids: tuple[str, ...]
    annotations: tuple[int, ...]

    @property
    def votes(self) -> np.ndarray:
        """Returns (3,) int64: how many annotators found each face the most different."""
        return np.bincount(np.asarray(self.annotations, np.int64), minlength=3)

    @property
    def odd_one(self) -> int:
        """Returns the index of the face most annotators found most different (ties: first)."""
        return int(np.argmax(self.votes))

    @property
    def agreement(self) -> float:
        """Returns the share of annotators that chose :attr:`odd_one` (in (0, 1])."""
        v = self.votes
        return float(v.max() / v.sum())


def _parse_row(i: int, row: list[str], path: Path) -> FecTriplet:
    cells = [c.strip() for c in row]
    if len(cells) < _N_FIXED + 2 or (len(cells) - _N_FIXED) % 2:
        raise InputError(
            path,
            f"line {i + 1}: {len(cells)} fields; an FEC row has 16 plus pairs of "
            "(annotator id, annotation)",
        )
    urls = (cells[0], cells[5], cells[10])
    try:
        lrtb = np.array([[float(v) for v in cells[k + 1 : k + 5]] for k in (0, 5, 10)])
    except ValueError as e:
        raise InputError(path, f"line {i + 1}: face box value is not a number ({e})") from None
    boxes = lrtb[:, [0, 2, 1, 3]].astype(np.float32)  # -> left, top, right, bottom
    if not (np.all(boxes >= -1e-3) and np.all(boxes <= 1 + 1e-3)):
        raise InputError(path, f"line {i + 1}: face box outside [0, 1] (normalised corners)")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise InputError(path, f"line {i + 1}: empty face box (right <= left or bottom <= top)")
    if cells[15] not in TRIPLET_TYPES:
        raise InputError(
            path, f"line {i + 1}: triplet type {cells[15]!r} is not one of {TRIPLET_TYPES}"
        )
    ids, votes = [], []
    for k in range(_N_FIXED, len(cells), 2):
        try:
            a = int(cells[k + 1])
        except ValueError:
            raise InputError(
                path, f"line {i + 1}: annotation {cells[k + 1]!r} is not 1, 2 or 3"
            ) from None
        if a not in (1, 2, 3):
            raise InputError(path, f"line {i + 1}: annotation {a} is not 1, 2 or 3")
        ids.append(cells[k])
        votes.append(a - 1)
    return FecTriplet(i, urls, boxes, TRIPLET_TYPES.index(cells[15]), tuple(ids), tuple(votes))


@dataclass
class FecReadReport:
    """What :func:`read_fec_csv` skipped (with ``on_error='skip'``): line number -> problem."""

    skipped: dict[int, str] = field(default_factory=dict)


def read_fec_csv(
    path: str | Path,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    report: FecReadReport | None = None,
) -> list[FecTriplet]:
    """Returns the triplets of an FEC annotation CSV.

    Args:
        path: ``faceexp-comparison-data-*-public.csv`` or a file in its layout.
        on_error: 'raise' on a malformed row, or 'skip' it (counted in ``report``).
        report: collects skipped rows.

    Raises:
        InputError: missing or unreadable file, no rows, or (``on_error='raise'``) a bad row,
            naming the line.
        ConfigError: bad ``on_error``.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    p = Path(path)
    out: list[FecTriplet] = []
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    out.append(_parse_row(i, row, p))
                except InputError as e:
                    if on_error == "raise":
                        raise
                    if report is not None:
                        report.skipped[i + 1] = e.problem
                    log.warning("%s", e)
    except FileNotFoundError:
        raise InputError(p, "FEC annotation CSV not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(p, f"unreadable FEC annotation CSV ({e})") from e
    if not out:
        raise InputError(p, "no FEC triplet rows in the file")
    return out


def url_basename(url: str) -> str:
    """Returns the file name at the end of a URL's path (``.../a%20b.jpg?x=1`` -> ``a b.jpg``)."""
    return unquote(Path(urlparse(url).path).name)


def read_mapping(path: str | Path) -> dict[str, str]:
    """Returns url -> local file name from a CSV (columns ``url,file``) or JSON object.

    Raises:
        InputError: missing or unreadable file, wrong columns or JSON shape.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "FEC image mapping file not found")
    try:
        if p.suffix.lower() == ".json":
            try:
                data = loads_json(p.read_bytes())
            except BadJSON as e:
                raise InputError(p, f"mapping JSON is not valid JSON ({e})") from None
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise InputError(p, "mapping JSON must be an object {url: file name}")
            return dict(data)
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"url", "file"} <= set(reader.fieldnames or []):
                raise InputError(p, "mapping CSV needs the columns 'url' and 'file'")
            return {r["url"]: r["file"] for r in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(p, f"unreadable FEC image mapping ({e})") from e


@dataclass(frozen=True, slots=True)
class FecFaces:
    """The three face crops of one FEC triplet.

    Attributes:
        triplet: the CSV row.
        images: (3, S, S, 3) uint8 RGB crops of the face boxes, resized to ``size``.
        files: the local image files used.
    """

    triplet: FecTriplet
    images: np.ndarray
    files: tuple[Path, Path, Path]


class FecDataset:
    """FEC triplets whose three images are all found in a local folder.

    Args:
        csv_path: the annotation CSV.
        image_dir: folder with the downloaded images.
        mapping: url -> file name (relative to ``image_dir``); default: the URL's basename.
        size: side of the square face crops in px.
        margin: box enlargement on each side, as a fraction of the box side (0: the box itself).
        on_missing: 'skip' triplets with an image not on disk (counted in ``n_missing``), or
            'raise' naming the first missing file.
        on_error: passed to :func:`read_fec_csv` for malformed rows.

    Raises:
        InputError: ``image_dir`` missing; a missing image with ``on_missing='raise'``; no
            triplet left.
        ConfigError: bad options.
    """

    def __init__(
        self,
        csv_path: str | Path,
        image_dir: str | Path,
        *,
        mapping: Mapping[str, str] | str | Path | None = None,
        size: int = 224,
        margin: float = 0.0,
        on_missing: Literal["raise", "skip"] = "skip",
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        if size < 16:
            raise ConfigError(f"FecDataset.size must be >= 16 px, got {size}")
        if not 0.0 <= margin <= 1.0:
            raise ConfigError(f"FecDataset.margin must be in [0, 1], got {margin}")
        if on_missing not in ("raise", "skip"):
            raise ConfigError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}")
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise InputError(self.image_dir, "FEC image folder not found")
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = read_mapping(mapping)
        self.mapping = dict(mapping) if mapping is not None else None
        self.size = int(size)
        self.margin = float(margin)
        self.report = FecReadReport()
        rows = read_fec_csv(csv_path, on_error=on_error, report=self.report)
        self.triplets: list[FecTriplet] = []
        self.n_missing = 0
        for t in rows:
            files = [self._file(u) for u in t.urls]
            missing = [f for f in files if f is None or not f.is_file()]
            if missing:
                if on_missing == "raise":
                    url = t.urls[[f is None or not f.is_file() for f in files].index(True)]
                    raise InputError(
                        self.image_dir / (self._name(url) or url_basename(url)),
                        f"image of line {t.row + 1} not found (URL {url})",
                    )
                self.n_missing += 1
                continue
            self.triplets.append(t)
        if not self.triplets:
            raise InputError(
                self.image_dir,
                f"none of the {len(rows)} FEC triplets has its three images in this folder",
            )
        log.info("FEC: %d triplets with images, %d without", len(self.triplets), self.n_missing)

    def _name(self, url: str) -> str | None:
        if self.mapping is None:
            return url_basename(url)
        return self.mapping.get(url)

    def _file(self, url: str) -> Path | None:
        name = self._name(url)
        if not name:
            return None
        p = (self.image_dir / name).resolve()
        # A mapping entry must not lead outside the image folder.
        if not p.is_relative_to(self.image_dir.resolve()):
            return None
        return p

    def __len__(self) -> int:
        return len(self.triplets)

    def __iter__(self) -> Iterator[FecFaces]:
        for i in range(len(self)):
            yield self[i]

    def crop(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Returns the (size, size, 3) uint8 crop of a normalised xyxy box in an RGB image."""
        import cv2

        h, w = image.shape[:2]
        x0, y0, x1, y1 = (box * np.array([w, h, w, h], np.float32)).tolist()
        mx, my = (x1 - x0) * self.margin, (y1 - y0) * self.margin
        x0, y0, x1, y1 = x0 - mx, y0 - my, x1 + mx, y1 + my
        sx, sy = self.size / (x1 - x0), self.size / (y1 - y0)
        m = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)
        return cv2.warpAffine(
            image, m, (self.size, self.size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT
        )

    def __getitem__(self, i: int) -> FecFaces:
        from facexpr.io.images import read_image

        if not -len(self) <= i < len(self):
            raise IndexError(f"FEC triplet {i} out of range ({len(self)})")
        t = self.triplets[i]
        files = tuple(self._file(u) for u in t.urls)
        crops = [
            self.crop(read_image(f), b)  # type: ignore[arg-type]  # checked in __init__
            for f, b in zip(files, t.boxes, strict=True)
        ]
        return FecFaces(t, np.stack(crops), files)  # type: ignore[arg-type]

"""Looking into a dataset folder: counts and label coverage, and a contact sheet of samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facexpr.io.shards import ShardReader, read_manifest


def summarize(dataset_dir: str | Path) -> dict[str, Any]:
    """Returns counts and label coverage of a dataset (reads every sample's labels once).

    Returns:
        {"path", "n_samples", "n_shards", "n_subjects", "sources": {source: n},
         "coverage": {field: fraction of samples having it}, "splits": {name: n_subjects},
         "bytes": total shard bytes}
    """
    m = read_manifest(dataset_dir)
    have: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    subjects: set[str] = set()
    n = 0
    for s in ShardReader(dataset_dir, shuffle_buffer=0, verify=True):
        n += 1
        sources[s.source] += 1
        if s.subject_id:
            subjects.add(s.subject_id)
        have.update(k for k, v in s.labels.items() if v is not None)
    return {
        "path": str(Path(dataset_dir)),
        "n_samples": n,
        "n_shards": len(m.shards),
        "n_subjects": len(subjects),
        "sources": dict(sources),
        "coverage": {f.name: (have[f.name] / n if n else 0.0) for f in m.fields},
        "splits": {k: len(v) for k, v in m.splits.items()},
        "bytes": sum(sh.n_bytes for sh in m.shards),
        "created_by": m.created_by,
    }


def contact_sheet(
    dataset_dir: str | Path,
    *,
    n: int = 64,
    columns: int = 8,
    tile: int = 128,
    seed: int = 0,
    caption: str | None = None,
) -> np.ndarray:
    """Returns an RGB contact sheet of ``n`` samples with their 68 landmarks (if labelled).

    Args:
        dataset_dir: dataset folder.
        n: samples shown (the first n of a seeded shuffle).
        columns: tiles per row.
        tile: tile side in px.
        seed: shuffle seed.
        caption: label field printed under each tile (its value, or the emotion name).

    Returns:
        (rows * tile, columns * tile, 3) uint8.
    """
    ds = ShardReader(dataset_dir, shuffle_buffer=max(1, 4 * n), seed=seed)
    tiles = []
    for s in ds:
        img = np.ascontiguousarray(s.image)
        scale = tile / img.shape[1]
        t = cv2.resize(img, (tile, round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        t = np.ascontiguousarray(t[:tile])
        lm = s.labels.get("landmarks68")
        if lm is not None:
            for x, y in np.asarray(lm) * scale:
                cv2.circle(t, (round(float(x)), round(float(y))), 1, (0, 255, 0), -1)
        text = None
        if caption is not None and s.labels.get(caption) is not None:
            v = s.labels[caption]
            text = v if isinstance(v, str) else np.array2string(np.asarray(v), precision=2)
        if text:
            cv2.putText(
                t,
                text[:18],
                (3, tile - 5),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35,
                (255, 255, 0),
                1,
                cv2.LINE_AA,
            )
        if t.shape[0] < tile:
            t = np.pad(t, ((0, tile - t.shape[0]), (0, 0), (0, 0)))
        tiles.append(t)
        if len(tiles) >= n:
            break
    if not tiles:
        return np.zeros((tile, tile, 3), np.uint8)
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * tile, columns * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = t
    return sheet

"""Puts this folder on sys.path (the tiny recipe imports by path, as in a subprocess) and builds
small face shard datasets from real UTKFace photos (in tmp, never committed)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr.io.shards import LabelField, Sample, ShardWriter

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def utk_faces(shared_dir: Path, n: int, size: int) -> list[tuple[str, np.ndarray]]:
    """Returns ``n`` (file name, (size, size, 3) uint8 RGB) UTKFace faces, sorted by name."""
    folder = shared_dir / "datasets" / "utkface" / "UTKFace"
    if not folder.is_dir():
        pytest.skip(f"UTKFace not found at {folder}")
    out = []
    for p in sorted(folder.glob("*.jpg"))[:n]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        out.append(
            (p.name, cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1])
        )
    return out


@pytest.fixture(scope="session")
def face_shards(shared_dir, tmp_path_factory) -> Path:
    """A 96-face shard dataset (64 px UTKFace crops, 3 shards), labels: a 4-d 'expr' vector."""
    out = tmp_path_factory.mktemp("faces")
    schema = [LabelField("expr", (4,), "float32", "a made-up expression vector")]
    rng = np.random.default_rng(0)
    with ShardWriter(out, samples_per_shard=32, schema=schema) as w:
        for i, (_, img) in enumerate(utk_faces(shared_dir, 96, 64)):
            w.write(
                Sample(
                    key=f"{i:05d}",
                    image=np.ascontiguousarray(img),
                    labels={"expr": rng.uniform(0, 1, 4).astype(np.float32)},
                    source="utkface",
                    subject_id=f"s{i // 2}",
                )
            )
    return out

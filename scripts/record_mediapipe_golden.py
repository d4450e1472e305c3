"""Records MediaPipe Face Landmarker outputs on the fixture media, for facexpr's tests.

Run it with a Python that has ``mediapipe`` (never a facexpr dependency: a test-only venv outside
the repository), Pillow and PyAV::

    python3 -m venv /work/venv-mp
    /work/venv-mp/bin/pip install mediapipe==0.10.21 av
    /work/venv-mp/bin/python scripts/record_mediapipe_golden.py \
        --media ../shared/fixtures/media \
        --task ../shared/assets/mediapipe-face-landmarker/face_landmarker.task \
        --out tests/faces/data/mediapipe_golden.json

The Tasks API runs in IMAGE mode with blendshapes on (MediaPipe's defaults otherwise: detection
and presence confidence 0.5), ``num_faces`` 5. Photos are decoded with Pillow (EXIF applied, as
``facexpr.io.read_image``) and video frames with PyAV (``rgb24``, as ``facexpr.io.video``), so the
two sides see the same pixels. The JSON holds numbers only: per face, the 478 landmarks
(MediaPipe's normalised x, y, z, 4 decimals) and the 52 blendshape scores (``_neutral`` first, in
MediaPipe's order, 5 decimals); no pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PHOTOS = (
    "single_face.jpg",
    "0-f1-su-ph.jpg",
    "0-f15-hao-ph.jpg",
    "15-f13-anc-ph.jpg",
    "45-m7-di-ph.jpg",
    "multi_face.jpg",
)
VIDEO_FRAMES = {"WolfgangLanger_Pexels.mp4": (0, 120, 240, 360), "single_face.mp4": (0, 48)}


def _photo(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _frames(path: Path, wanted: tuple[int, ...]) -> dict[int, np.ndarray]:
    import av

    out = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--media", type=Path, required=True)
    p.add_argument("--task", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

    options = FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(args.task)),
        running_mode=RunningMode.IMAGE,
        num_faces=5,
        output_face_blendshapes=True,
    )
    items = [(name, None, _photo(args.media / name)) for name in PHOTOS]
    for name, wanted in VIDEO_FRAMES.items():
        for i, rgb in sorted(_frames(args.media / name, wanted).items()):
            items.append((name, i, rgb))
    records = []
    names: list[str] | None = None
    with FaceLandmarker.create_from_options(options) as landmarker:
        for name, index, rgb in items:
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            result = landmarker.detect(image)
            faces = []
            for lms, bs in zip(result.face_landmarks, result.face_blendshapes, strict=True):
                names = names or [c.category_name for c in bs]
                faces.append(
                    {
                        "landmarks": [[round(v, 4) for v in (p.x, p.y, p.z)] for p in lms],
                        "blendshapes": [round(c.score, 5) for c in bs],
                    }
                )
            records.append(
                {
                    "file": name,
                    "frame": index,
                    "width": int(rgb.shape[1]),
                    "height": int(rgb.shape[0]),
                    "faces": faces,
                }
            )
            print(f"{name} frame {index}: {len(faces)} faces")
    doc = {
        "mediapipe": mp.__version__,
        "task": args.task.name,
        "running_mode": "IMAGE",
        "num_faces": 5,
        "blendshape_names": names,
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(records)} images, {sum(len(r['faces']) for r in records)} faces")


if __name__ == "__main__":
    main()

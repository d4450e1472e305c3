"""Rebuilds ``ict68_mm.json`` (the 68 iBUG landmarks of the ICT FaceKit neutral face, in mm).

Run from the repository root, with the shared assets checked out beside it::

    python scripts/build_face_resources.py \
        ../shared/assets/ict-facekit/ict_facekit.npz

The ICT FaceKit (USC ICT, MIT licence) neutral mesh is in cm with +y up, the face looking to +z
and +x the subject's left. We convert to mm and to OpenCV's camera convention for a face looking
at the camera: x right in the image (= subject's left, unchanged), y down (negate y), z away from
the camera (negate z); that is a 180 degree rotation about x, so handedness is kept. The points
are centred on their mean.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(npz_path: str) -> None:
    data = np.load(npz_path)
    pts = data["neutral"][data["landmarks68"]].astype(np.float64) * 10.0  # cm -> mm
    pts = pts * np.array([1.0, -1.0, -1.0])
    pts -= pts.mean(0)
    out = Path(__file__).resolve().parents[1] / "src/facexpr/faces/resources/ict68_mm.json"
    doc = {
        "source": "ICT FaceKit neutral[landmarks68] (USC ICT, MIT licence), ict_facekit.npz",
        "units": "mm",
        "axes": "OpenCV camera convention for a frontal face: x right, y down, z away from camera",
        "origin": "mean of the 68 points",
        "points": [[round(float(v), 4) for v in p] for p in pts],
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/assets/ict-facekit/ict_facekit.npz")

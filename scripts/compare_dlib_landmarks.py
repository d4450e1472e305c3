"""Compares our 68 landmarks with dlib's 68-point predictor on the fixture photos (test oracle).

dlib's predictor model is non-commercial and ~100 MB, so it is never a dependency: install it in a
throwaway venv and run the two steps from the repository root::

    .venv/bin/python scripts/compare_dlib_landmarks.py dump /tmp/meshes.npz
    python3 -m venv /tmp/dlibvenv
    /tmp/dlibvenv/bin/pip install dlib-bin face-recognition-models numpy opencv-python-headless
    /tmp/dlibvenv/bin/python scripts/compare_dlib_landmarks.py compare /tmp/meshes.npz

``dump`` runs the front-end on the photos and saves the 468-point meshes; ``compare`` runs dlib's
HOG detector and predictor, pairs faces by centre, and prints the mean point error normalised by
dlib's outer-eye-corner distance (points 36-45, the 300-W convention), per landmark group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "media"
PHOTOS = [
    "single_face.jpg",
    "multi_face.jpg",
    "0-f1-su-ph.jpg",
    "0-f15-hao-ph.jpg",
    "15-f13-anc-ph.jpg",
    "45-m7-di-ph.jpg",
]
GROUPS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}


def dump(out: str) -> None:
    from facexpr.core.types import Frame
    from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions

    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0, pose=False))
    meshes = {}
    for name in PHOTOS:
        image = cv2.imread(str(MEDIA / name), cv2.IMREAD_COLOR_RGB)
        meshes[name] = np.stack([f.mesh for f in fe.process(Frame(image)).faces])
    np.savez(out, **meshes)


def compare(path: str) -> None:
    import dlib
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    table = Path(__file__).resolve().parents[1] / "src/facexpr/faces/resources/mesh_to_ibug68.json"
    idx = json.loads(table.read_text())["indices"]
    errors = []
    for name, meshes in np.load(path).items():
        image = cv2.imread(str(MEDIA / name), cv2.IMREAD_COLOR_RGB)
        rects = list(detector(image, 1))
        for mesh in meshes:
            lm = mesh[idx, :2]
            c = lm.mean(0)

            def dist(r, c=c):
                return np.hypot(
                    (r.left() + r.right()) / 2 - c[0], (r.top() + r.bottom()) / 2 - c[1]
                )

            if not rects:
                continue
            best = min(rects, key=dist)
            if dist(best) > 0.3 * (best.right() - best.left()):
                continue
            ref = np.array([[p.x, p.y] for p in predictor(image, best).parts()], float)
            errors.append(np.linalg.norm(lm - ref, axis=1) / np.linalg.norm(ref[36] - ref[45]))
    e = np.array(errors)
    print(f"faces compared: {len(e)}; mean error / outer inter-ocular distance: {e.mean():.4f}")
    for group, r in GROUPS.items():
        print(f"  {group:6s} {e[:, list(r)].mean():.4f}")


if __name__ == "__main__":
    {"dump": dump, "compare": compare}[sys.argv[1]](sys.argv[2])

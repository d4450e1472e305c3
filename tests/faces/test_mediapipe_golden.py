"""facexpr's Face Mesh V2 + Blendshape V2 path reproduces MediaPipe's Face Landmarker.

The golden file ``data/mediapipe_golden.json`` was recorded by
``scripts/record_mediapipe_golden.py`` with mediapipe 0.10.21's Tasks API (IMAGE mode, blendshapes
on, ``num_faces`` 5) on the fixture photos and video frames. facexpr runs the front-end in IMAGE
mode with the short-range detector (the one in MediaPipe's bundle) and Face Mesh V2.

Tolerances, from what the two sides can share: the golden landmarks are rounded to 4 decimals of
the image size (0.03-0.05 px here) and XNNPACK's float16 kernels may round differently. Measured
when recorded: landmark error mean <= 0.0005 and max <= 0.0012 inter-ocular distances, blendshape
scores within 0.002; the tolerances below are 2-5x that.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.types import Frame, RunningMode
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.faces.blendshape_model import BLENDSHAPE_NAMES, BlendshapeModel
from facexpr.io.images import read_image

GOLDEN = Path(__file__).resolve().parent / "data" / "mediapipe_golden.json"
LM_MEAN, LM_MAX, Z_MEAN, BS_MAX = 0.002, 0.005, 0.02, 0.01


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text("utf-8"))


@pytest.fixture(scope="module")
def frontend():
    with FaceFrontEnd(
        FaceFrontEndOptions(
            mode=RunningMode.IMAGE,
            detector="short",
            landmark_model="mesh478",
            align_size=0,
            max_faces=5,
        )
    ) as fe:
        yield fe


def _image(media_dir: Path, record: dict, video_frames) -> np.ndarray:
    if record["frame"] is None:
        return read_image(media_dir / record["file"])
    frames = video_frames(media_dir / record["file"], record["frame"] + 1)
    return frames[record["frame"]][0]


def test_golden_file_is_what_the_recorder_writes(golden: dict) -> None:
    assert golden["mediapipe"] == "0.10.21"
    assert golden["running_mode"] == "IMAGE"
    assert tuple(golden["blendshape_names"]) == BLENDSHAPE_NAMES
    assert sum(len(r["faces"]) for r in golden["records"]) == 13


def test_landmarks_and_blendshapes_match_mediapipe(
    golden: dict, frontend: FaceFrontEnd, media_dir: Path, video_frames
) -> None:
    model = BlendshapeModel()
    worst = {"lm_mean": 0.0, "lm_max": 0.0, "z": 0.0, "bs": 0.0}
    for record in golden["records"]:
        image = _image(media_dir, record, video_frames)
        assert image.shape[:2] == (record["height"], record["width"])
        faces = frontend.process(Frame(image=image, source=record["file"])).faces
        where = f"{record['file']} frame {record['frame']}"
        assert len(faces) == len(record["faces"]), where
        w, h = record["width"], record["height"]
        for ref_face in record["faces"]:
            ref = np.asarray(ref_face["landmarks"]) * [w, h, w]  # MediaPipe's z: image widths
            centre = ref[:, :2].mean(0)
            face = min(faces, key=lambda f: np.linalg.norm(f.mesh[:, :2].mean(0) - centre))
            ours = np.concatenate([face.mesh, face.iris])
            iod = np.linalg.norm(ref[33, :2] - ref[263, :2])
            err = np.linalg.norm(ours[:, :2] - ref[:, :2], axis=1) / iod
            z = float(np.abs(ours[:, 2] - ref[:, 2]).mean() / iod)
            bs = float(np.abs(model(ours) - np.asarray(ref_face["blendshapes"])).max())
            found = {"lm_mean": err.mean(), "lm_max": err.max(), "z": z, "bs": bs}
            for key, value in found.items():
                worst[key] = max(worst[key], float(value))
    assert worst["lm_mean"] < LM_MEAN, worst
    assert worst["lm_max"] < LM_MAX, worst
    assert worst["z"] < Z_MEAN, worst
    assert worst["bs"] < BS_MAX, worst

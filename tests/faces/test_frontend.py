from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.core.types import Frame, FrameResult, RunningMode
from facexpr.faces.align import ALIGN_TEMPLATE
from facexpr.faces.frontend import FaceFrontEnd, FaceFrontEndOptions
from facexpr.faces.landmarks68 import eye_centres


@pytest.fixture(scope="module")
def image_fe() -> FaceFrontEnd:
    fe = FaceFrontEnd(FaceFrontEndOptions(mode=RunningMode.IMAGE))
    yield fe
    fe.close()


@pytest.fixture(scope="module")
def video_fe() -> FaceFrontEnd:
    fe = FaceFrontEnd(FaceFrontEndOptions(mode=RunningMode.VIDEO))
    yield fe
    fe.close()


def _run_video(fe: FaceFrontEnd, video_frames, path: Path) -> list[FrameResult]:
    fe.reset()
    frames = video_frames(path)
    return [fe.process(Frame(img, i, t, str(path))) for i, (img, t) in enumerate(frames)]


@pytest.mark.parametrize(
    ("name", "count"),
    [("single_face.jpg", 1), ("multi_face.jpg", 5), ("free-mountain-vector-01.jpg", 0)],
)
def test_image_mode_counts_and_fields(image_fe: FaceFrontEnd, load_rgb, name, count) -> None:
    image = load_rgb(name)
    res = image_fe.process(Frame(image, source=name))
    assert len(res.faces) == count
    assert (res.width, res.height) == (image.shape[1], image.shape[0])
    assert res.success == (count > 0)
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in res.faces]
    assert areas == sorted(areas, reverse=True)  # face_id = rank by area
    assert [f.face_id for f in res.faces] == list(range(count))
    for f in res.faces:
        assert f.landmarks.shape == (68, 2)
        assert f.mesh.shape == (468, 3)
        assert f.keypoints.shape == (6, 2)
        assert f.confidence > 0.9
        assert 0.5 <= f.score <= 1.0
        # Every landmark inside its box enlarged by 5%.
        w, h = f.box[2] - f.box[0], f.box[3] - f.box[1]
        assert np.all(f.landmarks[:, 0] >= f.box[0] - 0.05 * w)
        assert np.all(f.landmarks[:, 0] <= f.box[2] + 0.05 * w)
        assert np.all(f.landmarks[:, 1] >= f.box[1] - 0.05 * h)
        assert np.all(f.landmarks[:, 1] <= f.box[3] + 0.05 * h)
        assert f.aligned.shape == (224, 224, 3)
        eyes = np.stack(eye_centres(f.landmarks)) @ f.align_matrix[:, :2].T + f.align_matrix[:, 2]
        assert np.linalg.norm(eyes - ALIGN_TEMPLATE[:2] * 224, axis=1).max() < 3.0
        assert f.pose.reprojection_error < 20


def test_greyscale_and_rgba(image_fe: FaceFrontEnd, media_dir: Path) -> None:
    grey = cv2.imread(str(media_dir / "BWPictureHuman.jpg"), cv2.IMREAD_GRAYSCALE)
    res = image_fe.process(Frame(grey))
    assert (res.width, res.height) == (2560, 1912)
    # The soldier's face is small (~30 px after the 192 px letterbox) and near profile: the
    # full-range detector at 192 px finds no face here (even at min_score 0.2).
    assert len(res.faces) == 0
    bgra = cv2.imread(str(media_dir / "Image_with_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert bgra.shape[2] == 4
    res = image_fe.process(Frame(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)))
    assert len(res.faces) == 1  # one face, box about (580, 226, 937, 604)
    np.testing.assert_allclose(res.faces[0].box, [580, 226, 937, 604], atol=25)


def test_video_one_id(video_fe: FaceFrontEnd, media_dir: Path, video_frames) -> None:
    results = _run_video(video_fe, video_frames, media_dir / "WolfgangLanger_Pexels.mp4")
    ids = [tuple(f.face_id for f in r.faces) for r in results]
    assert len(ids) > 400
    assert sum(i == (0,) for i in ids) >= 0.98 * len(ids)
    assert results[10].faces[0].keypoints.shape == (6, 2)


def test_face_then_no_face(video_fe: FaceFrontEnd, media_dir: Path, video_frames) -> None:
    # Measured by looking: the face is in frames 0-71 (to ~2.7 s), then gone (169 frames).
    counts = [
        len(r.faces) for r in _run_video(video_fe, video_frames, media_dir / "face_noface.mov")
    ]
    assert all(c == 1 for c in counts[:65])
    assert all(c == 0 for c in counts[80:])


def test_no_face_then_face(video_fe: FaceFrontEnd, media_dir: Path, video_frames) -> None:
    # Measured by looking: no face in frames 0-95, a face from frame 96 (~3.6 s).
    results = _run_video(video_fe, video_frames, media_dir / "noface_face.mov")
    counts = [len(r.faces) for r in results]
    assert all(c == 0 for c in counts[:90])
    assert all(c == 1 for c in counts[100:165])
    assert {f.face_id for r in results for f in r.faces} == {0}


def test_no_face_video(video_fe: FaceFrontEnd, media_dir: Path, video_frames) -> None:
    # The "Caminandes" title lettering scores up to 0.61 as a face; new_track_score rejects it.
    results = _run_video(video_fe, video_frames, media_dir / "no_face.mp4")
    assert len(results) > 90
    assert sum(len(r.faces) for r in results) == 0


def test_smoothing_lowers_jitter(media_dir: Path, video_frames) -> None:
    path = media_dir / "single_face.mp4"
    frames = video_frames(path, 90)
    lms = {}
    for smoothing in (True, False):
        fe = FaceFrontEnd(FaceFrontEndOptions(mode=RunningMode.VIDEO, smoothing=smoothing))
        lms[smoothing] = np.stack(
            [
                fe.process(Frame(img, i, t, str(path))).faces[0].landmarks
                for i, (img, t) in enumerate(frames)
            ]
        )
        fe.close()
    # Frames 35-65 are the stillest stretch of the unsmoothed track (measured).
    still = slice(35, 65)

    def motion(lm: np.ndarray, order: int) -> float:
        return float(np.linalg.norm(np.diff(lm[still], order, axis=0), axis=2).mean())

    assert motion(lms[True], 1) < 0.9 * motion(lms[False], 1)
    assert motion(lms[True], 2) < 0.7 * motion(lms[False], 2)
    # Smoothing must not drag the landmarks away: mean offset under 2% of the face width.
    width = float(np.ptp(lms[False][0, :, 0]))
    assert np.linalg.norm(lms[True] - lms[False], axis=2).mean() < 0.02 * width


def test_options_errors() -> None:
    cases = [
        ({"mode": "video"}, "mode"),
        ({"detector": "tiny"}, "detector"),
        ({"min_face_score": 0.0}, "min_face_score"),
        ({"max_faces": 0}, "max_faces"),
        ({"align_size": 8}, "align_size"),
        ({"new_track_score": 0.3}, "new_track_score"),
        ({"redetect_every": 0}, "redetect_every"),
        ({"max_misses": -1}, "max_misses"),
        ({"num_threads": 0}, "num_threads"),
        ({"min_face_size": -1.0}, "min_face_size"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigError, match=field):
            FaceFrontEndOptions(**kwargs)


def test_no_align_and_closed(load_rgb) -> None:
    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0, pose=False))
    res = fe.process(Frame(load_rgb("single_face.jpg"), source="x.jpg"))
    assert res.faces[0].aligned is None
    assert res.faces[0].pose is None
    fe.close()
    with pytest.raises(InputError, match="after close"):
        fe.process(Frame(np.zeros((8, 8, 3), np.uint8), source="x.jpg"))


def test_video_mode_tracks_five_still_faces(video_fe: FaceFrontEnd, load_rgb) -> None:
    image = load_rgb("multi_face.jpg")
    video_fe.reset()
    results = [video_fe.process(Frame(image, i, i / 30, "still")) for i in range(25)]
    # Redetection every 10 frames must neither duplicate nor renumber the 5 faces.
    assert all([f.face_id for f in r.faces] == [0, 1, 2, 3, 4] for r in results)
    first = {f.face_id: f.box for f in results[0].faces}
    for f in results[-1].faces:
        np.testing.assert_allclose(f.box, first[f.face_id], atol=4.0)


def test_max_faces_and_min_face_size(load_rgb) -> None:
    image = load_rgb("multi_face.jpg")
    fe = FaceFrontEnd(FaceFrontEndOptions(max_faces=2, align_size=0))
    assert len(fe.process(Frame(image)).faces) == 2
    fe.close()
    # The detector boxes there are 112, 111, 105, 103 and 85 px wide: 100 px keeps 4.
    fe = FaceFrontEnd(FaceFrontEndOptions(min_face_size=100, align_size=0))
    assert len(fe.process(Frame(image)).faces) == 4
    fe.close()

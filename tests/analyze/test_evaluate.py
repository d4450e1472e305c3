"""`facexpr evaluate`: the evaluator registry, scoring over folds against hand-counted values,
and the built-in models end to end on a fixture dataset made by the Aff-Wild2 reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from facexpr.analyze import evaluators as E
from facexpr.analyze.evaluate import evaluate
from facexpr.cli.main import main
from facexpr.core.errors import ConfigError
from facexpr.io.datasets import BP4D, AffWild2, write_shards
from facexpr.io.datasets._common import EMOTIONS

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
HEADER = ",".join(["0", *[str(a) for a in range(1, 25)]])
# Subjects from the three published BP4D parts: F001 is tested in fold 3, M011 in fold 2,
# F007 in fold 1.
SUBJECTS = ("F001", "M011", "F007")


def _f1(t: list[int], p: list[int]) -> float:
    tp = sum(1 for a, b in zip(t, p, strict=True) if a == 1 and b == 1)
    fp = sum(1 for a, b in zip(t, p, strict=True) if a == 0 and b == 1)
    fn = sum(1 for a, b in zip(t, p, strict=True) if a == 1 and b == 0)
    return 2 * tp / (2 * tp + fp + fn)


class Lookup:
    """A test model: its AU12 / AU06 predictions are stored per image (keyed by grey level)."""

    name = "lookup"
    au_names = ("AU06", "AU12", "AU99")
    emotions = EMOTIONS[:7]
    va = True
    table: ClassVar[dict[int, tuple[int, int]]] = {}

    def __init__(self, options: E.EvaluatorOptions) -> None:
        self.options = options

    def predict(self, image: np.ndarray) -> E.FacePrediction:
        grey = round(float(image.mean()))
        if grey not in self.table:
            return E.FacePrediction(False)
        au6, au12 = self.table[grey]
        inten = np.array([4.0 * au6, 4.0 * au12, 0.0], np.float32)
        emo = np.full(8, np.nan, np.float32)
        emo[:7] = 0.0
        emo[grey % 7] = 1.0
        return E.FacePrediction(
            True, inten, inten / 5, inten >= 2, emo, valence=grey / 255.0, arousal=0.0
        )

    def close(self) -> None:
        pass


@pytest.fixture
def lookup(monkeypatch: pytest.MonkeyPatch) -> type[Lookup]:
    monkeypatch.setitem(E._REGISTRY, "lookup", (Lookup, "test model"))
    Lookup.table = {}
    return Lookup


def _bp4d(root: Path, rows: list[tuple[str, int, int, int, int]]) -> None:
    """rows: (subject, frame, AU6 label, AU12 label, grey level of the frame image)."""
    coding = root / "AUCoding" / "AU_OCC"
    coding.mkdir(parents=True)
    for subject in SUBJECTS:
        lines = [HEADER]
        for s, f, au6, au12, grey in rows:
            if s != subject:
                continue
            cells = ["0"] * 24
            cells[5], cells[11] = str(au6), str(au12)
            lines.append(",".join([str(f), *cells]))
            d = root / s / "T1"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 24, 3), grey, np.uint8)).save(d / f"{f}.png")
        (coding / f"{subject}_T1.csv").write_text("\n".join(lines) + "\n")


def test_registry_lists_the_builtins_and_suggests_names() -> None:
    assert {"fit", "mediapipe-teacher", "fer-teacher"} <= set(E.list_evaluators())
    with pytest.raises(ConfigError, match=r"unknown model 'fitt'.*did you mean fit"):
        E.create_evaluator("fitt")
    with pytest.raises(ConfigError, match="an evaluator named 'fit' is already registered"):
        E.register_evaluator("fit", "again")(Lookup)
    with pytest.raises(ConfigError, match=r"au_threshold must be in \(0, 5\]"):
        E.EvaluatorOptions(au_threshold=0)


def test_au_scores_match_hand_counts_per_fold(lookup: type[Lookup], tmp_path: Path) -> None:
    # label AU6, AU12 (9 = unknown) | prediction AU6, AU12
    rows = [
        ("F001", 1, 1, 1, 10), ("F001", 2, 0, 1, 20), ("F001", 3, 9, 0, 30),
        ("M011", 1, 1, 0, 40), ("M011", 2, 0, 0, 50),
        ("F007", 1, 1, 1, 60), ("F007", 2, 0, 9, 70), ("F007", 3, 1, 1, 80),
    ]  # fmt: skip
    preds = {
        10: (1, 1),
        20: (1, 0),
        30: (1, 1),
        40: (1, 1),
        50: (0, 0),
        60: (0, 1),
        70: (1, 1),
    }  # fmt: skip  (grey 80: no face found)
    lookup.table = preds
    _bp4d(tmp_path / "src", rows)
    data = write_shards(BP4D(tmp_path / "src"), tmp_path / "ds")
    r = evaluate("lookup", data)
    assert r.au_names == ("AU06", "AU12")
    assert r.au_missing == tuple(f"AU{a:02d}" for a in AUS if a not in (6, 12))
    assert (r.overall.n_samples, r.overall.n_no_face) == (7, 1)
    # By hand, over the 7 faces found, unknown labels left out.
    found = [x for x in rows if x[4] in preds]
    for j, name in ((0, "AU06"), (1, "AU12")):
        t = [x[2 + j] for x in found if x[2 + j] != 9]
        p = [preds[x[4]][j] for x in found if x[2 + j] != 9]
        assert r.overall.au["f1"][name] == pytest.approx(_f1(t, p))
    assert r.overall.au["mean"]["f1"] == pytest.approx(
        (r.overall.au["f1"]["AU06"] + r.overall.au["f1"]["AU12"]) / 2
    )
    # Fold 3 tests on part 1 (F001): AU12 t=[1,1,0] p=[1,0,1] -> F1 1/2.
    f3 = evaluate("lookup", data, fold=3)
    assert f3.overall.n_samples == 3
    assert f3.overall.au["f1"]["AU12"] == pytest.approx(0.5)
    every = evaluate("lookup", data, fold="all")
    assert every.folds["fold3"].au["f1"]["AU12"] == pytest.approx(0.5)
    assert list(every.folds) == ["fold1", "fold2", "fold3"]
    s = every.summary["au.mean_f1"]
    fold_means = [every.folds[k].au["mean"]["f1"] for k in ("fold1", "fold2", "fold3")]
    assert s.mean == pytest.approx(np.mean(fold_means))
    assert s.fold_std == pytest.approx(np.std(fold_means, ddof=1))
    text = every.table()
    assert "AU12" in text
    assert "Over folds" in text
    with pytest.raises(ConfigError, match="no fold 4 in the dataset's splits"):
        evaluate("lookup", data, fold=4)


def _affwild2(root: Path, expr: list[int], va: list[str]) -> None:
    d = root / "Annotations" / "EXPR_Classification_Challenge" / "Validation_Set"
    d.mkdir(parents=True)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    (d / "vid.txt").write_text("\n".join([header, *map(str, expr)]) + "\n")
    d = root / "Annotations" / "VA_Estimation_Challenge" / "Validation_Set"
    d.mkdir(parents=True)
    (d / "vid.txt").write_text("\n".join(["valence,arousal", *va]) + "\n")
    img = root / "cropped_aligned" / "vid"
    img.mkdir(parents=True)
    for i in range(len(expr)):
        grey = 30 * (i + 1)
        Image.fromarray(np.full((32, 32, 3), grey, np.uint8)).save(img / f"{i + 1:05d}.png")


def test_emotion_and_va_scores_match_hand_values(lookup: type[Lookup], tmp_path: Path) -> None:
    # ABAW codes: 4 Happiness, 0 Neutral, 6 Surprise, 7 Other (no facexpr class), -1 invalid.
    expr = [4, 0, 6, 7, -1]
    va = ["0.2,0.1", "0.1,-5", "0.4,0.3", "-5,-5", "0.3,0.2"]
    _affwild2(tmp_path / "src", expr, va)
    # Images are PNG in this fixture, so read them under their real names.
    for p in (tmp_path / "src" / "cropped_aligned" / "vid").glob("*.png"):
        p.rename(p.with_suffix(".jpg"))
    lookup.table = {30 * (i + 1): (0, 0) for i in range(5)}
    data = write_shards(AffWild2(tmp_path / "src"), tmp_path / "ds")
    r = evaluate("lookup", data)
    assert r.au_names == ()
    # Predicted class = grey % 7 -> greys 30, 60, 90: classes 2, 4, 6 (surprise, anger, fear).
    truth = [EMOTIONS.index("happiness"), EMOTIONS.index("neutral"), EMOTIONS.index("surprise")]
    pred = [30 % 7, 60 % 7, 90 % 7]
    assert r.overall.emotion["n"] == 3
    assert r.overall.emotion["accuracy"] == pytest.approx(
        np.mean([a == b for a, b in zip(truth, pred, strict=True)])
    )
    # Valence: the model says grey / 255 on frames 1, 2, 3, 5 (frame 4 invalid upstream).
    t = np.array([0.2, 0.1, 0.4, 0.3])
    p = np.array([30, 60, 90, 150]) / 255.0
    ccc = (
        2
        * np.mean((t - t.mean()) * (p - p.mean()))
        / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)
    )
    assert r.overall.va["valence"]["ccc"] == pytest.approx(ccc)
    assert r.overall.va["valence"]["n"] == 4
    assert r.overall.va["arousal"]["n"] == 3
    out = tmp_path / "r.json"
    assert (
        main(["-q", "evaluate", "--model", "lookup", "--data", str(data), "--out", str(out)]) == 0
    )
    saved = json.loads(out.read_text())
    assert saved["overall"]["va"]["valence"]["ccc"] == pytest.approx(ccc)
    assert saved["overall"]["au"] == {}


def test_nothing_in_common_is_a_usage_error(lookup: type[Lookup], tmp_path: Path, capsys) -> None:
    _bp4d(tmp_path / "src", [("F001", 1, 1, 1, 10)])
    data = write_shards(BP4D(tmp_path / "src"), tmp_path / "ds")
    rc = main(["-q", "evaluate", "--model", "fer-teacher", "--data", str(data)])
    err = capsys.readouterr().err
    # Either the teacher's weights are missing (exit 2, the file named) or it predicts no AUs.
    assert rc == 2
    assert "nothing to score" in err or "teacher weights not found" in err
    assert main(["-q", "evaluate", "--model", "nope", "--data", str(data)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


class EmotionsOnly(Lookup):
    name = "emotions-only"
    au_names = ()
    va = False


def test_evaluate_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(E._REGISTRY, "emotions-only", (EmotionsOnly, "test model"))
    _bp4d(tmp_path / "src", [("F001", 1, 1, 1, 10)])
    data = write_shards(BP4D(tmp_path / "src"), tmp_path / "ds")
    with pytest.raises(
        ConfigError, match=r"emotions-only predicts emotions, but .* nothing to score"
    ):
        evaluate("emotions-only", data)
    with pytest.raises(ConfigError, match="limit must be >= 1"):
        evaluate("emotions-only", data, limit=0)
    (tmp_path / "raf" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt").write_text("test_0001.jpg 1\n")
    Path(tmp_path / "raf" / "Image" / "aligned").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(
        tmp_path / "raf" / "Image" / "aligned" / "test_0001_aligned.jpg"
    )
    from facexpr.io.datasets import RafDB

    raf = write_shards(RafDB(tmp_path / "raf"), tmp_path / "rafds")
    with pytest.raises(ConfigError, match="the dataset has no fold splits"):
        evaluate("emotions-only", raf, fold="all")
    with pytest.raises(ConfigError, match=r"no fold 1 in the dataset's splits \(folds: none\)"):
        evaluate("emotions-only", raf, fold=1)
    with pytest.raises(ConfigError, match="device must be 'cpu', 'cuda' or 'auto'"):
        E.EvaluatorOptions(device="tpu")
    with pytest.raises(ConfigError, match="num_threads must be >= 1"):
        E.EvaluatorOptions(num_threads=0)


def test_intensity_scores_on_a_ckplus_fixture(lookup: type[Lookup], tmp_path: Path) -> None:
    """CK+ peaks with AU6 / AU12 intensities: ICC(3,1), PCC and MAE against hand values."""
    from facexpr.io.datasets import CKPlus

    # (subject, grey of the peak frame, AU6 intensity, AU12 intensity); 0 = not listed.
    peaks = [("S005", 40, 0, 4), ("S010", 80, 3, 2), ("S011", 120, 2, 0), ("S014", 160, 5, 5)]
    root = tmp_path / "src"
    for s, grey, au6, au12 in peaks:
        d = root / "cohn-kanade-images" / s / "001"
        d.mkdir(parents=True)
        Image.fromarray(np.full((30, 30), grey, np.uint8)).save(d / f"{s}_001_00000002.png")
        f = root / "FACS" / s / "001"
        f.mkdir(parents=True)
        lines = [f"{a} {i}" for a, i in ((6, au6), (12, au12)) if i]
        (f / f"{s}_001_00000002_facs.txt").write_text("\n".join(lines) + "\n")
    # The model: AU6 present on greys 80 and 160, AU12 on 40 and 160 (intensity 4 when present).
    lookup.table = {40: (0, 1), 80: (1, 0), 120: (0, 0), 160: (1, 1)}
    data = write_shards(CKPlus(root), tmp_path / "ds")
    r = evaluate("lookup", data)
    assert r.au_names == ("AU06", "AU12")
    truth = {"AU06": [0, 3, 2, 5], "AU12": [4, 2, 0, 5]}
    pred = {"AU06": [0, 4, 0, 4], "AU12": [4, 0, 0, 4]}
    for a in ("AU06", "AU12"):
        t, p = np.array(truth[a], float), np.array(pred[a], float)
        assert r.overall.au["mae"][a] == pytest.approx(np.abs(t - p).mean())
        assert r.overall.au["pcc"][a] == pytest.approx(np.corrcoef(t, p)[0, 1])
        # ICC(3,1) with k = 2 judges: (BMS - EMS) / (BMS + EMS), from the two-way ANOVA sums.
        x = np.stack([t, p], 1)
        g = x.mean()
        ss_r = 2 * ((x.mean(1) - g) ** 2).sum()
        ss_c = 4 * ((x.mean(0) - g) ** 2).sum()
        ems = (((x - g) ** 2).sum() - ss_r - ss_c) / 3
        bms = ss_r / 3
        assert r.overall.au["icc"][a] == pytest.approx((bms - ems) / (bms + ems))
    # Occurrence comes from the FACS lists: AU6 present in S010, S011, S014.
    assert r.overall.au["f1"]["AU06"] == pytest.approx(_f1([0, 1, 1, 1], [0, 1, 0, 1]))
    assert "ICC" in r.table()

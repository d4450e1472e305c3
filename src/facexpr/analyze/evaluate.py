"""``facexpr evaluate``: run a model over a shard dataset and score it as papers do.

:func:`evaluate` reads a dataset written by a reader of :mod:`facexpr.io.datasets`, runs an
evaluator of :mod:`facexpr.analyze.evaluators` on every stored image (or on the test subjects of
one fold, or fold by fold), and scores what both have:

- AUs (``au_occurrence``): per-AU F1 and AUC and their means over the AUs the model predicts;
  with ``au_intensity`` labels, per-AU ICC(3,1), PCC and MAE too.
- Emotions (``emotion``): accuracy and macro-F1 over the dataset's classes.
- Valence / arousal: CCC and PCC.

Invalid labels are masked (:mod:`facexpr.core.metrics`). Images where the model finds no face
are left out of the scores and counted (``n_no_face``): compare models on the same coverage.
:meth:`EvaluationReport.table` prints the result the way papers print it (F1, AUC and accuracy
in percent); :meth:`EvaluationReport.to_json` is what ``--out`` writes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.analyze.evaluators import EMOTIONS, EvaluatorOptions, create_evaluator
from facexpr.core import metrics as M
from facexpr.core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["EvaluationReport", "Scores", "evaluate", "score"]


@dataclass
class _Collected:
    """Labels and predictions of the faces the model found, stacked."""

    au_true: list[np.ndarray] = field(default_factory=list)
    au_int_true: list[np.ndarray] = field(default_factory=list)
    au_score: list[np.ndarray] = field(default_factory=list)
    au_present: list[np.ndarray] = field(default_factory=list)
    au_int_pred: list[np.ndarray] = field(default_factory=list)
    emo_true: list[int] = field(default_factory=list)
    emo_pred: list[int] = field(default_factory=list)
    va_true: list[tuple[float, float]] = field(default_factory=list)
    va_pred: list[tuple[float, float]] = field(default_factory=list)
    n: int = 0
    n_no_face: int = 0


@dataclass(frozen=True, slots=True)
class Scores:
    """The scores of one set of faces (all of them, or one fold's test subjects).

    Attributes:
        n_samples: images scored (the model found a face).
        n_no_face: images where the model found no face (left out).
        au: per-AU metrics, metric name -> AU -> value ('f1', 'auc'; with intensities 'icc',
            'pcc', 'mae'), and 'mean' -> metric name -> mean over AUs (NaN AUs skipped); empty
            when not scored.
        emotion: 'accuracy', 'macro_f1', 'n'; empty when not scored.
        va: 'valence' / 'arousal' -> {'ccc', 'pcc', 'n'}, 'mean_ccc'; empty when not scored.
    """

    n_samples: int
    n_no_face: int
    au: dict[str, Any]
    emotion: dict[str, float]
    va: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return _clean(
            {
                "n_samples": self.n_samples,
                "n_no_face": self.n_no_face,
                "au": self.au,
                "emotion": self.emotion,
                "va": self.va,
            }
        )


def _clean(v: Any) -> Any:
    """Returns ``v`` with NaN floats as None (JSON has no NaN)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, float | np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _nanmean(values: Iterable[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def score(c: _Collected, au_names: tuple[str, ...], classes: tuple[int, ...]) -> Scores:
    """Returns the :class:`Scores` of collected labels and predictions."""
    au: dict[str, Any] = {}
    if au_names and c.au_true:
        t = np.stack(c.au_true)
        mask = t >= 0
        au["f1"] = dict(zip(au_names, M.per_column(M.f1_score, t, np.stack(c.au_present), mask),
                            strict=True))  # fmt: skip
        au["auc"] = dict(zip(au_names, M.per_column(M.roc_auc, t, np.stack(c.au_score), mask),
                             strict=True))  # fmt: skip
        if c.au_int_true:
            ti = np.stack(c.au_int_true)
            pi = np.stack(c.au_int_pred)
            mi = ti >= 0
            for name, fn in (("icc", M.icc_3_1), ("pcc", M.pcc), ("mae", M.mae)):
                au[name] = dict(zip(au_names, M.per_column(fn, ti, pi, mi), strict=True))
        au["mean"] = {k: _nanmean(v.values()) for k, v in au.items()}
        au["n_labelled"] = dict(zip(au_names, mask.sum(axis=0).tolist(), strict=True))
    emotion: dict[str, float] = {}
    if c.emo_true:
        yt, yp = np.array(c.emo_true), np.array(c.emo_pred)
        emotion = {
            "accuracy": M.accuracy(yt, yp),
            "macro_f1": M.macro_f1(yt, yp, labels=list(classes) or None),
            "n": len(yt),
        }
    va: dict[str, Any] = {}
    if c.va_true:
        t2, p2 = np.array(c.va_true, np.float64), np.array(c.va_pred, np.float64)
        for j, name in enumerate(("valence", "arousal")):
            m = np.isfinite(t2[:, j])
            va[name] = {
                "ccc": M.ccc(t2[:, j], p2[:, j], m),
                "pcc": M.pcc(t2[:, j], p2[:, j], m),
                "n": int(m.sum()),
            }
        va["mean_ccc"] = _nanmean(va[n]["ccc"] for n in ("valence", "arousal"))
    return Scores(c.n, c.n_no_face, au, emotion, va)


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What :func:`evaluate` measured.

    Attributes:
        model: evaluator name.
        data: the dataset folder.
        dataset: the dataset's name (manifest attribute).
        fold: the fold scored (1-based), 'all' (each fold, then their summary) or None (every
            image).
        au_names: AUs scored (in both the dataset and the model).
        au_missing: dataset AUs the model does not predict (not scored).
        au_threshold: intensity at which an intensity-only model's AU counts as present.
        emotions: classes scored (indices into EMOTIONS present in the labels).
        overall: scores over every image evaluated.
        folds: fold name -> scores (with ``fold='all'``).
        summary: metric -> mean and spread over folds (with ``fold='all'``).
    """

    model: str
    data: str
    dataset: str
    fold: int | str | None
    au_names: tuple[str, ...]
    au_missing: tuple[str, ...]
    au_threshold: float
    emotions: tuple[str, ...]
    overall: Scores
    folds: dict[str, Scores]
    summary: dict[str, M.RunSummary]

    def to_json(self) -> dict[str, Any]:
        return _clean(
            {
                "model": self.model,
                "data": self.data,
                "dataset": self.dataset,
                "fold": self.fold,
                "au_names": list(self.au_names),
                "au_missing": list(self.au_missing),
                "au_threshold": self.au_threshold,
                "emotions": list(self.emotions),
                "overall": self.overall.to_json(),
                "folds": {k: v.to_json() for k, v in self.folds.items()},
                "summary": {k: v.to_json() for k, v in self.summary.items()},
            }
        )

    def table(self) -> str:
        """Returns the report as text, laid out as papers print it."""
        return "\n".join(_table_lines(self))


def _fmt(v: float, pct: bool) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def _table_lines(r: EvaluationReport) -> Iterator[str]:
    s = r.overall
    where = {None: "all images", "all": "every fold"}.get(r.fold, f"fold {r.fold} test subjects")  # type: ignore[call-overload]
    yield (f"{r.model} on {r.dataset} ({where}): {s.n_samples} faces scored, "
           f"{s.n_no_face} without a face found")  # fmt: skip
    if s.au:
        cols = [k for k in ("f1", "auc", "icc", "pcc", "mae") if k in s.au]
        pct = {"f1": True, "auc": True}
        heads = {"f1": "F1", "auc": "AUC", "icc": "ICC", "pcc": "PCC", "mae": "MAE"}
        yield ""
        yield "AU      " + "".join(f"{heads[c]:>8}" for c in cols) + "       n"
        for a in r.au_names:
            vals = "".join(f"{_fmt(s.au[c][a], pct.get(c, False)):>8}" for c in cols)
            yield f"{a:<8}{vals}{s.au['n_labelled'][a]:>8}"
        yield "Mean    " + "".join(f"{_fmt(s.au['mean'][c], pct.get(c, False)):>8}" for c in cols)
        yield (f"(F1 and AUC in %; an AU counts as present at intensity >= {r.au_threshold:g}; "
               "'-' = undefined)")  # fmt: skip
        if r.au_missing:
            yield f"not predicted by {r.model}: {', '.join(r.au_missing)}"
    if s.emotion:
        yield ""
        acc, mf1 = _fmt(s.emotion["accuracy"], True), _fmt(s.emotion["macro_f1"], True)
        yield (f"Emotion ({len(r.emotions)} classes, n={s.emotion['n']}): accuracy {acc}, "
               f"macro-F1 {mf1}")  # fmt: skip
    if s.va:
        yield ""
        for n in ("valence", "arousal"):
            v = s.va[n]
            ccc, pcc = _fmt(v["ccc"], False), _fmt(v["pcc"], False)
            yield f"{n.capitalize():<8} CCC {ccc}  PCC {pcc}  n={v['n']}"
        yield f"Mean CCC {_fmt(s.va['mean_ccc'], False)}"
    if r.summary:
        yield ""
        yield "Over folds (mean +- std of the fold values):"
        for k, v in r.summary.items():
            pct = k.endswith(("f1", "auc", "accuracy"))
            folds = "  ".join(f"{f} {_fmt(x, pct)}" for f, x in v.folds.items())
            yield f"  {k:<20} {_fmt(v.mean, pct)} +- {_fmt(v.fold_std, pct)}   ({folds})"


def _fold_of(splits: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {s: name for name, ids in splits.items() if name.startswith("fold") for s in ids}


def evaluate(
    model: str,
    data: str | Path,
    *,
    fold: int | Literal["all"] | None = None,
    options: EvaluatorOptions | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Runs ``model`` over the dataset ``data`` and scores it.

    Args:
        model: a registered evaluator name (:func:`~facexpr.analyze.evaluators.list_evaluators`).
        data: a facexpr dataset folder written by a reader of :mod:`facexpr.io.datasets`.
        fold: score only the test subjects of this fold (1-based, the manifest's ``foldK``
            splits); 'all' scores every fold's test subjects and summarises over folds; None
            scores every image.
        options: evaluator options; ``aligned`` is taken from the dataset's manifest.
        limit: score at most this many images (quick runs).
        progress: tqdm bar on stderr.

    Raises:
        ConfigError: unknown model, no fold K in the dataset, or nothing in common between what
            the model predicts and what the dataset labels.
        InputError: unreadable dataset.
    """
    from facexpr.io.datasets.protocols import get_fold
    from facexpr.io.shards import ShardReader, read_manifest

    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    m = read_manifest(data)
    fields = {f.name for f in m.fields}
    attrs = m.attributes
    opts = dataclasses.replace(options or EvaluatorOptions(), aligned=bool(attrs.get("aligned")))
    subjects = None
    fold_of: dict[str, str] = {}
    if fold == "all":
        fold_of = _fold_of(m.splits)
        if not fold_of:
            raise ConfigError(f"{m.path}: the dataset has no fold splits (fold1 ..)")
        subjects = set(fold_of)
    elif fold is not None:
        subjects = set(get_fold(m.splits, int(fold)).test)
    evaluator = create_evaluator(model, opts)
    try:
        data_aus = tuple(attrs.get("au_names", [])) if "au_occurrence" in fields else ()
        au_names = tuple(a for a in data_aus if a in evaluator.au_names)
        au_missing = tuple(a for a in data_aus if a not in evaluator.au_names)
        data_cols = [data_aus.index(a) for a in au_names]
        model_cols = [evaluator.au_names.index(a) for a in au_names]
        do_emotion = "emotion" in fields and bool(evaluator.emotions)
        do_va = bool({"valence", "arousal"} & fields) and evaluator.va
        if not (au_names or do_emotion or do_va):
            has = ", ".join(sorted(fields & {"au_occurrence", "emotion", "valence"})) or "none"
            raise ConfigError(
                f"{model} predicts {_what(evaluator)}, but {data} labels {has}"
                f"{' (AUs ' + ', '.join(data_aus) + ')' if data_aus else ''}: nothing to score"
            )
        reader = ShardReader(data, shuffle_buffer=0, subjects=subjects)
        groups: dict[str, _Collected] = {}
        overall = _Collected()
        seen_classes: set[int] = set()
        samples: Iterable[Any] = reader
        if progress:
            from tqdm import tqdm

            total = m.n_samples if limit is None else min(limit, m.n_samples)
            samples = tqdm(reader, total=total, desc=f"evaluate {model}", unit="img")
        done = 0
        for sample in samples:
            if limit is not None and done >= limit:
                break
            done += 1
            labels = sample.labels
            targets = [overall]
            if fold_of:
                targets.append(groups.setdefault(fold_of[sample.subject_id], _Collected()))
            pred = evaluator.predict(np.asarray(sample.image))
            for c in targets:
                c.n += int(pred.found)
                c.n_no_face += int(not pred.found)
            if not pred.found:
                continue
            for c in targets:
                if au_names and "au_occurrence" in labels and pred.au_score is not None:
                    c.au_true.append(np.asarray(labels["au_occurrence"])[data_cols])
                    c.au_score.append(pred.au_score[model_cols])
                    c.au_present.append(pred.au_present[model_cols])
                    if "au_intensity" in fields and pred.au_intensity is not None:
                        it = labels.get("au_intensity")
                        c.au_int_true.append(
                            np.asarray(it, np.float32)[data_cols] if it is not None
                            else np.full(len(au_names), -1, np.float32)
                        )  # fmt: skip
                        c.au_int_pred.append(pred.au_intensity[model_cols])
                if do_emotion and "emotion" in labels and pred.emotion is not None:
                    seen_classes.add(int(labels["emotion"]))
                    c.emo_true.append(int(labels["emotion"]))
                    c.emo_pred.append(int(np.nanargmax(pred.emotion)))
                if do_va and pred.valence is not None and pred.arousal is not None:
                    tv = (
                        float(labels.get("valence", np.nan)),
                        float(labels.get("arousal", np.nan)),
                    )
                    if np.isfinite(tv).any():
                        c.va_true.append(tv)
                        c.va_pred.append((pred.valence, pred.arousal))
    finally:
        evaluator.close()
    classes = tuple(sorted(seen_classes))
    folds = {k: score(groups[k], au_names, classes) for k in sorted(groups, key=_fold_key)}
    summary = _summarize(folds) if folds else {}
    return EvaluationReport(
        model=model,
        data=str(data),
        dataset=str(attrs.get("dataset", Path(data).name)),
        fold=fold,
        au_names=au_names,
        au_missing=au_missing,
        au_threshold=opts.au_threshold,
        emotions=tuple(EMOTIONS[i] for i in classes),
        overall=score(overall, au_names, classes),
        folds=folds,
        summary=summary,
    )


def _fold_key(name: str) -> int:
    return int(name[4:]) if name[4:].isdigit() else 0


def _what(e: Any) -> str:
    parts = []
    if e.au_names:
        parts.append("AUs")
    if e.emotions:
        parts.append("emotions")
    if e.va:
        parts.append("valence-arousal")
    return " and ".join(parts) or "nothing"


def _summarize(folds: dict[str, Scores]) -> dict[str, M.RunSummary]:
    """Returns metric -> mean and spread over the folds (one run, seed 0, per fold)."""
    keys: dict[str, dict[tuple[str, int], float]] = {}
    for name, s in folds.items():
        if s.au:
            for metric, v in s.au["mean"].items():
                keys.setdefault(f"au.mean_{metric}", {})[(name, 0)] = v
        for metric in ("accuracy", "macro_f1"):
            if metric in s.emotion:
                keys.setdefault(f"emotion.{metric}", {})[(name, 0)] = s.emotion[metric]
        if s.va:
            keys.setdefault("va.mean_ccc", {})[(name, 0)] = s.va["mean_ccc"]
    out = {}
    for k, runs in keys.items():
        if any(np.isfinite(v) for v in runs.values()):
            out[k] = M.summarize_runs(runs)
    return out

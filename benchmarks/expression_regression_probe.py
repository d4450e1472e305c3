"""Does a frozen encoder's feature carry the expression labels to identities it never saw?

A linear (ridge) regression from frozen pooled features (mean of the patch tokens) to the label
vectors the triplets are mined by: the exact rig weights (``arkit_weights``) of synthetic faces
and the Blendshape V2 teacher scores (``arkit_teacher``) of real faces. Fitted on the ``train``
side of the expression recipe's subject split, scored on its ``test`` side (identities / people
never fitted on; the same split rule and seed as ``facexpr train expression``, so a run's held-out
subjects are held out here too). The ridge strength is picked on a subject-exclusive validation
fold of the training side. Reports Pearson r over all held-out (face, dimension) values (each
dimension centred), the mean of per-dimension r and R2 against predicting the training label
mean, on held-out and (for contrast) training faces.

    python benchmarks/expression_regression_probe.py --mae runs/mae_tiny \\
        --rig data/synth_pairs --teacher data/utkface --out benchmarks/results/x.json
    python benchmarks/expression_regression_probe.py --weights RUN/expression.safetensors ...
        # the encoder of a stage-2 run instead (an ``expression`` model file)
    python benchmarks/expression_regression_probe.py --pixels ...   # raw pixels, no encoder

Never writes images.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _common import git_commit
from facexpr.nn import create_model, load_weights
from facexpr.nn.vit import FACE_MEAN, FACE_STD
from facexpr.train.augment import normalise
from facexpr.train.checkpoint import load_model_weights
from facexpr.train.mixing import resize_square
from facexpr.train.triplets import RigTriplets, TeacherTriplets, split_subjects


def _side(source, n: int, seed: int) -> tuple[list[tuple[int, int]], np.ndarray, list[str]]:
    """Returns up to ``n`` random (dataset, index) refs of a source's side, their labels and
    subject keys."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(source.refs))[:n]
    return (
        [source.refs[int(i)] for i in pick],
        source.vectors[pick],
        [source.subject_keys[int(i)] for i in pick],
    )


def features(encoder: torch.nn.Module | None, source, refs, size: int) -> np.ndarray:
    """Returns (N, C) float64 patch-token means of the faces ``refs`` of ``source`` (``encoder``
    None: the faces' 32x32 grey pixels in [0, 1], a baseline without any learned features)."""
    if encoder is None:
        grey = [
            Image.fromarray(resize_square(source.indexes[d].image(k), size)).convert("L")
            for d, k in refs
        ]
        return np.stack([np.asarray(g.resize((32, 32), Image.BILINEAR), np.float64).ravel()
                         for g in grey]) / 255.0  # fmt: skip
    out = []
    with torch.no_grad():
        for b in range(0, len(refs), 64):
            imgs = np.stack(
                [resize_square(source.indexes[d].image(k), size) for d, k in refs[b : b + 64]]
            )
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
            tok = encoder.forward_features(normalise(x, FACE_MEAN, FACE_STD))
            out.append(tok[:, 1:].mean(1).double().numpy())
    return np.concatenate(out)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float):
    mu, sd = x.mean(0), x.std(0) + 1e-8
    ym = y.mean(0)
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * len(z) * np.eye(z.shape[1]), z.T @ (y - ym))
    return lambda q: ((q - mu) / sd) @ w + ym


def _r(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Returns (Pearson r over all values, each dimension centred on its mean, so the dimensions'
    different means do not count as skill; mean per-dimension r over dimensions that vary)."""
    pc, yc = pred - pred.mean(0), y - y.mean(0)
    overall = float(np.corrcoef(pc.ravel(), yc.ravel())[0, 1])
    per = [
        float(np.corrcoef(pred[:, j], y[:, j])[0, 1])
        for j in range(y.shape[1])
        if y[:, j].std() > 1e-6 and pred[:, j].std() > 1e-12
    ]
    return overall, float(np.mean(per)) if per else float("nan")


def probe(encoder, source_train, source_test, n_train: int, n_test: int, size: int) -> dict:
    """Fits the ridge on the train side, picks its strength on a validation fold; returns r."""
    refs, y, subj = _side(source_train, n_train, 0)
    refs_t, y_t, _ = _side(source_test, n_test, 1)
    x = features(encoder, source_train, refs, size)
    x_t = features(encoder, source_test, refs_t, size)
    fold = split_subjects(subj, 0.2, seed=5)
    fit = np.array([s in fold["train"] for s in subj])
    val = {}
    for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        val[lam] = _r(_ridge(x[fit], y[fit], lam)(x[~fit]), y[~fit])[0]
    lam = max(val, key=lambda k: val[k])
    f = _ridge(x, y, lam)
    r_tr, r_tr_dim = _r(f(x), y)
    r_te, r_te_dim = _r(f(x_t), y_t)
    # The label mean alone: what r means relative to knowing nothing about the face.
    mse0 = float(((y_t - y.mean(0)) ** 2).mean())
    return {
        "train_faces": len(y),
        "test_faces": len(y_t),
        "ridge": lam,
        "val_r_by_ridge": {str(k): v for k, v in val.items()},
        "train_r": r_tr,
        "train_r_per_dim": r_tr_dim,
        "test_r": r_te,
        "test_r_per_dim": r_te_dim,
        "test_mse": float(((f(x_t) - y_t) ** 2).mean()),
        "test_mse_label_mean": mse0,
        "test_r2": 1.0 - float(((f(x_t) - y_t) ** 2).mean()) / mse0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--mae", type=Path, help="a facexpr train mae run folder")
    g.add_argument("--weights", type=Path, help="an expression model .safetensors")
    g.add_argument("--pixels", action="store_true", help="32x32 grey pixels, no encoder")
    ap.add_argument("--rig", type=Path, help="synthetic dataset (arkit_weights)")
    ap.add_argument("--teacher", type=Path, help="real faces with arkit_teacher")
    ap.add_argument("--train", type=int, default=2000, help="training faces per source")
    ap.add_argument("--test", type=int, default=600, help="held-out faces per source")
    ap.add_argument("--test-share", type=float, default=0.1)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("expression")
    if args.mae is not None:
        load_model_weights(model.encoder, args.mae / "encoder.safetensors")
    elif args.weights is not None:
        model = load_weights(model, args.weights)
    encoder = None if args.pixels else model.encoder.eval()
    t0 = time.time()
    kw = {"test_share": args.test_share, "split_seed": args.split_seed, "size": 112}
    results = {}
    for name, cls, path in (("rig", RigTriplets, args.rig), ("teacher", TeacherTriplets,
                                                            args.teacher)):  # fmt: skip
        if path is None:
            continue
        tr = cls([str(path)], 1, split="train", **kw)
        te = cls([str(path)], 1, split="test", **kw)
        shared = set(tr.subject_keys) & set(te.subject_keys)
        if shared:
            raise SystemExit(f"{name}: train and test share subjects {sorted(shared)[:3]}")
        r = probe(encoder, tr, te, args.train, args.test, 112)
        results[name] = r
        print(
            f"{name:8s} held-out r {r['test_r']:.3f} (per dim {r['test_r_per_dim']:.3f}, "
            f"R2 {r['test_r2']:.3f}), train r {r['train_r']:.3f} (per dim "
            f"{r['train_r_per_dim']:.3f}); mse {r['test_mse']:.4f} vs label mean "
            f"{r['test_mse_label_mean']:.4f}"
        )
    out = {
        "encoder": "pixels32_grey" if args.pixels else str(args.mae or args.weights or "random"),
        "results": results,
        "seconds": time.time() - t0,
        "commit": git_commit(),
        "machine": platform.platform(),
        "threads": args.threads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

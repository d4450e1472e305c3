"""Do photoreal synthetic faces look real? Issue 14's measures, against the untextured engine.

On renders of held-out people (the bank's test split: people never in its train split), with the
same expressions, poses and backgrounds as the untextured engine's renders (same seed; checked):

1. **Recovery of the known weights**: the face front-end and the fitter (``facexpr analyze
   --blendshapes fit``), and MediaPipe's Blendshape V2 (``--blendshapes mediapipe``, the
   project's LiteRT code), run on the aligned crops; mean Pearson r over the 52 ARKit channels
   (channels constant in either series are left out, as ``tongueOut``).
2. **A real-vs-synthetic classifier**: logistic regression (L2, numpy) on fixed image features of
   aligned crops: 24x24 RGB pixels and colour statistics of the face's centre (mean, std, HSV
   histogram, gradient energy). Real = UTKFace photos not in the bank, aligned by the same
   front-end (same template, same size); synthetic = each condition's crops (the photoreal
   ones with ``identity_block=1``, so the 240 renders show many people, as the real crops do).
   Half the people train it, the other half are held out (5 random halvings, averaged); the
   held-out accuracy says how separable the sets are (50% = indistinguishable).
3. **Contact sheets** into ``--sheets`` (default /tmp): one expression on 8 people, 8
   expressions on one person, for each condition. Not kept in the repository (UTKFace).

Usage::

    python benchmarks/photoreal.py --people 160 --bank /tmp/utk_bank     # builds the bank
    python benchmarks/photoreal_realism.py --bank /tmp/utk_bank --n 240 --real 240

Writes ``benchmarks/results/photoreal_realism.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import git_commit
from facexpr.analyze.blendshapes import BlendshapeFitter
from facexpr.analyze.mediapipe_blendshapes import MediaPipeBlendshapes
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.types import Frame, FrameResult
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.io.shards import ShardDataset
from facexpr.synth import SynthOptions, generate
from facexpr.synth.bank import load_bank, person_split

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(
    os.environ.get("FACEXPR_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-6 or b.std() < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _largest(out: FrameResult) -> FrameResult | None:
    if not out.faces:
        return None
    big = max(out.faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    return FrameResult(out.source, out.index, out.timestamp, out.width, out.height, (big,))


def recover(samples: list, fe: FaceFrontEnd) -> dict[str, object]:
    """Runs the front-end, the fitter and Blendshape V2 on crops; returns mean r and details."""
    fitter = BlendshapeFitter(points="mesh468")
    bv2 = MediaPipeBlendshapes()
    truth, fit, mp, resid = [], [], [], []
    missed = 0
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        out = _largest(fe.process(Frame(image=s.image, source=f"s{i}")))
        if out is None:
            missed += 1
            continue
        (f,) = fitter.process([out], tracked=False)
        (m,) = bv2.process([out], tracked=False)
        truth.append(s.labels["arkit_weights"])
        fit.append(f.faces[0].blendshapes)
        mp.append(m.faces[0].blendshapes)
        resid.append(f.faces[0].fit_residual)
    t, ef, em = np.asarray(truth), np.asarray(fit), np.asarray(mp)
    rf = {n: _corr(t[:, j], ef[:, j]) for j, n in enumerate(ARKIT_NAMES)}
    rm = {n: _corr(t[:, j], em[:, j]) for j, n in enumerate(ARKIT_NAMES)}
    return {
        "found": len(t),
        "missed": missed,
        "fitter_mean_r": float(np.nanmean(list(rf.values()))),
        "bv2_mean_r": float(np.nanmean(list(rm.values()))),
        "fit_residual_median": float(np.median(resid)),
        "seconds": round(time.perf_counter() - t0, 1),
        "fitter_r": rf,
        "bv2_r": rm,
    }


def features(img: np.ndarray, region: str = "crop") -> np.ndarray:
    """Returns fixed features of an aligned (S, S, 3) uint8 crop: 24x24 RGB pixels, colour
    statistics (mean, std, 8-bin hue and saturation histograms) and gradient energy of the face's
    centre (the middle half of the crop). ``region="face"``: the pixels too are of the face's
    centre only (no hair, head outline or background)."""
    import cv2

    s = img.shape[0]
    c = img[s // 4 : 3 * s // 4, s // 4 : 3 * s // 4]
    small = cv2.resize(img if region == "crop" else c, (24, 24), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32) / 255.0
    cf = c.reshape(-1, 3).astype(np.float32) / 255.0
    hsv = cv2.cvtColor(c, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    hh = np.histogram(hsv[:, 0], bins=8, range=(0, 180))[0] / len(hsv)
    sh = np.histogram(hsv[:, 1], bins=8, range=(0, 256))[0] / len(hsv)
    g = cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx, gy = np.diff(g, axis=1), np.diff(g, axis=0)
    lap = cv2.Laplacian(g, cv2.CV_32F)
    grad = [np.abs(gx).mean(), np.abs(gy).mean(), np.abs(lap).mean(), lap.std()]
    return np.concatenate(
        [small.reshape(-1), cf.mean(0), cf.std(0), hh, sh, np.asarray(grad, np.float32)]
    ).astype(np.float32)


def _logreg(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 800) -> np.ndarray:
    """Returns the weights (D + 1,) of an L2 logistic regression fitted by gradient descent."""
    xb = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
    w = np.zeros(xb.shape[1])
    lr = 0.5
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0.0]
        w -= lr * grad
    return w


def classify(
    real: list[tuple[str, np.ndarray]],
    synth: list[tuple[str, np.ndarray]],
    repeats: int = 5,
    region: str = "crop",
) -> dict:
    """Returns the held-out accuracy of real-vs-synthetic logistic regression, averaged over
    ``repeats`` splits of the people in halves (by a salted hash: no person on both sides)."""
    n = min(len(real), len(synth))
    data = [(pid, features(im, region), 1.0) for pid, im in real[:n]] + [
        (pid, features(im, region), 0.0) for pid, im in synth[:n]
    ]
    x = np.stack([f for _, f, _ in data])
    y = np.array([t for _, _, t in data])
    held, fit = [], []
    for r in range(repeats):
        tr = np.array([person_split(f"{r}:{pid}", 0.5) == "train" for pid, _, _ in data])
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xs = (x - mu) / sd
        w = _logreg(xs[tr], y[tr], l2=0.1)
        pred = np.concatenate([xs, np.ones((len(xs), 1))], axis=1) @ w > 0
        held.append(float((pred[~tr] == (y[~tr] > 0.5)).mean()))
        fit.append(float((pred[tr] == (y[tr] > 0.5)).mean()))
    return {
        "held_out_accuracy": round(float(np.mean(held)), 4),
        "held_out_accuracy_std": round(float(np.std(held)), 4),
        "train_accuracy": round(float(np.mean(fit)), 4),
        "repeats": repeats,
        "n_per_class": n,
        "people_synthetic": len({pid for pid, _ in synth[:n]}),
        "people_real": len({pid for pid, _ in real[:n]}),
    }


def real_crops(bank_sources: set[str], n: int, size: int, fe_align: FaceFrontEnd) -> list:
    """Returns (person, aligned crop) of ``n`` UTKFace photos outside the bank, aligned by the
    front-end."""
    from facexpr.io.datasets.utkface import UTKFace

    utk = UTKFace(SHARED / "datasets" / "utkface")
    order = np.random.default_rng(1).permutation(len(utk))
    out = []
    for i in order:
        if len(out) >= n:
            break
        p = utk.path(int(i))
        if p.name in bank_sources:
            continue
        img = utk.image(int(i))
        r = _largest(fe_align.process(Frame(image=img, source=str(p))))
        if r is None:  # the detector misses faces filling the photo: add a border, as the bank
            pad = max(img.shape[:2]) // 2
            img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
            r = _largest(fe_align.process(Frame(image=img, source=str(p))))
        if r is None or r.faces[0].aligned is None:
            continue
        out.append((utk.names[int(i)].subject_id, r.faces[0].aligned))
    return out


def _sheet(images: list[np.ndarray], columns: int = 8) -> np.ndarray:
    rows = [np.concatenate(images[k : k + columns], axis=1) for k in range(0, len(images), columns)]
    rows = [r for r in rows if r.shape[1] == rows[0].shape[1]]
    return np.concatenate(rows, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, required=True)
    ap.add_argument("--n", type=int, default=240, help="renders per condition")
    ap.add_argument("--real", type=int, default=240, help="real UTKFace crops")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--test-fraction", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sheets", type=Path, default=Path("/tmp"))
    ap.add_argument("--out", type=Path, default=RESULTS / "photoreal_realism.json")
    ap.add_argument("--classifier-only", action="store_true", help="no recovery, no contact sheets")
    args = ap.parse_args()
    bank = load_bank(args.bank)
    test = sorted({e.person for e in bank.entries if person_split(e.person, args.test_fraction)
                   == "test"})  # fmt: skip
    print(f"bank: {len(bank.entries)} identities, {len(test)} held-out people")
    common = {"n": args.n, "size": args.size, "seed": args.seed, "workers": args.workers}
    conditions = {
        "untextured": SynthOptions(**common, n_identities=max(2, len(test))),
        "photoreal_relight": SynthOptions(
            **common, avatars=(), identity_bank=str(args.bank), bank_split="test",
            test_fraction=args.test_fraction, textured_light="relight", identity_block=1,
        ),
        "photoreal_unlit": SynthOptions(
            **common, avatars=(), identity_bank=str(args.bank), bank_split="test",
            test_fraction=args.test_fraction, textured_light="unlit", identity_block=1,
        ),
    }  # fmt: skip
    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0))
    fe_align = FaceFrontEnd(FaceFrontEndOptions(align_size=args.size, pose=False))
    sources = {Path(e.source).name for e in bank.entries}
    t0 = time.perf_counter()
    real = real_crops(sources, args.real, args.size, fe_align)
    print(f"real crops: {len(real)} ({time.perf_counter() - t0:.0f} s)")
    report: dict[str, dict] = {}
    labels: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in conditions.items():
            t0 = time.perf_counter()
            generate(opts, Path(tmp) / name)
            secs = time.perf_counter() - t0
            samples = list(ShardDataset(Path(tmp) / name, shuffle_buffer=0))
            labels[name] = np.stack([s.labels["ict_weights"] for s in samples])
            syn = [(s.subject_id, s.image) for s in samples]
            cls = classify(real, syn)
            face = classify(real, syn, region="face")
            report[name] = {"render_seconds": round(secs, 1), "real_vs_synthetic": cls,
                            "real_vs_synthetic_face_centre": face}  # fmt: skip
            print(
                f"{name:18s} classifier held-out accuracy {cls['held_out_accuracy']:.3f} "
                f"(face centre only {face['held_out_accuracy']:.3f})"
            )
            if args.classifier_only:
                continue
            rec = recover(samples, fe)
            report[name].update(rec)
            print(
                f"{name:18s} fitter r {rec['fitter_mean_r']:.3f}  BV2 r {rec['bv2_mean_r']:.3f}"
                f"  found {rec['found']}/{len(samples)}"
            )
            # contact sheets: one expression on 8 people; 8 expressions on one person
            d1, d2 = Path(tmp) / f"{name}_pairs", Path(tmp) / f"{name}_one"
            from dataclasses import replace

            generate(replace(opts, n=16, pair_size=8, size=160, seed=7), d1)
            one = replace(opts, n=16, identity_block=16, size=160, seed=8)
            generate(one if opts.identity_bank else replace(one, n_identities=1), d2)
            for tag, d in (("same_expression", d1), ("one_person", d2)):
                ims = [s.image for s in ShardDataset(d, shuffle_buffer=0)]
                from facexpr.io.images import write_image

                write_image(args.sheets / f"photoreal_{name}_{tag}.png", _sheet(ims))
    same = all(np.array_equal(labels["untextured"], v) for v in labels.values())
    print(f"same expressions in every condition: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "bank": {"identities": len(bank.entries), "held_out_people": len(test),
                 "test_fraction": args.test_fraction, "texture_size": bank.options.texture_size},
        "n_per_condition": args.n, "size": args.size, "seed": args.seed,
        "same_expressions_in_every_condition": same,
        "real_crops": len(real),
        "conditions": report,
        "machine": platform.platform(), "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()

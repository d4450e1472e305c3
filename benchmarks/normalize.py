"""Norface identity normalisation: identity share before and after, expression kept, speed.

On renders of held-out people (random ICT FaceKit identities from another identity seed than
training's, so none was trained on), each of E expressions is shown on each of I identities
with its own random pose, light and background (a fully crossed design), and normalised:

- **Identity share of the encoder's embedding variance** (:func:`facexpr.train.metrics.
  identity_variance_share`, the code ``benchmarks/expression.py`` uses): of the input crops and
  of the normalised ones, for each encoder given (lower is better; the canonical targets are 0
  by construction, the same image for every identity).
- **Expression kept**: a ridge probe from the encoder's features to the 53 rig weights, fitted
  on the faces of half of the expressions and tested on the other half (every identity), on
  inputs, normalised outputs and canonical targets (the ceiling); mean Pearson r over channels
  that vary. And the normalised output against its target: L1 over the image and inside the
  eye and mouth boxes, beside the L1 of the mean target (what a normaliser that ignores its
  input would score).
- **ms a face** on this machine's CPU: the network alone (batch 1 and 16, 1 thread), and
  ``Normalizer.normalize_image`` on a fixture photo (front-end + crop + network).

    python benchmarks/normalize.py --weights runs/normalizer_tiny \
        --encoder expression=runs/heads_tiny_long/expression.safetensors \
        --encoder mae=runs/mae_tiny/encoder.safetensors --out benchmarks/results/normalize.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, git_commit


def _render(n_id: int, n_expr: int, seed: int, identity_seed: int, size: int):
    from facexpr.synth.expressions import ExpressionSampler
    from facexpr.synth.pairs import PairOptions, PairScene, render_input, render_target

    opts = PairOptions(n=1, size=size, render_size=max(size + 16, round(size * 1.5)),
                       seed=seed, n_identities=n_id, identity_seed=identity_seed)  # fmt: skip
    inputs, targets, weights, ident, group = [], [], [], [], []
    with PairScene(opts) as scene:
        for e in range(n_expr):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(9, e)))
            ex = ExpressionSampler(rng, opts.expressions).sample()
            targets.append(render_target(scene, ex.ict_weights)[0])
            for k in range(n_id):
                r = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10, e, k)))
                inputs.append(render_input(scene, k, ex.ict_weights, ex.arkit_weights, r)[0])
                weights.append(ex.ict_weights)
                ident.append(k)
                group.append(e)
    return (np.stack(inputs), np.stack(targets), np.stack(weights).astype(np.float32),
            np.array(ident), np.array(group))  # fmt: skip


def _encoder(spec: str):
    """NAME=PATH: an expression model's safetensors (encoder + head: the embedding) or a bare
    encoder's (MAE ``encoder.safetensors``: patch-mean features)."""
    from safetensors import safe_open

    from facexpr.nn import create_model, load_weights

    name, _, path = spec.partition("=")
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        # The head's hidden width is not in the file's metadata: read it off the tensor.
        hidden = f.get_slice("head.net.1.bias").get_shape()[0] if "head.net.1.bias" in keys else 0
    if any(k.startswith("head.") for k in keys):
        model = create_model("expression", hidden_dim=hidden or None)
        load_weights(model, path)
        return name, model.eval(), "expression embedding (16-d)"
    vit = create_model("fxvit_tiny_d6_p16_112", global_pool="avg")
    load_weights(vit, path)
    return name, vit.eval(), "encoder patch-mean features (192-d)"


def _embed(model, images: np.ndarray, size: int = 112) -> np.ndarray:
    import cv2

    from facexpr.nn import FACE_MEAN, FACE_STD

    out = []
    mean = torch.tensor(FACE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(FACE_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        for i in range(0, len(images), 32):
            chunk = [cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR)
                     for im in images[i : i + 32]]  # fmt: skip
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float() / 255.0
            out.append(model((x - mean) / std).float().numpy())
    return np.concatenate(out)


def _probe_r(feat: np.ndarray, w: np.ndarray, group: np.ndarray, lam: float = 1.0) -> float:
    """Mean Pearson r over varying channels of a ridge probe fitted on even expression groups,
    tested on odd ones."""
    tr, te = group % 2 == 0, group % 2 == 1
    mu, sd = feat[tr].mean(0), feat[tr].std(0) + 1e-6
    xtr, xte = (feat[tr] - mu) / sd, (feat[te] - mu) / sd
    xtr = np.hstack([xtr, np.ones((len(xtr), 1))])
    xte = np.hstack([xte, np.ones((len(xte), 1))])
    beta = np.linalg.solve(xtr.T @ xtr + lam * len(xtr) * np.eye(xtr.shape[1]), xtr.T @ w[tr])
    pred = xte @ beta
    rs = []
    for c in range(w.shape[1]):
        if w[te, c].std() > 1e-3 and pred[:, c].std() > 1e-9:
            rs.append(float(np.corrcoef(pred[:, c], w[te, c])[0, 1]))
    return float(np.mean(rs)) if rs else float("nan")


def _timings(norm, media: Path) -> dict[str, float]:
    from facexpr.io.images import read_image

    s = norm.size
    out: dict[str, float] = {}
    for bs in (1, 16):
        crops = np.zeros((bs, s, s, 3), np.uint8)
        norm.normalize_crops(crops)
        t = time.perf_counter()
        reps = 20 if bs == 1 else 3
        for _ in range(reps):
            norm.normalize_crops(crops)
        out[f"network_ms_per_face_batch{bs}"] = 1000 * (time.perf_counter() - t) / (reps * bs)
    img = read_image(media / "single_face.jpg")
    norm.normalize_image(img, "single_face.jpg")
    t = time.perf_counter()
    for _ in range(5):
        norm.normalize_image(img, "single_face.jpg")
    out["photo_pipeline_ms_per_face"] = 1000 * (time.perf_counter() - t) / 5
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="a facexpr train normalizer run folder")
    ap.add_argument("--encoder", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--identities", type=int, default=8)
    ap.add_argument("--expressions", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--identity-seed", type=int, default=1000, help="not training's (0)")
    ap.add_argument("--media", default=str(REPO.parent / "shared" / "fixtures" / "media"))
    ap.add_argument("--sheet", default=None, help="PNG contact sheet: input | output | target")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "normalize.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from facexpr.analyze.normalize import NormalizeOptions, Normalizer
    from facexpr.io._files import write_text_atomic
    from facexpr.nn.normalizer import region_mask
    from facexpr.train.metrics import identity_variance_share

    norm = Normalizer(NormalizeOptions(weights=args.weights))
    t0 = time.perf_counter()
    inputs, targets, w, ident, group = _render(
        args.identities, args.expressions, args.seed, args.identity_seed, norm.size
    )
    render_s = time.perf_counter() - t0
    outputs = norm.normalize_crops(inputs)
    tgt = targets[group].astype(np.float32) / 255
    out = outputs.astype(np.float32) / 255
    reg = region_mask(norm.size).numpy()[0, 0].astype(bool)
    mean_t = targets.astype(np.float32).mean(0) / 255
    recon = {
        "l1_output_vs_target": float(np.abs(out - tgt).mean()),
        "l1_mean_target_vs_target": float(np.abs(mean_t[None] - tgt).mean()),
        "region_l1_output_vs_target": float(np.abs(out - tgt)[:, reg].mean()),
        "region_l1_mean_target_vs_target": float(np.abs(mean_t[None] - tgt)[:, reg].mean()),
    }
    print(json.dumps(recon, indent=1), flush=True)
    encoders = {}
    for spec in args.encoder:
        name, model, kind = _encoder(spec)
        res: dict[str, object] = {"weights": spec.partition("=")[2], "features": kind}
        for what, imgs in (("inputs", inputs), ("normalised", outputs),
                           ("targets", targets[group])):  # fmt: skip
            f = _embed(model, imgs)
            if what != "targets":
                vs = identity_variance_share(f, ident, group, permutations=20)
                res[f"identity_share_{what}"] = vs.identity
                res[f"identity_share_chance_{what}"] = vs.chance
                res[f"expression_share_{what}"] = vs.expression
            res[f"probe_mean_r_{what}"] = _probe_r(f, w, group)
        encoders[name] = res
        print(name, json.dumps(res, indent=1), flush=True)
    timing = _timings(norm, Path(args.media))
    print(json.dumps(timing, indent=1), flush=True)
    if args.sheet:
        from facexpr.io.images import write_image

        pick = np.arange(0, len(inputs), max(1, len(inputs) // 12))[:12]
        sheet = np.concatenate([np.concatenate(list(x[pick]), axis=1)
                                for x in (inputs, outputs, targets[group])], axis=0)  # fmt: skip
        write_image(args.sheet, sheet)
    result = {
        "benchmark": "normalize",
        "commit": git_commit(),
        "device": f"cpu ({platform.processor() or platform.machine()}), torch threads 1",
        "weights": args.weights,
        "held_out": {"identities": args.identities, "expressions": args.expressions,
                     "seed": args.seed, "identity_seed": args.identity_seed,
                     "note": "random ICT identities of another identity seed than training's"},
        "render_s": render_s,
        "reconstruction": recon,
        "encoders": encoders,
        "timing": timing,
        "notes": "identity share: facexpr.train.metrics.identity_variance_share (lower is "
        "better); probe: ridge from the encoder's features to the 53 rig weights, fitted on "
        "even expressions and tested on odd ones, mean Pearson r over varying channels.",
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()

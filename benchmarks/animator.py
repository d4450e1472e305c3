"""The learned animator against the geometric fit retarget (issue 15, section 4).

1. Rig-weight error on held-out synthetic actors (identities never trained on, e.g.
   ``facexpr synth --seed 99``): per actor crop, the animator's ICT weights (through the frozen
   encoder) and the fit retarget's ARKit weights (front-end + ICT model fitter on the same crop),
   both compared in ARKit space with the known weights: MAE and the mean over channels that move
   of Pearson's r. Actors where the front-end finds no face count against ``fit`` (listed).
2. Expression-embedding distance on a real video: the frozen encoder's embedding of the actor's
   aligned face against that of the avatar rendered (real renderer, frontal, 256 px, then the
   front-end's aligned crop) with each method's weights; squared distance of unit vectors
   (0 same, 4 opposite). The neutral avatar (all weights 0) gives the floor to beat.
3. ``animate`` frames/s (front-end, encoder or fitter, animator; no preview, no writing) on a
   video, each method, one thread.

Writes ``benchmarks/results/animator.json``.

Usage:
  python benchmarks/animator.py --animator-weights runs/animator_tiny/animator.safetensors \
      --encoder-weights runs/encoder_heads_4000/expression.safetensors \
      --heldout data/synth_heldout --video ../shared/fixtures/media/WolfgangLanger_Pexels.mp4
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from _common import git_commit
from facexpr.animate.animator import AnimateOptions, Animator
from facexpr.core.arkit import ARKIT_NAMES, ict_to_arkit_matrix
from facexpr.io._files import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


_KEY = ("jawOpen", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp", "mouthFunnel")
_KEPT = [n for n in ARKIT_NAMES if n != "tongueOut"]


def _scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    key = {}
    for n in _KEY:
        j = _KEPT.index(n)
        ok = true[:, j].std() > 1e-6 and pred[:, j].std() > 1e-6
        key[f"r_{n}"] = float(np.corrcoef(pred[:, j], true[:, j])[0, 1]) if ok else 0.0
    rs = []
    for j in range(true.shape[1]):
        if true[:, j].std() > 1e-6 and pred[:, j].std() > 1e-6:
            rs.append(float(np.corrcoef(pred[:, j], true[:, j])[0, 1]))
        elif true[:, j].std() > 1e-6:
            rs.append(0.0)  # a channel that moves, predicted constant
    return {"mae": float(np.abs(pred - true).mean()), "mean_r": float(np.mean(rs)),
            "channels_moving": len(rs), **key}  # fmt: skip


def rig_error(args: argparse.Namespace, animator: Animator) -> dict:
    import torch

    from facexpr.analyze import Analyzer, AnalyzerOptions
    from facexpr.io.shards import ShardReader

    crops, arkit = [], []
    for s in ShardReader(args.heldout, shuffle_buffer=0, verify=False):
        crops.append(np.asarray(s.image))
        arkit.append(np.asarray(s.labels["arkit_weights"], np.float32))
        if len(crops) >= args.n:
            break
    arkit = np.stack(arkit)
    feats = np.concatenate(
        [animator._features(crops[i : i + 64]) for i in range(0, len(crops), 64)]
    )
    with torch.inference_mode():
        ict = animator._net(torch.from_numpy(feats), "ict").numpy()
    learned = ict @ ict_to_arkit_matrix().T
    fitted = np.zeros_like(arkit)
    found = np.zeros(len(crops), bool)
    opts = AnalyzerOptions(blendshapes="fit", embedding=None, heads=None, device="cpu")
    t0 = time.perf_counter()
    with Analyzer(opts) as an:
        for i, c in enumerate(crops):
            r = an.analyze_image(np.ascontiguousarray(c))
            if r.faces and r.faces[0].blendshapes is not None:
                fitted[i], found[i] = r.faces[0].blendshapes, True
    fit_s = time.perf_counter() - t0
    # TongueOut is never rendered (ICT has no tongue): left out of both.
    keep = [j for j, n in enumerate(ARKIT_NAMES) if n != "tongueOut"]
    a, f, t = learned[:, keep], fitted[:, keep], arkit[:, keep]
    return {
        "dataset": str(args.heldout),
        "n": len(crops),
        "fit_faces_found": int(found.sum()),
        "animator": _scores(a, t),
        "animator_on_fit_found": _scores(a[found], t[found]),
        "fit_on_found": _scores(f[found], t[found]),
        "fit_all_missing_as_zero": _scores(f, t),
        # Baselines: all zeros (most shapes rest most of the time) and the actors' own mean
        # (in-sample, so optimistic); both have r = 0.
        "predict_zero_baseline": _scores(np.zeros_like(t), t),
        "predict_mean_baseline": _scores(np.repeat(t.mean(0, keepdims=True), len(t), 0), t),
        "fit_ms_per_face": 1000 * fit_s / len(crops),
    }


def _embed_render(
    animator: Animator, an, renderer, avatar, weights: np.ndarray
) -> np.ndarray | None:
    img = renderer.render(avatar, weights).image
    r = an.analyze_image(np.ascontiguousarray(img))
    if not r.faces:
        return None
    return animator._features([r.faces[0].aligned])[0, :16]


def embedding_distance(args: argparse.Namespace, learned: Animator) -> dict:
    from facexpr.analyze import Analyzer, AnalyzerOptions
    from facexpr.avatars.export import weights_for_channels
    from facexpr.avatars.render import Renderer, RenderOptions

    out: dict = {"video": str(args.video), "every": args.every}
    fit = Animator(["ict"], AnimateOptions(method="fit"))
    anims = {"animator": learned.retarget(args.video), "fit": fit.retarget(args.video)}
    # The actor's own embeddings, from the front-end's aligned crops of the same frames.
    opts = AnalyzerOptions(blendshapes="none", embedding=None, heads=None, device="cpu")
    actor = {}
    with Analyzer(opts) as an:
        for k, r in enumerate(an.analyze_video(args.video)):
            if k % args.every == 0 and r.faces:
                actor[k] = learned._features([r.faces[0].aligned])[0, :16]
    avatar = learned.avatars[0]
    neutral = None
    dists: dict[str, list[float]] = {"animator": [], "fit": [], "neutral": []}
    missed = dict.fromkeys(dists, 0)
    with Renderer(RenderOptions(width=256, height=256)) as rend, Analyzer(opts) as an:
        neutral = _embed_render(learned, an, rend, avatar, np.zeros(avatar.rig.n_channels))
        for k, e in actor.items():
            for method, anim in anims.items():
                w = anim.tracks[0].weights[k]
                if method == "fit":
                    w = weights_for_channels(avatar.channel_names, anim.tracks[0].arkit[k : k + 1])[
                        0
                    ]
                er = _embed_render(learned, an, rend, avatar, w)
                if er is None:
                    missed[method] += 1
                    continue
                dists[method].append(float(np.sum((er - e) ** 2)))
            if neutral is not None:
                dists["neutral"].append(float(np.sum((neutral - e) ** 2)))
    out["frames"] = len(actor)
    for m, d in dists.items():
        out[m] = {"mean_sq_dist": float(np.mean(d)) if d else None, "n": len(d),
                  "render_without_face": missed[m]}  # fmt: skip
    return out


def speed(args: argparse.Namespace, learned: Animator) -> dict:
    out = {}
    for name, anim in (
        ("animator", learned),
        ("fit", Animator(["ict"], AnimateOptions(method="fit"))),
    ):
        anim.retarget(args.speed_video)  # warm-up (model loading, first-call costs)
        t0 = time.perf_counter()
        a = anim.retarget(args.speed_video)
        s = time.perf_counter() - t0
        # --smooth (One Euro, the defaults) on the same weights: frame-to-frame jitter (mean
        # |second difference|) and how far the smoothed curves move from the raw ones.
        from facexpr.animate.animator import _Smoother

        sm = _Smoother(AnimateOptions(method="fit", smooth=True))
        w = a.tracks[0].weights
        ws = np.stack([sm("a", w[i], float(a.timestamps[i])) for i in range(len(w))])
        out[name] = {
            "frames": len(a.timestamps),
            "seconds": s,
            "frames_per_s": len(a.timestamps) / s,
            "jitter_raw": float(np.abs(np.diff(w, 2, axis=0)).mean()),
            "jitter_smoothed": float(np.abs(np.diff(ws, 2, axis=0)).mean()),
            "smoothed_minus_raw_mae": float(np.abs(ws - w).mean()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--animator-weights", required=True)
    ap.add_argument("--encoder-weights", required=True)
    ap.add_argument("--heldout", required=True, help="synthetic shards of unseen identities")
    ap.add_argument("--video", required=True, help="a real video for the embedding distance")
    ap.add_argument("--speed-video", default=None, help="video timed (default: --video)")
    ap.add_argument("--n", type=int, default=300, help="held-out actors scored")
    ap.add_argument("--every", type=int, default=4, help="video frames scored: every Nth")
    ap.add_argument("--skip", nargs="*", default=(), choices=("rig", "embedding", "speed"))
    ap.add_argument("--out", default="animator.json", help="file name in benchmarks/results/")
    args = ap.parse_args()
    args.speed_video = args.speed_video or args.video
    import torch

    torch.set_num_threads(1)
    learned = Animator(["ict"], AnimateOptions(method="animator",
                       animator_weights=args.animator_weights,
                       encoder_weights=args.encoder_weights))  # fmt: skip
    res: dict = {
        "commit": git_commit(),
        "machine": platform.platform(),
        "cpu_threads": 1,
        "animator_weights": args.animator_weights,
        "encoder_weights": args.encoder_weights,
    }
    if "rig" not in args.skip:
        res["rig_error_heldout"] = rig_error(args, learned)
        print(json.dumps(res["rig_error_heldout"], indent=1))
    if "embedding" not in args.skip:
        res["embedding_distance"] = embedding_distance(args, learned)
        print(json.dumps(res["embedding_distance"], indent=1))
    if "speed" not in args.skip:
        res["speed"] = speed(args, learned)
        print(json.dumps(res["speed"], indent=1))
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / args.out, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()

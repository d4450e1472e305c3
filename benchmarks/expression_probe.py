"""Does a frozen encoder's feature hold expression across identities? A triplet probe.

Trains only the 16-d embedding head (FEC's symmetric triplet loss) on features of a frozen
encoder (a ``facexpr train mae`` run's ``encoder.safetensors``, or random weights), from
synthetic rig triplets of the training identities, and scores triplet accuracy (FEC's rule,
chance 1/3) on triplets of identities held out (``RigTriplets(split="test")``). A head that
fits the training triplets but stays at chance on held-out identities means the features tell
expressions apart only through identity: stage 2 then has nothing to build on.

    python benchmarks/expression_probe.py --mae runs/mae_tiny --data data/synth_pairs \\
        --out benchmarks/results/expression_probe.json

Prints one line per pooling ('avg': mean of patch tokens, 'token': class token) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from _common import git_commit
from facexpr.nn import create_model
from facexpr.nn.heads.embedding import EmbeddingHead
from facexpr.nn.losses import triplet_accuracy, triplet_loss
from facexpr.nn.vit import FACE_MEAN, FACE_STD
from facexpr.train.augment import normalise
from facexpr.train.triplets import RigTriplets


def features(encoder: torch.nn.Module, source: RigTriplets, n: int) -> torch.Tensor:
    """Returns (n, 3, 2D) features: patch-token mean then class token, for a/p/n of n triplets."""
    n = min(n, len(source))
    imgs = np.concatenate(
        [np.stack([source[i].anchor, source[i].positive, source[i].negative]) for i in range(n)]
    )
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
    out = []
    with torch.no_grad():
        for b in range(0, len(x), 96):
            tok = encoder.forward_features(normalise(x[b : b + 96], FACE_MEAN, FACE_STD))
            out.append(torch.cat([tok[:, 1:].mean(1), tok[:, 0]], 1))
    return torch.cat(out).view(n, 3, -1)


def probe(train: torch.Tensor, test: torch.Tensor, epochs: int, margin: float) -> dict:
    """Fits a head on ``train`` (n, 3, D) features; returns train/test triplet accuracy."""
    torch.manual_seed(0)
    dim = train.shape[-1]
    head = EmbeddingHead(dim, 16)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(train))
        for b in range(0, len(train), 64):
            e = head(train[perm[b : b + 64]].reshape(-1, dim)).view(-1, 3, 16)
            loss = triplet_loss(e[:, 0], e[:, 1], e[:, 2], margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        e = head(train.reshape(-1, dim)).view(-1, 3, 16)
        et = head(test.reshape(-1, dim)).view(-1, 3, 16)
        raw = [torch.nn.functional.normalize(test[:, k], dim=1) for k in range(3)]
        return {
            "raw_cosine_test_acc": float(triplet_accuracy(*raw)),
            "head_train_acc": float(triplet_accuracy(e[:, 0], e[:, 1], e[:, 2])),
            "head_test_acc": float(triplet_accuracy(et[:, 0], et[:, 1], et[:, 2])),
            "test_embedding_variance": float(et.reshape(-1, 16).var(0).sum()),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae", type=Path, help="a facexpr train mae run folder (default: random)")
    ap.add_argument("--data", type=Path, default=Path("data/synth_pairs"))
    ap.add_argument("--train", type=int, default=1500, help="training triplets")
    ap.add_argument("--test", type=int, default=400, help="held-out triplets")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/expression_probe.json"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = create_model("expression")
    if args.mae is not None:
        model.encoder.load_state_dict(load_file(str(args.mae / "encoder.safetensors")))
    model.eval()
    t0 = time.time()
    tr = features(
        model.encoder,
        RigTriplets([str(args.data)], args.train, split="train", size=112),
        args.train,
    )
    te = features(
        model.encoder,
        RigTriplets([str(args.data)], args.test, split="test", seed=1, size=112),
        args.test,
    )
    d = tr.shape[-1] // 2
    results = {}
    for name, sl in (("avg", slice(0, d)), ("token", slice(d, 2 * d))):
        r = probe(tr[:, :, sl].contiguous(), te[:, :, sl].contiguous(), args.epochs, 0.2)
        results[name] = r
        print(
            f"{name:5s} raw cosine {r['raw_cosine_test_acc']:.3f}  head: train "
            f"{r['head_train_acc']:.3f}, held-out identities {r['head_test_acc']:.3f} "
            f"(chance 0.333)"
        )
    out = {
        "encoder": str(args.mae) if args.mae else "random",
        "data": str(args.data),
        "train_triplets": len(tr),
        "test_triplets": len(te),
        "epochs": args.epochs,
        "results": results,
        "seconds": time.time() - t0,
        "commit": git_commit(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Expression embedding quality: held-out triplet accuracy, identity share of the variance,
baselines, and the MAE stage's reconstructions (issue 12, section 5).

Usage::

    python benchmarks/expression.py --run runs/expression_tiny [--mae runs/mae_tiny]
        --heldout-synth /tmp/synth_heldout [--ferplus-test /tmp/fer_test]
        [--n 1000] [--threads 1] [--out benchmarks/results/expression.json]
    python benchmarks/expression.py --pretrained ...      # the shipped weights instead of a run
    python benchmarks/expression.py --config configs/expression_tiny.yaml --mae runs/mae_tiny ...
        # before stage 2: the baselines only, on that config's held-out split

The held-out sets (rebuild them; never commit their images):

- ``--heldout-synth``: ``facexpr synth --pair-size 8 --n 800 --size 128 --seed 99 --out DIR``.
  Its identities are ICT FaceKit coefficient vectors drawn from ``SeedSequence(seed, (1, k))``
  (``synth/engine.py``), so another seed draws other identities even where the ``ict-000NN``
  names coincide. The script checks it: it redraws the coefficient vectors of every synthetic
  dataset the run trained on (its rig sources and its MAE shards) and of this one, and stops if
  any held-out identity is within 1e-3 of a trained one (independent draws of the 50 N(0, 1)
  coefficients lie about ``sqrt(2 * 50) = 10`` apart; the closest pair is reported).
- Real teacher triplets: the run's own ``teacher`` sources, mined on the ``test`` side of the same
  subject split (``data.test_share``, ``data.split_seed`` of the run's ``config.yaml``, the rule
  of ``facexpr.train.recipes.expression``); the script rebuilds the ``train`` side too and stops
  unless the two share no person.
- Synthetic triplets of the run's own ``rig`` sources (if it had any): the same held-out rule.
- ``--ferplus-test``: ``facexpr dataset ferplus ROOT --split Test -o DIR`` (FER+ Test, images the
  ``Train`` split never holds), vote triplets as in training.

Measured for each model (the trained embedding and, for context, baselines labelled as such):

- **Triplet accuracy**, FEC's rule (:func:`facexpr.train.metrics.triplet_correct`): a triplet is
  right when its anchor-positive distance is the smallest of its three. Chance is 1/3.
- **Identity share of the embedding variance** (:func:`facexpr.train.metrics.
  identity_variance_share`) on the held-out synthetic render, where each expression is shown on
  8 identities: least-squares fit ``e ≈ μ + a_expression + b_identity``; identity share
  ``Σ||b||² / Σ||e − ē||²``, with its chance floor from shuffled identity labels. Target < 5%.
- Baselines: the same architecture untrained (seeded random weights); the MAE stage-1 encoder's
  pooled features compared by cosine (L2-normalised: squared distance = 2 − 2 cos), with its
  class token and with the mean of its patch tokens; the Blendshape V2 teacher vector itself on
  the real teacher triplets (100% by construction, since those triplets are mined from it: a
  check of the pipeline, not a competitor).

A reconstructions PNG of the MAE run: held-out synthetic faces go to
``docs/images/mae_reconstructions_synthetic.png`` (committable); real held-out faces (UTKFace
subjects the MAE run held out) to ``benchmarks/results/private/``, which git ignores: research-use
images are never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import REPO, git_commit

Embedder = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, S, S) uint8 -> (B, D) float


def _load_run_config(run_dir: Path, recipe: str):
    """A run folder's resolved config (or a config file given directly). An ``expression``
    config may also be a ``heads`` run's: its encoder, embedding head and triplet sources are
    read as the ``expression`` recipe's (the same subject split: ``test_share`` 0.1 and the
    run's ``split_seed``, as the heads recipe mines its triplets)."""
    import yaml

    from facexpr.train.config import load_config
    from facexpr.train.recipe import get_recipe

    path = run_dir if run_dir.is_file() else run_dir / "config.yaml"
    if recipe == "expression" and yaml.safe_load(path.read_text()).get("recipe") == "heads":
        from types import SimpleNamespace

        from facexpr.train.recipes.expression import ExpressionDataConfig, ExpressionModelConfig

        cls = get_recipe("heads")
        h = load_config("heads", cls.ModelConfig, cls.DataConfig, path)
        model = ExpressionModelConfig(
            encoder=h.model.encoder, img_size=h.model.img_size, depth=h.model.depth,
            dim=h.model.dim, hidden_dim=h.model.hidden_dim, init=h.model.init,
        )  # fmt: skip
        data = ExpressionDataConfig(
            sources=h.data.triplets, margins=h.data.margins, split_seed=h.data.split_seed
        )
        return SimpleNamespace(model=model, data=data, heads=h)
    cls = get_recipe(recipe)
    return load_config(recipe, cls.ModelConfig, cls.DataConfig, path)


def _resolve(path: str, run_dir: Path, required: bool = True) -> Path | None:
    """A path in a run's config: as given, else relative to the checkout the run was made in."""
    p = Path(path)
    if p.exists():
        return p
    for base in (run_dir.parent.parent, REPO):
        if (base / p).exists():
            return base / p
    if not required:
        return None
    sys.exit(f"the config of {run_dir} names {path}, which is not here; pass it explicitly")


def _embedder(
    model: torch.nn.Module, img_size: int, *, cosine: bool = False, grey: bool = False
) -> Embedder:
    """``grey``: the model was trained on luminance (its card says ``grey``): each face is fed
    as its luminance, as ``analyze`` and the training data path feed it."""
    from facexpr.nn import FACE_MEAN, FACE_STD
    from facexpr.train.augment import normalise, to_grey, to_uint8_chw

    model.eval()

    def run(images: torch.Tensor) -> torch.Tensor:
        if grey:
            images = to_uint8_chw([to_grey(im) for im in images.permute(0, 2, 3, 1).numpy()])
        with torch.no_grad():
            out = model(normalise(images, FACE_MEAN, FACE_STD)).float()
        return torch.nn.functional.normalize(out, dim=1) if cosine else out

    return run


class _PatchMean(torch.nn.Module):
    def __init__(self, vit: torch.nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(x)[:, 1:].mean(1)


class _ClassToken(torch.nn.Module):
    # The expression model's encoder pools by patch mean; this baseline reads the class token.
    def __init__(self, vit: torch.nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(x)[:, 0]


def _embed_refs(source, embedder: Embedder, size: int, batch: int = 64) -> dict[int, np.ndarray]:
    """Returns sample number -> embedding for every sample a triplet source's triples use."""
    from facexpr.train.augment import to_uint8_chw
    from facexpr.train.mixing import resize_square

    used = np.unique(source.triples)
    out: dict[int, np.ndarray] = {}
    for s in range(0, len(used), batch):
        chunk = used[s : s + batch]
        imgs = []
        for j in chunk:
            di, k = source.refs[int(j)]
            imgs.append(resize_square(source.indexes[di].image(k), size))
        emb = embedder(to_uint8_chw(imgs)).numpy()
        out.update(zip(chunk.tolist(), emb, strict=True))
    return out


def _triplet_acc(source, emb: dict[int, np.ndarray]) -> float:
    from facexpr.train.metrics import triplet_correct

    t = source.triples
    a, p, n = (np.stack([emb[int(j)] for j in t[:, c]]) for c in range(3))
    return float(triplet_correct(a, p, n).mean())


def _vector_acc(source, field: str) -> float:
    """Triplet accuracy of a source's own label vectors (the teacher baseline)."""
    from facexpr.train.metrics import triplet_correct

    per_index = {di: source.indexes[di].vectors(field)[0] for di in {d for d, _ in source.refs}}
    vec = np.stack([per_index[di][k] for di, k in source.refs])
    t = source.triples
    return float(triplet_correct(vec[t[:, 0]], vec[t[:, 1]], vec[t[:, 2]]).mean())


def _identity_coefficients(dataset: Path) -> np.ndarray | None:
    """Returns (I, n_identity) the ICT identity coefficients a synth dataset drew, or None."""
    from facexpr.io.shards import read_manifest

    man = read_manifest(dataset)
    if man.created_by != "facexpr.synth.generate":
        return None
    from facexpr.avatars.avatar import get_avatar

    opts = man.attributes["options"]
    n_id = opts.get("n_identities") or max(1, int(opts["n"]) // 50)
    if "ict" not in opts.get("avatars", ["ict"]):
        return np.zeros((0, 1))
    dim = get_avatar("ict").rig.n_identity
    return np.stack(
        [
            np.random.default_rng(
                np.random.SeedSequence(int(opts["seed"]), spawn_key=(1, k))
            ).standard_normal(dim)
            for k in range(n_id)
        ]
    )


def _check_unseen_identities(heldout: Path, trained: list[Path]) -> dict[str, object]:
    held = _identity_coefficients(heldout)
    if held is None:
        sys.exit(f"{heldout}: not a facexpr synth dataset")
    closest = float("inf")
    for d in trained:
        z = _identity_coefficients(d)
        if z is None or len(z) == 0:
            continue
        dist = np.sqrt(((held[:, None] - z[None]) ** 2).sum(-1))
        closest = min(closest, float(dist.min()))
        if dist.min() < 1e-3:
            sys.exit(f"{heldout}: identities coincide with those of {d} (same seed?): not held out")
    return {
        "heldout_identities": len(held),
        "trained_synthetic_datasets": [str(d) for d in trained],
        "closest_trained_identity_distance": None if closest == float("inf") else closest,
    }


def _sources(cfg, run_dir: Path, kind: str, n: int):
    """Returns [(train side, test side)] of the run's sources of one kind, as its recipe built."""
    from facexpr.train.mixing import ShardIndex
    from facexpr.train.triplets import RigTriplets, TeacherTriplets

    d = cfg.data
    cls = {"rig": RigTriplets, "teacher": TeacherTriplets}[kind]
    out = []
    for sc in d.sources:
        if sc.kind != kind:
            continue
        if not d.test_share:
            sys.exit(f"{run_dir}: data.test_share is 0: the run held out nobody")
        idx = [ShardIndex(_resolve(p, run_dir)) for p in sc.datasets]
        kw: dict[str, object] = {
            "test_share": d.test_share,
            "split_seed": d.split_seed,
            "size": cfg.model.img_size,
        }
        if sc.pos_max is not None:
            kw["pos_max"] = sc.pos_max
        if sc.margin is not None:
            kw["margin"] = sc.margin
        if sc.field and kind == "rig":
            kw["field"] = sc.field
        train = cls(idx, 1, split="train", seed=0, **kw)
        test = cls(idx, n, split="test", seed=12345, **kw)
        shared = set(train.subject_keys) & set(test.subject_keys)
        if shared:
            sys.exit(f"held-out {kind} subjects also trained on: {sorted(shared)[:3]}")
        out.append((train, test, [str(p) for p in sc.datasets]))
    return out


def _reconstructions(mae_dir: Path, images: list[np.ndarray], path: Path) -> Path:
    from facexpr.nn import FACE_MEAN, FACE_STD, load_weights
    from facexpr.train.augment import normalise, to_uint8_chw
    from facexpr.train.mixing import resize_square
    from facexpr.train.plots import write_image_grid

    cfg = _load_run_config(mae_dir, "mae")
    from facexpr.train.recipe import get_recipe

    recipe = get_recipe("mae")(cfg.model, cfg.data)
    model = load_weights(recipe.build_model(), mae_dir / "model.safetensors").eval()
    size = cfg.model.img_size
    x = normalise(to_uint8_chw([resize_square(i, size) for i in images]), FACE_MEAN, FACE_STD)
    torch.manual_seed(0)
    with torch.no_grad():
        rec = model.reconstruct(x, FACE_MEAN, FACE_STD)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image_grid([rec.original, rec.masked, rec.pasted], path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a finished `facexpr train expression` run")
    src.add_argument("--pretrained", action="store_true", help="the shipped weights")
    src.add_argument(
        "--config", type=Path, help="no trained model: the baselines on this config's split"
    )
    ap.add_argument("--mae", type=Path, help="the stage-1 run (default: the run's model.init)")
    ap.add_argument(
        "--weights",
        type=Path,
        help="with --run: e.g. a checkpoint's (default RUN/model.safetensors)",
    )
    ap.add_argument("--heldout-synth", type=Path, required=True)
    ap.add_argument("--ferplus-test", type=Path, help="FER+ Test (or Valid) shards")
    ap.add_argument("--n", type=int, default=1000, help="triplets per held-out set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--permutations", type=int, default=20)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/expression.json")
    ap.add_argument(
        "--png-synthetic", type=Path, default=REPO / "docs/images/mae_reconstructions_synthetic.png"
    )
    ap.add_argument(
        "--png-real",
        type=Path,
        default=REPO / "benchmarks/results/private/mae_reconstructions_real.png",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    from facexpr.nn import create_model, load_weights, weights_card
    from facexpr.train.metrics import identity_variance_share
    from facexpr.train.mixing import ShardIndex
    from facexpr.train.triplets import RigTriplets, VoteTriplets

    result: dict[str, object] = {"benchmark": "expression"}
    if args.pretrained:
        card = weights_card("expression")
        model = create_model("expression", pretrained=True)
        arch = dict(card.config)
        img_size = card.input_size[0]
        cfg = None
        result["model"] = f"expression.{card.tag} (shipped, sha256 {card.sha256[:12]})"
        init = ""
        grey = card.grey
    else:
        cfg = _load_run_config(args.run or args.config, "expression")
        m = cfg.model
        arch = {
            "encoder": m.encoder,
            "dim": m.dim,
            "hidden_dim": m.hidden_dim or None,
            "img_size": m.img_size,
            **({"depth": m.depth} if m.depth else {}),
        }
        img_size = m.img_size
        init = m.init
        grey = hasattr(cfg, "heads") and cfg.heads.data.grey  # a heads run's data.grey
        if args.run is not None:
            model = create_model("expression", **arch)
            weights = args.weights or args.run / "model.safetensors"
            model = load_weights(model, weights)
            result["model"] = f"run {args.run} ({weights})"
        else:
            model = None
            result["model"] = f"none: baselines on the split of {args.config}"
    where = args.run or args.config
    shipped_init = init.startswith("pretrained:")
    mae_dir = args.mae or (_resolve(init, where) if init and not shipped_init else None)
    if mae_dir is not None and not Path(mae_dir).is_dir():
        mae_dir = None  # an analysis weights file, not a stage-1 run folder
    result["grey_input"] = grey

    models: dict[str, Embedder] = {}
    if model is not None:
        models["trained"] = _embedder(model, img_size, grey=grey)
    if model is None or not args.no_baselines:
        torch.manual_seed(0)
        models["baseline_random_init"] = _embedder(
            create_model("expression", **arch), img_size, grey=grey
        )
        if shipped_init:
            # The run started from shipped analysis weights: their encoder's features by cosine
            # (what the triplets added on top of them).
            name = init[len("pretrained:") :]
            start = create_model(name, pretrained=True).encoder
            models["baseline_init_patchmean_cosine"] = _embedder(
                _PatchMean(start), img_size, cosine=True, grey=weights_card(name).grey
            )
        if mae_dir is not None:
            from facexpr.train.checkpoint import load_model_weights

            enc = create_model("expression", **arch).encoder
            load_model_weights(enc, Path(mae_dir) / "encoder.safetensors")
            models["baseline_mae_cls_cosine"] = _embedder(_ClassToken(enc), img_size, cosine=True)
            models["baseline_mae_patchmean_cosine"] = _embedder(
                _PatchMean(enc), img_size, cosine=True
            )

    # Which synthetic datasets the run trained on (triplets or MAE pixels).
    named: list[tuple[str, Path]] = []
    if cfg is not None:
        named += [(p, where) for sc in cfg.data.sources for p in sc.datasets]
        if hasattr(cfg, "heads"):  # a heads run also trained on its labelled faces
            named += [(p, where) for sc in cfg.heads.data.faces for p in sc.datasets]
    if mae_dir is not None and (Path(mae_dir) / "config.yaml").is_file():
        mcfg = _load_run_config(Path(mae_dir), "mae")
        named += [(p, Path(mae_dir)) for p in mcfg.data.shards]
    found = {p: _resolve(p, base, required=False) for p, base in named}
    missing = sorted(p for p, f in found.items() if f is None)
    if missing and args.run is not None:
        sys.exit(f"the run trained on {missing}, which are not here: cannot check the held-out set")
    trained_synth = list(dict.fromkeys(f for f in found.values() if f is not None))
    result["heldout_synthetic"] = {
        "dataset": str(args.heldout_synth),
        **_check_unseen_identities(args.heldout_synth, trained_synth),
        **({"config_datasets_missing_here": missing} if missing else {}),
    }

    sets: dict[str, tuple[object, str | None]] = {}
    held_ix = ShardIndex(args.heldout_synth)
    sets["synthetic_heldout_identities"] = (
        RigTriplets([held_ix], args.n, pos_max=0.0, seed=0, size=img_size),
        None,
    )
    splits: dict[str, object] = {}
    if cfg is not None:
        for kind, name in (("rig", "synthetic_run_split"), ("teacher", "real_teacher_heldout")):
            for i, (train, test, datasets) in enumerate(_sources(cfg, where, kind, args.n)):
                key = f"{name}_{i}" if i else name
                sets[key] = (test, "arkit_teacher" if kind == "teacher" else None)
                splits[key] = {
                    "datasets": datasets,
                    "test_share": cfg.data.test_share,
                    "split_seed": cfg.data.split_seed,
                    "train_subjects": len(set(train.subject_keys)),
                    "test_subjects": len(set(test.subject_keys)),
                    "shared_subjects": 0,
                }
    if args.ferplus_test is not None:
        vkw: dict[str, float] = {}
        for sc in cfg.data.sources if cfg is not None else ():
            if sc.kind == "votes":  # mine as the run mined its training vote triplets
                vkw.update(
                    {
                        k: v
                        for k, v in (("pos_max", sc.pos_max), ("margin", sc.margin))
                        if v is not None
                    }
                )
        sets["ferplus_votes_test"] = (
            VoteTriplets([ShardIndex(args.ferplus_test)], args.n, seed=0, size=img_size, **vkw),
            None,
        )
        splits["ferplus_votes_test"] = {
            "datasets": [str(args.ferplus_test)],
            "note": "FER+ Test split; training reads Train only",
        }
    result["splits"] = splits
    result["triplets"] = {k: len(s) for k, (s, _) in sets.items()}

    accuracy: dict[str, dict[str, float]] = {}
    variance: dict[str, dict[str, float]] = {}
    for name, emb_fn in models.items():
        acc, right, total = {}, 0.0, 0
        for key, (source, _) in sets.items():
            emb = _embed_refs(source, emb_fn, img_size)
            acc[key] = _triplet_acc(source, emb)
            right += acc[key] * len(source)
            total += len(source)
            print(f"{name:32s} {key:32s} {acc[key]:.3f}", flush=True)
        acc["overall"] = right / total
        accuracy[name] = acc
        # Identity share on every face of the held-out render.
        from facexpr.train.augment import to_uint8_chw
        from facexpr.train.mixing import resize_square

        feats = []
        for s in range(0, len(held_ix), 64):
            imgs = [
                resize_square(held_ix.image(i), img_size)
                for i in range(s, min(s + 64, len(held_ix)))
            ]
            feats.append(emb_fn(to_uint8_chw(imgs)).numpy())
        w, _ = held_ix.vectors("arkit_weights")
        expr = np.unique(np.round(w, 6), axis=0, return_inverse=True)[1].ravel()
        vs = identity_variance_share(
            np.concatenate(feats), held_ix.subject_ids, expr, permutations=args.permutations
        )
        variance[name] = {
            "identity_share": vs.identity,
            "expression_share": vs.expression,
            "identity_share_chance": vs.chance,
            # Mean squared distance to the mean embedding: near 0 means a collapsed embedding.
            "total_variance": vs.total,
            "faces": vs.n,
            "identities": vs.identities,
            "expressions": vs.expressions,
        }
        print(f"{name:32s} identity share {vs.identity:.4f} (chance {vs.chance:.4f})", flush=True)
    if not args.no_baselines:
        for key, (source, field) in sets.items():
            if field is not None:
                accuracy.setdefault("baseline_teacher_vector", {})[key] = _vector_acc(source, field)
    result["triplet_accuracy"] = accuracy
    result["identity_variance"] = variance
    result["targets"] = {
        "synthetic_triplet_accuracy": 0.90,
        "real_triplet_accuracy": 0.85,
        "identity_share_below": 0.05,
        "chance_triplet_accuracy": 1 / 3,
    }
    result["notes"] = (
        "baseline_teacher_vector is 1.0 by construction on teacher triplets (mined from it). "
        "baseline_mae_*: the stage-1 encoder's features, L2-normalised (cosine). "
        "identity_share: least-squares two-way fit, see facexpr.train.metrics."
    )

    if mae_dir is not None and (Path(mae_dir) / "model.safetensors").is_file():
        pngs = {}
        synth_faces = [held_ix.image(i) for i in range(0, min(len(held_ix), 64), 8)]
        pngs["synthetic"] = str(_reconstructions(Path(mae_dir), synth_faces, args.png_synthetic))
        mcfg = _load_run_config(Path(mae_dir), "mae")
        from facexpr.train.data import held_out

        for shard in mcfg.data.shards:
            ix = ShardIndex(_resolve(shard, Path(mae_dir)))
            keep = [
                i for i, s in enumerate(ix.subject_ids) if s and held_out(s, mcfg.data.val_percent)
            ][:8]
            if keep:
                path = _reconstructions(Path(mae_dir), [ix.image(i) for i in keep], args.png_real)
                pngs["real_heldout_not_committed"] = str(path)
                break
        result["reconstructions"] = pngs

    result.update(
        {
            "threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "seconds": round(time.perf_counter() - t0, 1),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "commit": git_commit(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from facexpr.io._files import write_text_atomic

    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

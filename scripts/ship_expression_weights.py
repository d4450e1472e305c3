"""Ships a finished expression run as the package's pretrained ``expression`` weights.

Usage::

    python scripts/ship_expression_weights.py RUN_DIR [--tag mae_triplet] [--mae MAE_RUN]
        [--metrics benchmarks/results/expression.json] [--check-faces SHARD_DIR] [--force]

Writes into ``src/facexpr/nn/weights/``:

- ``expression_<tag>.safetensors``: the run's ``model.safetensors`` in float16 when that keeps
  every check embedding within 1e-3 of the float32 one in cosine (1 - cos <= 1e-3), else float32;
  at most 20 MB (it stops otherwise);
- ``expression_<tag>.json``: its :class:`facexpr.nn.WeightsCard` (architecture, input size,
  mean/std, training data and their licences, metrics from the benchmark, sha256, the commands
  that retrain it);
- ``expression_<tag>.stage1.yaml`` / ``.stage2.yaml``: the two runs' resolved configs, which
  those commands take (the data folders they name are rebuilt as ``configs/`` describes).

``facexpr.nn.expression`` registers every such card at import, so
``create_model("expression", pretrained=True)`` loads it (``mae_triplet`` is the default tag).

Then it loads the shipped weights in a fresh process through ``create_model(..., pretrained=True)``
and checks their embeddings against the run's. Afterwards run
``scripts/record_expression_golden.py`` (the golden vector the tests compare to); the package
data must include ``nn/weights/*.safetensors`` (``*.json``, ``*.yaml``, ``*.npz`` already are).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 20 * 1024 * 1024
FP16_MAX_COSINE_LOSS = 1e-3

LICENCES = {
    "utkface": "UTKFace (Zhang, Song and Qi, CVPR 2017): non-commercial research use only; "
    "image copyright stays with the owners",
    "ferplus": "FER+ (Barsoum et al. 2016; labels MIT, Microsoft) on FER2013 images (Kaggle "
    "challenge data, no open licence): research use only",
    "synth": "facexpr synthetic faces rendered from ICT FaceKit (MIT)",
    "teacher": "teacher scores: MediaPipe Face Landmarker Blendshape V2 (Apache-2.0)",
}


def _describe(dataset: Path) -> str:
    """Returns a dataset's name and licence for the card (synthetic ones with seed and
    identities, so later benchmarks can tell which identities were trained on)."""
    from facexpr.io.shards import read_manifest

    man = read_manifest(dataset)
    if man.created_by == "facexpr.synth.generate":
        o = man.attributes.get("options", {})
        n_id = o.get("n_identities") or max(1, int(o.get("n", 50)) // 50)
        return f"{LICENCES['synth']} (seed {o.get('seed')}, {n_id} identities)"
    if "ferplus" in man.created_by:
        return LICENCES["ferplus"]
    if "utkface" in (json.dumps(man.attributes) + str(dataset)).lower():
        return LICENCES["utkface"]
    sys.exit(f"{dataset}: cannot tell which dataset this is, so not its licence; add it here")


def _resolve(path: str, run_dir: Path) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in (run_dir.parent.parent, REPO):
        if (base / p).exists():
            return base / p
    sys.exit(f"{run_dir}/config.yaml names {path}, which is not here")


def _shown(path: Path) -> str:
    """A path as the repository shows it (relative to the checkout when inside it)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _config(run_dir: Path, recipe: str):
    from facexpr.train.config import load_config
    from facexpr.train.recipe import get_recipe

    cls = get_recipe(recipe)
    return load_config(recipe, cls.ModelConfig, cls.DataConfig, run_dir / "config.yaml")


def _init_data(init: str, run: Path) -> list[str]:
    """The card's data lines for a run started from shipped analysis weights
    (``model.init: pretrained:analysis[.TAG]``): what those weights were trained on, read from
    their card now, before this script may replace them. Empty for any other start."""
    if not init.startswith("pretrained:"):
        return []
    from facexpr.nn import weights_card

    name = init[len("pretrained:") :]
    card = weights_card(name)
    return [
        f"initialised from the shipped '{name}' weights (sha256 {card.sha256[:12]}): "
        f"encoder and heads {', '.join(card.config.get('heads', []))}, trained on: {line}"
        for line in card.data
    ]


def _check_inputs(size: int, faces: Path | None) -> torch.Tensor:
    """(N, 3, S, S) uint8: seeded noise plus, if given, faces of a shard folder."""
    from facexpr.train.augment import to_uint8_chw
    from facexpr.train.mixing import ShardIndex, resize_square

    g = np.random.default_rng(0)
    imgs = [g.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8)]
    if faces is not None:
        ix = ShardIndex(faces)
        imgs += [resize_square(ix.image(i), size) for i in range(0, len(ix), max(1, len(ix) // 64))]
    return to_uint8_chw(imgs)


def _embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from facexpr.nn import FACE_MEAN, FACE_STD
    from facexpr.train.augment import normalise

    with torch.no_grad():
        return model.eval()(normalise(x, FACE_MEAN, FACE_STD)).float()


def _metrics(path: Path) -> dict[str, float]:
    if not path.is_file():
        print(f"warning: {path} not found: the card gets no metrics", file=sys.stderr)
        return {}
    res = json.loads(path.read_text())
    out: dict[str, float] = {}
    for k, v in res.get("triplet_accuracy", {}).get("trained", {}).items():
        out[f"triplet_accuracy/{k}"] = round(float(v), 4)
    var = res.get("identity_variance", {}).get("trained", {})
    for k in ("identity_share", "identity_share_chance"):
        if k in var:
            out[f"synthetic/{k}"] = round(float(var[k]), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--tag", default="mae_triplet")
    ap.add_argument("--mae", type=Path, help="the stage-1 run (default: the run's model.init)")
    ap.add_argument("--metrics", type=Path, default=REPO / "benchmarks/results/expression.json")
    ap.add_argument("--check-faces", type=Path, help="a shard folder of faces for the fp16 check")
    ap.add_argument("--weights-dir", type=Path, default=None, help="default: facexpr's nn/weights")
    ap.add_argument("--force", action="store_true", help="replace weights already shipped")
    ap.add_argument(
        "--train-command",
        default="",
        help="the commands that retrain it, for the card (default: the stage 1 and stage 2 "
        "commands of the shipped configs; give the whole chain when the run started from "
        "other weights)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    from facexpr.io._files import write_bytes_atomic, write_text_atomic
    from facexpr.nn import FACE_MEAN, FACE_STD, WeightsCard, create_model, load_weights
    from facexpr.nn.registry import WEIGHTS_DIR, sha256_file, weights_to_bytes

    run = args.run
    import yaml

    heads_run = yaml.safe_load((run / "config.yaml").read_text()).get("recipe") == "heads"
    weights_file = run / ("expression.safetensors" if heads_run else "model.safetensors")
    if not weights_file.is_file():
        sys.exit(f"{run}: no {weights_file.name}: not a finished run")
    if heads_run:
        # A `facexpr train heads` run: its encoder + embedding head, exported by the recipe as
        # expression.safetensors; trained on its labelled faces and triplets together.
        hcfg = _config(run, "heads")
        from types import SimpleNamespace

        from facexpr.train.recipes.expression import ExpressionModelConfig

        hm = hcfg.model
        cfg = SimpleNamespace(
            model=ExpressionModelConfig(
                encoder=hm.encoder, img_size=hm.img_size, depth=hm.depth, dim=hm.dim,
                hidden_dim=hm.hidden_dim, init=hm.init,
            ),
            data=SimpleNamespace(sources=hcfg.data.triplets),
            heads=hcfg,
        )  # fmt: skip
    else:
        cfg = _config(run, "expression")
    m = cfg.model
    arch: dict[str, object] = {
        "encoder": m.encoder,
        "dim": m.dim,
        "hidden_dim": m.hidden_dim or None,
        "img_size": m.img_size,
    }
    if m.depth:
        arch["depth"] = m.depth
    model = load_weights(create_model("expression", **arch), weights_file)
    x = _check_inputs(m.img_size, args.check_faces)
    ref = _embed(model, x)

    sd32 = {k: v.detach().float() for k, v in model.state_dict().items()}
    half = create_model("expression", **arch)
    half.load_state_dict({k: v.half().float() for k, v in sd32.items()})
    loss16 = float(
        (1 - torch.nn.functional.cosine_similarity(ref.double(), _embed(half, x).double())).max()
    )
    use16 = loss16 <= FP16_MAX_COSINE_LOSS
    tensors = {k: (v.half() if use16 and v.is_floating_point() else v) for k, v in sd32.items()}
    # One metadata key only: safetensors writes several in a random order, and the same run
    # must give the same bytes (and sha256).
    blob = weights_to_bytes(tensors, {"format": "pt"})
    if len(blob) > MAX_BYTES:
        sys.exit(f"{len(blob) / 2**20:.1f} MB is over the 20 MB budget: not shipped")

    out_dir = args.weights_dir or WEIGHTS_DIR
    wpath = out_dir / f"expression_{args.tag}.safetensors"
    cpath = out_dir / f"expression_{args.tag}.json"
    if (wpath.exists() or cpath.exists()) and not args.force:
        sys.exit(f"{wpath} is already shipped; --force replaces it")
    write_bytes_atomic(wpath, blob)

    init_data = _init_data(m.init, run)
    mae = args.mae or (_resolve(m.init, run) if m.init and not init_data else None)
    data, commands = list(init_data), []
    if mae is not None and (mae / "config.yaml").is_file():
        mcfg = _config(mae, "mae")
        kinds = sorted({_describe(_resolve(p, mae)) for p in mcfg.data.shards})
        data.append(f"stage 1 (MAE, {mae.name}): {'; '.join(kinds)}")
        stage1 = out_dir / f"expression_{args.tag}.stage1.yaml"
        write_text_atomic(stage1, (mae / "config.yaml").read_text(encoding="utf-8"))
        commands.append(f"facexpr train mae --config {_shown(stage1)} --out runs/{mae.name}")
    elif m.init and not init_data and m.init.endswith(".safetensors"):
        data.append(f"initialised from {m.init} (another run's weights; see train_command)")
    elif m.init and not init_data:
        data.append(f"stage 1 (MAE): {m.init} (its config was not available)")
    for sc in cfg.data.sources:
        kinds = sorted({_describe(_resolve(p, run)) for p in sc.datasets})
        lic = "; ".join(kinds) or "FEC (Google): its annotation licence; images their owners'"
        extra = f"; {LICENCES['teacher']}" if sc.kind == "teacher" else ""
        data.append(f"stage 2 triplets '{sc.kind}': {lic}{extra}")
    if heads_run:
        for sc in cfg.heads.data.faces:
            kinds = sorted({_describe(_resolve(p, run)) for p in sc.datasets})
            teacher = "arkit_teacher" in sc.labels.values()
            extra = f"; {LICENCES['teacher']}" if teacher else ""
            labels = ", ".join(f"{h} from {f}" for h, f in sc.labels.items())
            data.append(f"stage 2 labelled faces ({labels}): {'; '.join(kinds)}{extra}")
    stage2 = out_dir / f"expression_{args.tag}.stage2.yaml"
    write_text_atomic(stage2, (run / "config.yaml").read_text(encoding="utf-8"))
    recipe = "heads" if heads_run else "expression"
    commands.append(f"facexpr train {recipe} --config {_shown(stage2)} --out runs/{run.name}")
    research = any(w in " ".join(data) for w in ("UTKFace", "FER+"))
    grey = bool(heads_run and cfg.heads.data.grey)
    card = WeightsCard(
        tag=args.tag,
        grey=grey,
        input_size=(m.img_size, m.img_size),
        mean=tuple(FACE_MEAN),
        std=tuple(FACE_STD),
        license=(
            "research use only: trained on research-use datasets (UTKFace, FER+)"
            if research
            else "MIT (trained on synthetic faces only)"
        ),
        source=f"facexpr train run {run.name}; shipped as {'float16' if use16 else 'float32'} "
        f"(max 1 - cos vs float32 {loss16:.2e} on {len(x)} check inputs)",
        notes=(
            "UTKFace and FER+ are research-use datasets: these weights are for non-commercial "
            "research use only"
            if research
            else ""
        ),
        file=wpath.name if out_dir == WEIGHTS_DIR else str(wpath),
        sha256=sha256_file(wpath),
        architecture=f"expression: {m.encoder} at {m.img_size} px (depth {m.depth or 'default'})"
        f" + EmbeddingHead({m.dim}-d, hidden {m.hidden_dim or 'none'})",
        config=arch,
        data=tuple(data),
        metrics=_metrics(args.metrics),
        train_command=args.train_command or "  then  ".join(commands),
    )
    write_text_atomic(cpath, card.to_json())
    print(
        f"wrote {wpath} ({len(blob) / 2**20:.2f} MB, {'float16' if use16 else 'float32'}, "
        f"max 1 - cos {loss16:.2e}) and {cpath}"
    )

    if out_dir == WEIGHTS_DIR:
        # A fresh process: the card must register at import and load offline.
        code = (
            "import sys, torch, numpy as np; from facexpr.nn import create_model;"
            f"m = create_model('expression.{args.tag}', pretrained=True);"
            "x = torch.from_numpy(np.load(sys.argv[1]));"
            "print(m(x).detach().numpy().tobytes().hex())"
        )
        from facexpr.train.augment import normalise

        with tempfile.TemporaryDirectory() as tmp:
            inp = Path(tmp) / "x.npy"
            np.save(inp, normalise(x, FACE_MEAN, FACE_STD).numpy())
            got = subprocess.run(
                [sys.executable, "-c", code, str(inp)], capture_output=True, text=True, check=True
            ).stdout.strip()
        emb = torch.from_numpy(
            np.frombuffer(bytes.fromhex(got), np.float32).reshape(ref.shape).copy()
        )
        worst = float((1 - torch.nn.functional.cosine_similarity(ref.double(), emb.double())).max())
        if worst > FP16_MAX_COSINE_LOSS:
            sys.exit(f"the shipped weights give other embeddings (1 - cos {worst:.2e})")
        print(
            f"create_model('expression.{args.tag}', pretrained=True) loads it: "
            f"max 1 - cos {worst:.2e} vs the run"
        )


if __name__ == "__main__":
    main()

"""Ships a finished ``facexpr train heads`` run as the package's pretrained ``analysis`` weights.

Usage::

    python scripts/ship_analysis_weights.py RUN_DIR [--weights FILE] [--tag heads]
        [--heads embedding,emotion,va] [--metrics benchmarks/results/heads.json]
        [--expression-metrics benchmarks/results/expression.json] [--force]

1. Loads the run's model (``RUN_DIR/analysis.safetensors``, or ``--weights``: a checkpoint's
   ``model.safetensors``); with ``--heads``, keeps only those heads (a head trained as an
   auxiliary signal but not good enough to show users is left out of the shipped file, and so
   out of the analysis table).
2. Calibrates the AU occurrence thresholds (when the model has the AU head): on the faces of
   subjects the run held out of each labelled source (the recipe's own ``test`` side), split
   again by subject into a calibration half and an evaluation half; per AU the probability
   threshold that maximises F1 on the calibration half (pooled over sources) is kept, and the F1
   on the evaluation half is reported (never on faces the threshold was chosen on). The
   thresholds go into the weights (``aus.thresholds``).
3. Writes ``analysis_<tag>.safetensors`` (float16 when every output stays within 2e-3 of the
   float32 model on check faces, else float32; at most 20 MB) and its card
   ``analysis_<tag>.json`` (architecture, input size, mean/std, training data and licences,
   metrics from ``--metrics``, sha256, the command that retrains it) and
   ``analysis_<tag>.yaml`` (the run's resolved config) into ``src/facexpr/nn/weights/``.
4. Loads them back in a fresh process through ``create_model("analysis", pretrained=True)``
   and checks the outputs against the run's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
MAX_BYTES = 20 * 1024 * 1024
FP16_MAX_ABS = 2e-3
#: Which card metrics belong to which head (by a word in their key), so that a head left out of
#: the shipped file (``--heads``) takes its figures with it.
HEAD_METRIC_MARKS = {"blendshapes": ("blendshape",), "aus": ("au_", "/au")}

from ship_expression_weights import (  # noqa: E402
    LICENCES,
    _describe,
    _init_data,
    _metrics,
    _resolve,
    _shown,
)


def _config(run_dir: Path):
    from facexpr.train.config import load_config
    from facexpr.train.recipe import get_recipe

    cls = get_recipe("heads")
    return load_config("heads", cls.ModelConfig, cls.DataConfig, run_dir / "config.yaml")


def _packed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from facexpr.nn import FACE_MEAN, FACE_STD
    from facexpr.nn.analysis import PackedAnalysis
    from facexpr.train.augment import normalise

    with torch.no_grad():
        return PackedAnalysis(model).eval()(normalise(x, FACE_MEAN, FACE_STD)).float()


def _heldout_faces(cfg, run: Path, size: int):
    """Yields (source name, images (N, 3, S, S) uint8, AU targets, AU masks, calibration half
    (N,) bool) of each labelled source's held-out side, exactly as the recipe held it out."""
    from facexpr.train.augment import to_uint8_chw
    from facexpr.train.recipe import get_recipe

    for sc in [*cfg.data.faces, *cfg.data.val]:
        sc.datasets = [str(_resolve(p, run)) for p in sc.datasets]
    for sc in cfg.data.triplets:
        sc.datasets = [str(_resolve(p, run)) for p in sc.datasets]
    recipe = get_recipe("heads")(cfg.model, cfg.data)
    for side in recipe._side("test", cfg.run.seed):
        if "aus" not in side.targets or side.name.startswith("val:"):
            continue
        subj = []
        for di, i in side.refs:
            s = side.indexes[di].subject_ids[i] or f"#{i}"
            subj.append(zlib.crc32(f"{di}:{s}".encode()) % 2 == 0)
        imgs = to_uint8_chw([side.image(k, size) for k in range(len(side))])
        yield side.name, imgs, side.targets["aus"], side.masks["aus"], np.array(subj)


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    tp = float((pred & true).sum())
    d = float(pred.sum() + true.sum())
    return 2 * tp / d if d else float("nan")


def _grey_only(cfg, run: Path, n: int = 50) -> bool:
    """Whether every labelled face the run trained on is greyscale (equal channels in ``n``
    faces of each dataset): such a model is shipped with ``grey`` on its card, so colour faces
    are turned to luminance before it, as its training faces were."""
    from facexpr.train.mixing import ShardIndex

    for sc in cfg.data.faces:
        for folder in sc.datasets:
            ix = ShardIndex(_resolve(folder, run))
            for i in np.linspace(0, len(ix) - 1, min(n, len(ix))).astype(int):
                im = ix.image(int(i))
                if im.ndim == 3 and not (im == im[:, :, :1]).all():
                    return False
    return True


def calibrate(model, cfg, run: Path) -> tuple[np.ndarray, dict[str, float]]:
    """Returns the per-AU thresholds and the figures of the evaluation halves."""
    from facexpr.core.affect import HEAD_AUS

    probs, trues, masks, cal = [], [], [], []
    names = []
    for name, imgs, t, m, half in _heldout_faces(cfg, run, cfg.model.img_size):
        out = np.concatenate([_packed(model, imgs[i : i + 128]).numpy()
                              for i in range(0, len(imgs), 128)])  # fmt: skip
        probs.append(out[:, 78:98])
        trues.append(t >= cfg.model.au_threshold)
        masks.append(m)
        cal.append(half)
        names += [name] * len(imgs)
    if not probs:
        sys.exit("the run has no held-out faces with AU labels: cannot calibrate")
    p, y, m, c = (np.concatenate(a) for a in (probs, trues, masks, cal))
    src = np.array(names)
    grid = np.linspace(0.05, 0.95, 19)
    thr = np.full(len(HEAD_AUS), 0.5, np.float32)
    metrics: dict[str, float] = {}
    for k in range(len(HEAD_AUS)):
        rows = m[:, k] & c
        if y[rows, k].sum() >= 5:
            f = [_f1(p[rows, k] >= g, y[rows, k]) for g in grid]
            thr[k] = float(grid[int(np.nanargmax(f))])
    for name in dict.fromkeys(names):
        ev = (src == name) & ~c
        f1s, f1_half = [], []
        for k in range(len(HEAD_AUS)):
            rows = ev & m[:, k]
            if y[rows, k].sum() >= 5:
                f1s.append(_f1(p[rows, k] >= thr[k], y[rows, k]))
                f1_half.append(_f1(p[rows, k] >= 0.5, y[rows, k]))
        if f1s:
            metrics[f"{name}/au_f1_calibrated"] = round(float(np.nanmean(f1s)), 4)
            metrics[f"{name}/au_f1_at_0.5"] = round(float(np.nanmean(f1_half)), 4)
            metrics[f"{name}/au_eval_faces"] = int(ev.sum())
    return thr, metrics


def _write_onnx(tensors, arch, size: int, x: torch.Tensor, ref: torch.Tensor, path: Path) -> str:
    """Writes the ONNX export of the shipped weights (the packed (B, 118) output) to ``path``
    after checking it under ONNX Runtime against the float32 model on the check inputs;
    returns its sha256. The weights are stored as float16 (they are shipped as float16: exact),
    computed in float32. ``analyze`` runs it without importing torch (faster start-up)."""
    from facexpr.io._files import write_bytes_atomic
    from facexpr.nn import FACE_MEAN, FACE_STD, create_model
    from facexpr.nn.analysis import PackedAnalysis
    from facexpr.nn.registry import sha256_file
    from facexpr.nn.runtime import OnnxRunner, export_onnx, store_float16
    from facexpr.train.augment import normalise

    shipped = create_model("analysis", **arch)
    shipped.load_state_dict({k: v.float() for k, v in tensors.items()})
    with torch.no_grad():
        data = store_float16(export_onnx(PackedAnalysis(shipped).eval(), (3, size, size)))
    got = OnnxRunner(data, threads=1)(normalise(x, FACE_MEAN, FACE_STD)).numpy()
    worst = float(np.nan_to_num(np.abs(got - ref.numpy())).max())
    if worst > FP16_MAX_ABS:
        sys.exit(f"the ONNX export gives other outputs (max |diff| {worst:.2e}): not shipped")
    write_bytes_atomic(path, data)
    print(f"wrote {path} ({len(data) / 2**20:.2f} MB; ONNX Runtime max |diff| {worst:.1e})")
    return sha256_file(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--weights", type=Path, help="default RUN/analysis.safetensors")
    ap.add_argument("--tag", default="heads")
    ap.add_argument("--metrics", type=Path, default=REPO / "benchmarks/results/heads.json")
    ap.add_argument("--weights-dir", type=Path, default=None, help="default: facexpr's nn/weights")
    ap.add_argument("--force", action="store_true", help="replace weights already shipped")
    ap.add_argument(
        "--no-onnx", action="store_true", help="do not ship the ONNX export beside the weights"
    )
    ap.add_argument(
        "--train-command",
        default="",
        help="the commands that retrain it, for the card (default: one `facexpr train heads` of "
        "the shipped config; give the whole chain when the run started from other weights)",
    )
    ap.add_argument(
        "--expression-metrics",
        type=Path,
        default=None,
        help="benchmarks/expression.py's JSON for the embedding head (triplets, identity share)",
    )
    ap.add_argument(
        "--heads", default="", help="comma-separated heads to ship (default: all the run built)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    from facexpr.io._files import write_bytes_atomic, write_text_atomic
    from facexpr.nn import FACE_MEAN, FACE_STD, WeightsCard, create_model
    from facexpr.nn.registry import WEIGHTS_DIR, sha256_file, weights_to_bytes
    from facexpr.train.checkpoint import load_model_weights

    run = args.run
    cfg = _config(run)
    m = cfg.model
    arch = m.architecture()
    weights = args.weights or run / "analysis.safetensors"
    if not weights.is_file():
        sys.exit(f"{weights}: not found (a finished heads run writes analysis.safetensors)")
    model = create_model("analysis", **arch).eval()
    load_model_weights(model, weights)
    if args.heads:
        keep = [h.strip() for h in args.heads.split(",") if h.strip()]
        unknown = sorted(set(keep) - set(m.heads))
        if unknown:
            sys.exit(f"--heads: the run has no head '{unknown[0]}' (it has {', '.join(m.heads)})")
        arch["heads"] = [h for h in m.heads if h in keep]
        sub = create_model("analysis", **arch).eval()
        full = model.state_dict()
        sub.load_state_dict({k: full[k] for k in sub.state_dict()}, strict=True)
        model = sub
        print(f"shipping the heads {', '.join(arch['heads'])} of {', '.join(m.heads)}")
    init_data = _init_data(m.init, run)

    cal_metrics: dict[str, float] = {}
    if model.aus is not None:  # a model without the AU head has no thresholds to calibrate
        thr, cal_metrics = calibrate(model, cfg, run)
        model.aus.thresholds.copy_(torch.from_numpy(thr))
        print("AU thresholds:", np.round(thr, 2).tolist(), cal_metrics)

    g = np.random.default_rng(0)
    x = torch.from_numpy(g.integers(0, 256, (16, 3, m.img_size, m.img_size), dtype=np.uint8))
    ref = _packed(model, x)
    sd32 = {k: v.detach().float() for k, v in model.state_dict().items()}
    half = create_model("analysis", **arch)
    half.load_state_dict({k: v.half().float() for k, v in sd32.items()})
    err16 = float((ref - _packed(half, x)).abs().nan_to_num(0).max())
    use16 = err16 <= FP16_MAX_ABS
    tensors = {k: (v.half() if use16 and v.is_floating_point() else v) for k, v in sd32.items()}
    blob = weights_to_bytes(tensors, {"format": "pt"})
    if len(blob) > MAX_BYTES:
        sys.exit(f"{len(blob) / 2**20:.1f} MB is over the 20 MB budget: not shipped")

    out_dir = args.weights_dir or WEIGHTS_DIR
    wpath = out_dir / f"analysis_{args.tag}.safetensors"
    cpath = out_dir / f"analysis_{args.tag}.json"
    ypath = out_dir / f"analysis_{args.tag}.yaml"
    if (wpath.exists() or cpath.exists()) and not args.force:
        sys.exit(f"{wpath} is already shipped; --force replaces it")
    write_bytes_atomic(wpath, blob)
    write_text_atomic(ypath, (run / "config.yaml").read_text(encoding="utf-8"))
    opath = out_dir / f"analysis_{args.tag}.onnx"
    onnx_sha = _write_onnx(tensors, arch, m.img_size, x, ref, opath) if not args.no_onnx else ""

    data = list(init_data)
    if m.init and not init_data:
        init = _resolve(m.init, run)
        pre = init / "config.yaml" if init.is_dir() else init.parent / "config.yaml"
        shards: list[str] = []
        recipe = "mae"
        if pre.is_file():
            import yaml

            pcfg = yaml.safe_load(pre.read_text(encoding="utf-8")) or {}
            recipe = pcfg.get("recipe", "mae")
            shards = (pcfg.get("data") or {}).get("shards") or []
        if recipe == "heads":  # another heads run's analysis weights: say so, and its data
            pdata = pcfg.get("data") or {}
            folders = sorted({p for sc in [*pdata.get("faces", []), *pdata.get("triplets", [])]
                              for p in sc.get("datasets", [])})  # fmt: skip
            kinds = sorted({_describe(_resolve(p, pre.parent)) for p in folders})
            data.append(
                f"initialised from {m.init} (facexpr train heads run {pre.parent.name}, itself "
                f"from {pcfg.get('model', {}).get('init', '?')}; trained on: {'; '.join(kinds)})"
            )
        else:
            kinds = sorted({_describe(_resolve(p, pre.parent)) for p in shards})
            data.append(
                f"encoder initialised from {m.init} (facexpr train mae"
                + (f" on: {'; '.join(kinds)})" if kinds else "; its data not recorded)")
            )
    for sc in cfg.data.faces:
        kinds = sorted({_describe(_resolve(p, run)) for p in sc.datasets})
        teacher = any(f == "arkit_teacher" for f in sc.labels.values())
        extra = f"; {LICENCES['teacher']}" if teacher else ""
        labels = ", ".join(f"{h} from {f}" for h, f in sc.labels.items())
        data.append(f"labelled faces ({labels}): {'; '.join(kinds)}{extra}")
    for sc in cfg.data.triplets:
        kinds = sorted({_describe(_resolve(p, run)) for p in sc.datasets})
        data.append(f"embedding triplets '{sc.kind}': {'; '.join(kinds)}")
    metrics: dict[str, float] = dict(cal_metrics)
    if args.metrics.is_file():
        res = json.loads(args.metrics.read_text())
        metrics.update({k: v for k, v in res.get("card_metrics", {}).items()})
    else:
        print(f"warning: {args.metrics} not found: the card gets the calibration figures only")
    if args.expression_metrics is not None and "embedding" in arch["heads"]:
        metrics.update({f"embedding/{k}": v for k, v in _metrics(args.expression_metrics).items()})
    # Figures of heads left out (--heads) describe outputs the shipped file does not have.
    for head, marks in HEAD_METRIC_MARKS.items():
        if head not in arch["heads"]:
            metrics = {k: v for k, v in metrics.items() if not any(w in k for w in marks)}
    grey = bool(getattr(cfg.data, "grey", False)) or _grey_only(cfg, run)
    if grey:
        print("every training face is greyscale: the card says grey (colour input -> luminance)")
    card = WeightsCard(
        tag=args.tag,
        grey=grey,
        input_size=(m.img_size, m.img_size),
        mean=tuple(FACE_MEAN),
        std=tuple(FACE_STD),
        license="research use only: trained on research-use datasets (UTKFace, FER+)",
        source=f"facexpr train heads run {run.name} ({weights.name}); shipped as "
        f"{'float16' if use16 else 'float32'} (max |diff| vs float32 {err16:.1e})",
        notes="UTKFace and FER+ are research-use datasets: these weights are for non-commercial "
        "research use only. Valence-arousal was trained on targets derived from emotion "
        "labels (facexpr.core.affect), not on measured valence-arousal.",
        file=wpath.name if out_dir == WEIGHTS_DIR else str(wpath),
        sha256=sha256_file(wpath),
        onnx_file=(opath.name if out_dir == WEIGHTS_DIR else str(opath)) if onnx_sha else "",
        onnx_sha256=onnx_sha,
        architecture=f"analysis: {m.encoder} at {m.img_size} px + heads {', '.join(arch['heads'])} "
        f"(hidden {m.hidden_dim}, {m.experts} expert(s), LAFM au_dim {m.au_dim})",
        config=arch,
        data=tuple(data),
        metrics=metrics,
        train_command=args.train_command
        or f"facexpr train heads --config {_shown(ypath)} --out runs/{run.name}",
    )
    write_text_atomic(cpath, card.to_json())
    print(f"wrote {wpath} ({len(blob) / 2**20:.2f} MB, {'float16' if use16 else 'float32'}), "
          f"{cpath}, {ypath}")  # fmt: skip

    if out_dir == WEIGHTS_DIR:
        code = (
            "import sys, torch, numpy as np; from facexpr.nn import create_model;"
            "from facexpr.nn.analysis import PackedAnalysis;"
            f"m = PackedAnalysis(create_model('analysis.{args.tag}', pretrained=True)).eval();"
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
        back = np.frombuffer(bytes.fromhex(got), np.float32).reshape(ref.shape)
        worst = float(np.nan_to_num(np.abs(back - ref.numpy())).max())
        if worst > FP16_MAX_ABS:
            sys.exit(f"the shipped weights give other outputs (max |diff| {worst:.2e})")
        print(
            f"create_model('analysis.{args.tag}', pretrained=True) loads it: max |diff| {worst:.1e}"
        )


if __name__ == "__main__":
    main()

"""Encoder speed: ms per face of the fxvit encoders on CPU, plain PyTorch vs ONNX Runtime, at
batch 1 and 32, against the speed budget of MediaPipe's Face Landmarker measured in the same run.

Usage (ONNX Runtime is not a facexpr dependency: run in a venv that has it, else the ORT rows are
skipped and the JSON says why)::

    python -m venv /work/venv-ort
    /work/venv-ort/bin/pip install torch==2.13.0 onnxruntime onnx onnxscript numpy safetensors \
        ai-edge-litert==2.3.0
    PYTHONPATH=src /work/venv-ort/bin/python benchmarks/encoder.py [--threads 1 2] [--paired-only] \
        [--repeats 5] [--out benchmarks/results/encoder.json]

Each configuration (variant, input side, batch, backend) is warmed up, then timed over
``--repeats`` rounds of at least ``--faces`` faces each; the JSON keeps every round's ms/face,
and the table prints the median with the min-max spread, because other processes share the
cores. Every thread count of ``--threads`` is measured: on cores other processes also use, a
thread that waits at a barrier for a descheduled sibling loses the core's time slice, so one
thread can beat two. torch runs under ``torch.inference_mode()`` with
``torch.set_num_threads(threads)``; ONNX Runtime with ``intra_op_num_threads=threads``, spinning
off (``session.intra_op.allow_spinning=0``, so idle ORT threads do not eat the next
measurement's CPU) and graph optimisation level all, on a model exported by torch's
TorchScript-based exporter (opset 17, dynamic batch; faster to export than ``dynamo=True``, same
graph here), checked against torch's output.

The budget: the issue asks facexpr's analysis (front-end + encoder + heads) to be at least as
fast as MediaPipe's Face Landmarker with blendshapes. On a tracked video both skip the face
detector on most frames, so per face MediaPipe pays its Face Mesh V2 landmark model
(256 px) plus Blendshape V2, and facexpr pays its own landmark model (FaceMesh, 192 px) plus
the encoder. The benchmark times those four ``.tflite`` models per call under ``ai-edge-litert``
with the same thread count, in the same run, and reports
``budget = MP landmarks + MP blendshapes - facexpr landmarks``: the encoder ms a face may cost
(model compute only; both pipelines' pre/post-processing is left out). Because the load from
other processes changes from second to second, the "paired" rounds time the budget models and
each 112 px tiny candidate back to back and report the per-round ratio candidate / budget
(<= 1 fits); ``--paired-only`` runs just those.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import REPO, git_commit
from facexpr.io._files import write_text_atomic
from facexpr.nn import create_model

BUNDLE = REPO.parent / "shared" / "assets" / "mediapipe-face-landmarker" / "face_landmarker.task"
FACES_MODELS = REPO / "src" / "facexpr" / "faces" / "models"
# (variant, input side, blocks): the CPU candidates at 112 px, a 6-block tiny probe (half the
# compute, to see what fits the budget), and 224 px for reference.
CONFIGS = [
    ("fxvit_tiny_p16_112", 112, 12),
    ("fxvit_tiny_p16_112", 112, 6),
    ("fxvit_small_p16_112", 112, 12),
    ("fxvit_tiny_p16_112", 224, 12),
    ("fxvit_small_p16_112", 224, 12),
]


def _rounds(fn: Callable[[], object], per_round: int, repeats: int, warmup: int) -> list[float]:
    """Returns the seconds of each of ``repeats`` rounds of ``per_round`` calls, after warmup."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(per_round):
            fn()
        out.append(time.perf_counter() - t)
    return out


def _summary(ms: list[float]) -> dict[str, float | list[float]]:
    med = statistics.median(ms)
    return {
        "ms_per_face_median": med,
        "ms_per_face_min": min(ms),
        "ms_per_face_max": max(ms),
        "spread_pct": 100.0 * (max(ms) - min(ms)) / med,
        "ms_per_face_rounds": ms,
    }


def _export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def bench_encoders(args: argparse.Namespace, threads: int, tmp: Path) -> tuple[list[dict], str]:
    """Returns the rows of every (variant, size, batch, backend), and why ORT was skipped."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        ort, ort_note = None, f"onnxruntime not importable ({e}); ORT rows skipped"
    else:
        ort_note = f"onnxruntime {ort.__version__}"
    rows = []
    for name, size, depth in CONFIGS:
        if size not in args.sizes:
            continue
        torch.manual_seed(0)
        model = create_model(name, img_size=size, depth=depth).eval()
        params = sum(p.numel() for p in model.parameters())
        session = None
        if ort is not None:
            onnx_path = tmp / f"{name}_{size}_{depth}.onnx"
            if not onnx_path.is_file():
                _export_onnx(model, size, onnx_path)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        for batch in args.batches:
            x = torch.randn(batch, 3, size, size)
            xn = x.numpy()
            calls = max(1, math.ceil(args.faces / batch))
            with torch.inference_mode():
                ref = model(x)
                secs = _rounds(lambda x=x, model=model: model(x), calls, args.repeats, args.warmup)
            base = {
                "variant": name,
                "img_size": size,
                "depth": depth,
                "batch": batch,
                "threads": threads,
                "params": params,
            }
            rows.append(
                {
                    **base,
                    "backend": "torch",
                    **_summary([1e3 * s / (calls * batch) for s in secs]),
                }
            )
            if session is not None:
                y = session.run(None, {"x": xn})[0]
                err = float(np.abs(y - ref.numpy()).max())
                secs = _rounds(
                    lambda xn=xn, s=session: s.run(None, {"x": xn}),
                    calls,
                    args.repeats,
                    args.warmup,
                )
                rows.append(
                    {
                        **base,
                        "backend": "onnxruntime",
                        "max_abs_diff_vs_torch": err,
                        **_summary([1e3 * s / (calls * batch) for s in secs]),
                    }
                )
            r = rows[-1]
            print(
                f"{name:>20} {size:>4}px d{depth} b{batch:<3} t{threads} done "
                f"(last: {r['backend']} {r['ms_per_face_median']:.2f} ms/face)",
                file=sys.stderr,
            )
    return rows, ort_note


def bench_budget(args: argparse.Namespace, threads: int, tmp: Path) -> dict:
    """Returns per-call ms of MediaPipe's and facexpr's landmark models and the encoder budget."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        return {"skipped": f"ai-edge-litert not importable ({e})"}
    if not BUNDLE.is_file():
        return {"skipped": f"{BUNDLE} not found"}
    with zipfile.ZipFile(BUNDLE) as z:
        z.extractall(tmp / "mp")
    models = {
        "mediapipe_face_detector": tmp / "mp" / "face_detector.tflite",
        "mediapipe_landmarks_v2": tmp / "mp" / "face_landmarks_detector.tflite",
        "mediapipe_blendshapes_v2": tmp / "mp" / "face_blendshapes.tflite",
        "facexpr_face_detector": FACES_MODELS / "face_detection_short_range.tflite",
        "facexpr_landmarks": FACES_MODELS / "face_landmark.tflite",
    }
    out: dict[str, object] = {}
    rng = np.random.default_rng(0)
    for key, path in models.items():
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], rng.random(inp["shape"], dtype=np.float32))
        secs = _rounds(it.invoke, 50, args.repeats, 5)
        out[key] = {"input": [int(s) for s in inp["shape"]], **_summary([20 * s for s in secs])}
    med = {k: v["ms_per_face_median"] for k, v in out.items() if isinstance(v, dict)}
    out["encoder_budget_ms"] = (
        med["mediapipe_landmarks_v2"] + med["mediapipe_blendshapes_v2"] - med["facexpr_landmarks"]
    )
    out["budget_rule"] = "MP landmarks V2 + MP blendshapes V2 - facexpr landmarks, per call"
    out["threads"] = threads
    return out


def bench_paired(args: argparse.Namespace, threads: int, tmp: Path) -> list[dict]:
    """Returns, per 112 px candidate, its ms/face over the budget, measured round by round.

    Each round times the budget models and then every candidate back to back, so that both see
    the same load from other processes; the ratio of a round is candidate / budget of that round.
    """
    try:
        import onnxruntime as ort
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return []
    mp_dir = tmp / "mp"
    if not mp_dir.is_dir():
        with zipfile.ZipFile(BUNDLE) as z:
            z.extractall(mp_dir)
    rng = np.random.default_rng(0)

    def interpreter(path: Path) -> Callable[[], object]:
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], rng.random(inp["shape"], dtype=np.float32))
        return it.invoke

    mp_lm = interpreter(mp_dir / "face_landmarks_detector.tflite")
    mp_bs = interpreter(mp_dir / "face_blendshapes.tflite")
    fx_lm = interpreter(FACES_MODELS / "face_landmark.tflite")
    cands: dict[tuple[str, int, int], Callable[[], object]] = {}
    for name, size, depth in CONFIGS:
        if size != 112 or name != "fxvit_tiny_p16_112":
            continue
        torch.manual_seed(0)
        model = create_model(name, img_size=size, depth=depth).eval()
        onnx_path = tmp / f"{name}_{size}_{depth}.onnx"
        if not onnx_path.is_file():
            _export_onnx(model, size, onnx_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        for batch in args.batches:
            xn = np.random.default_rng(1).standard_normal((batch, 3, size, size), np.float32)
            xt = torch.from_numpy(xn)
            cands[(f"{name} d{depth}", batch, 0)] = lambda xn=xn, s=sess: s.run(None, {"x": xn})
            cands[(f"{name} d{depth}", batch, 1)] = lambda xt=xt, m=model: m(xt)
    per: dict[tuple[str, int, int], list[tuple[float, float]]] = {k: [] for k in cands}
    with torch.inference_mode():
        for fn in (mp_lm, mp_bs, fx_lm, *cands.values()):
            fn()
        for _ in range(args.repeats):
            t = time.perf_counter()
            for _ in range(20):
                mp_lm()
                mp_bs()
            mp = (time.perf_counter() - t) / 20
            t = time.perf_counter()
            for _ in range(20):
                fx_lm()
            budget = 1e3 * (mp - (time.perf_counter() - t) / 20)
            for (label, batch, backend), fn in cands.items():
                calls = max(1, math.ceil(args.faces / batch))
                t = time.perf_counter()
                for _ in range(calls):
                    fn()
                ms = 1e3 * (time.perf_counter() - t) / (calls * batch)
                per[(label, batch, backend)].append((ms, budget))
    out = []
    for (label, batch, backend), vals in per.items():
        ratios = [ms / b for ms, b in vals]
        out.append(
            {
                "candidate": label,
                "backend": "torch" if backend else "onnxruntime",
                "batch": batch,
                "threads": threads,
                "ms_per_face_median": statistics.median(ms for ms, _ in vals),
                "budget_ms_median": statistics.median(b for _, b in vals),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "rounds_within_budget": sum(r <= 1.0 for r in ratios),
                "rounds": len(ratios),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224], help="input sides to run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--faces", type=int, default=64, help="faces per timed round")
    p.add_argument("--paired-only", action="store_true", help="only the paired budget rounds")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "encoder.json"))
    args = p.parse_args()
    load_before = os.getloadavg()
    rows: list[dict] = []
    budgets: list[dict] = []
    paired: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        for threads in args.threads:
            torch.set_num_threads(threads)
            budgets.append(bench_budget(args, threads, Path(d)))
            if not args.paired_only:
                got, ort_note = bench_encoders(args, threads, Path(d))
                rows += got
            else:
                ort_note = "rows skipped (--paired-only)"
            if 112 in args.sizes:
                paired += bench_paired(args, threads, Path(d))
    print(
        f"{'variant':>20} {'px':>4} {'depth':>5} {'batch':>5} {'thr':>3} {'backend':>12} "
        f"{'ms/face':>8} {'min-max':>13}"
    )
    for r in rows:
        print(
            f"{r['variant']:>20} {r['img_size']:>4} {r['depth']:>5} {r['batch']:>5} "
            f"{r['threads']:>3} {r['backend']:>12} {r['ms_per_face_median']:>8.2f} "
            f"{r['ms_per_face_min']:>6.2f}-{r['ms_per_face_max']:<6.2f}"
        )
    for budget in budgets:
        if "encoder_budget_ms" not in budget:
            print(f"budget skipped: {budget.get('skipped')}")
            continue
        for k, v in budget.items():
            if isinstance(v, dict):
                print(f"{k:>26} t{budget['threads']}: {v['ms_per_face_median']:.2f} ms/call")
        print(
            f"encoder budget t{budget['threads']}: {budget['encoder_budget_ms']:.2f} ms/face "
            f"({budget['budget_rule']})"
        )
    result = {
        "benchmark": "nn.encoder",
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "config": {
            "threads": args.threads,
            "repeats": args.repeats,
            "faces_per_round": args.faces,
            "sizes": args.sizes,
            "warmup_calls": args.warmup,
            "onnxruntime": ort_note,
            "onnx_export": "torch.onnx.export(dynamo=False), opset 17, dynamic batch",
            "weights": "random init (speed does not depend on the values)",
        },
        "rows": rows,
        "budget": budgets,
        "paired": paired,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"{'paired candidate':>24} {'backend':>12} {'b':>3} {'thr':>3} {'ms':>6} {'budget':>6} "
        f"{'ratio':>6} {'min-max':>11} {'fit':>5}"
    )
    for r in paired:
        print(
            f"{r['candidate']:>24} {r['backend']:>12} {r['batch']:>3} {r['threads']:>3} "
            f"{r['ms_per_face_median']:>6.2f} {r['budget_ms_median']:>6.2f} "
            f"{r['ratio_median']:>6.2f} {r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f} "
            f"{r['rounds_within_budget']:>2}/{r['rounds']}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

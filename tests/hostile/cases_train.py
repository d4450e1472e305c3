"""Hostile configs for ``facexpr train``, and the place for hostile checkpoints.

``facexpr train RECIPE --config FILE [--set KEY=VALUE] [--out RUN_DIR] [--resume RUN_DIR]`` landed
on another branch (h-train) while this corpus was written; these cases use only that command line
and YAML, and are skipped where the tree under test has no ``facexpr/cli/train.py``. They were
run against main's tree at the time (``FACEXPR_HOSTILE_SRC=<export of main>/src``).

The checkpoint cases (``ckpt-*``) write a run folder into ``dirs.inp`` (its ``config.yaml``,
``checkpoints/latest.json`` and one ``step-*`` folder in the layout of
:mod:`facexpr.train.checkpoint`) with one hostile file, and give it to ``--resume``; the
``init-*`` cases give a stage-1 run folder with a hostile ``encoder.safetensors`` to
``facexpr train expression --set model.init=RUN_DIR``. Hostile files: zero bytes, a header cut
off, a header length larger than the file, a header that is not JSON or not an object, nested
JSON, an unknown dtype, a shape disagreeing with its byte range, overlapping or out-of-file
``data_offsets``, a tensor claiming 10^12 elements, a pickle renamed ``.safetensors`` (never
unpickled), a checkpoint of another model (the missing tensors named), nested or huge JSON
files, ``latest.json`` naming a folder outside, and links out of the run folder.
"""

from __future__ import annotations

import json
import os
import pickle
import struct

from corpus import SRC, Case, CaseDirs, Setup

_SKIP = None if (SRC / "facexpr" / "cli" / "train.py").is_file() else "no facexpr train here"


def train(dirs: CaseDirs, *extra: str) -> list[str]:
    """Returns ``facexpr train mae`` arguments with a run folder in ``out/``."""
    return ["train", "mae", "--out", str(dirs.out / "run"), "--no-progress", *extra]


def config_case(name: str, text: str | bytes, problem: str, **kw) -> Case:
    """A case training with the config file holding ``text``."""

    def build(dirs: CaseDirs) -> Setup:
        p = dirs.inp / "config.yaml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return Setup(train(dirs, "--config", str(p)), p)

    return Case(
        name=f"train-{name}", family="train", build=build, problem=problem, skip=_SKIP, **kw
    )


def _bad_set(dirs: CaseDirs) -> Setup:
    return Setup(train(dirs, "--set", "optim.lr"), "optim.lr", names=r"optim\.lr")


def _resume_junk(dirs: CaseDirs) -> Setup:
    run = dirs.inp / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(b"\x00\xff junk \x01")
    return Setup(
        ["train", "mae", "--resume", str(run), "--no-progress"],
        run,
        names=r"run/config\.yaml|in/run",
    )


_YAML = r"yaml|config|not a mapping|mapping|parse|invalid"
_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, "
        f"*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, "
        f"*{chr(97 + k)}]"
        for k in range(8)
    ]
)

_STATE = {
    "format": "facexpr-checkpoint",
    "version": 1,
    "world_size": 1,
    "step": 1,
    "epoch": 0,
    "batch": 0,
    "samples": 1,
}
_STEP = "step-00000001"


def _st(header: object, data: bytes = b"", raw_header: bytes | None = None) -> bytes:
    """Returns safetensors bytes: u64 header length, the JSON header, then ``data``."""
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _f32(shape: list[int], offsets: list[int]) -> dict:
    return {"dtype": "F32", "shape": shape, "data_offsets": offsets}


# The hostile .safetensors files, by name: (bytes, what the message must say).
_ST_BAD = r"safetensors|corrupt|header|invalid|not readable"
_SAFETENSORS: dict[str, tuple[bytes, str]] = {
    "zero-bytes": (b"", r"empty|0 bytes|" + _ST_BAD),
    "header-cut": (b"\x10\x00\x00", _ST_BAD + r"|truncated|too short"),
    "header-len-huge": (struct.pack("<Q", 1 << 60) + b"{}", _ST_BAD + r"|larger|length"),
    "header-len-past-end": (struct.pack("<Q", 4096) + b"{}", _ST_BAD + r"|larger|length"),
    "header-not-json": (_st(None, raw_header=b"not json at all!"), _ST_BAD + r"|json"),
    "header-list": (_st([1, 2, 3]), _ST_BAD + r"|object"),
    "header-nested": (_st(None, raw_header=b"[" * 100_000 + b"]" * 100_000), _ST_BAD + r"|nest"),
    "dtype-unknown": (
        _st({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
        _ST_BAD + r"|dtype",
    ),
    "shape-mismatch": (_st({"w": _f32([4], [0, 8])}, b"\0" * 8), _ST_BAD + r"|shape|offset"),
    "offsets-past-end": (_st({"w": _f32([2], [1000, 1008])}, b"\0" * 8), _ST_BAD + r"|offset"),
    "offsets-overlap": (
        _st({"a": _f32([2], [0, 8]), "b": _f32([2], [4, 12])}, b"\0" * 12),
        _ST_BAD + r"|offset|overlap",
    ),
    "tensor-1e12": (
        _st({"w": _f32([1_000_000, 1_000_000], [0, 4 * 10**12])}, b"\0" * 64),
        _ST_BAD + r"|offset|large",
    ),
    "pickle-renamed": (
        pickle.dumps({"w": [1.0, 2.0]}, protocol=4) + b"\0" * 64,
        _ST_BAD + r"|pickle",
    ),
    "other-model": (
        _st({"foo.weight": _f32([2], [0, 8])}, b"\0" * 8),
        r"missing|unexpected|do not fit|not in the",
    ),
}


def _run_folder(dirs: CaseDirs) -> tuple:
    """Writes a run folder with a good ``state.json``; returns (run, step folder)."""
    run = dirs.out / "run"  # resuming writes into the run folder (its config, its lock)
    step = run / "checkpoints" / _STEP
    step.mkdir(parents=True)
    (run / "config.yaml").write_text("recipe: mae\nrun:\n  steps: 2\n  device: cpu\n")
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": _STEP}))
    (step / "state.json").write_text(json.dumps(_STATE))
    return run, step


def _resume(run) -> list[str]:
    return ["train", "mae", "--resume", str(run), "--no-progress"]


def ckpt_case(what: str, data: bytes, problem: str, **kw) -> Case:
    """``--resume`` a run whose ``model.safetensors`` holds ``data``."""

    def build(dirs: CaseDirs) -> Setup:
        run, step = _run_folder(dirs)
        (step / "model.safetensors").write_bytes(data)
        return Setup(_resume(run), step / "model.safetensors")

    return Case(f"train-ckpt-{what}", "train", build, problem, skip=_SKIP, **kw)


def init_case(what: str, data: bytes, problem: str, **kw) -> Case:
    """``train expression --set model.init=RUN`` with ``RUN/encoder.safetensors`` = ``data``."""

    def build(dirs: CaseDirs) -> Setup:
        run = dirs.inp / "stage1"
        run.mkdir()
        (run / "encoder.safetensors").write_bytes(data)
        argv = ["train", "expression", "--out", str(dirs.out / "run"), "--no-progress"]
        return Setup([*argv, "--set", f"model.init={run}"], run / "encoder.safetensors")

    return Case(f"train-init-{what}", "train", build, problem, skip=_SKIP, **kw)


def _json_case(name: str, data: bytes, problem: str, **kw) -> Case:
    def build(dirs: CaseDirs) -> Setup:
        run, step = _run_folder(dirs)
        (step / name).write_bytes(data)
        return Setup(_resume(run), step / name)

    stem = name.split(".")[0]
    return kw.pop("case", None) or Case(
        f"train-ckpt-{stem}-{kw.pop('what')}", "train", build, problem, skip=_SKIP, **kw
    )


def _latest_outside(dirs: CaseDirs) -> Setup:
    run, _ = _run_folder(dirs)
    latest = run / "checkpoints" / "latest.json"
    latest.write_text(json.dumps({"checkpoint": "../../../canary"}))
    return Setup(_resume(run), latest)


def _latest_absolute(dirs: CaseDirs) -> Setup:
    run, _ = _run_folder(dirs)
    latest = run / "checkpoints" / "latest.json"
    latest.write_text(json.dumps({"checkpoint": str(dirs.canary)}))
    return Setup(_resume(run), latest)


def _model_link_out(dirs: CaseDirs) -> Setup:
    run, step = _run_folder(dirs)
    os.symlink(dirs.canary_file, step / "model.safetensors")
    return Setup(_resume(run), step / "model.safetensors")


def _step_link_out(dirs: CaseDirs) -> Setup:
    run, step = _run_folder(dirs)
    (step / "state.json").unlink()
    step.rmdir()
    (dirs.canary / "state.json").write_text(json.dumps(_STATE))
    os.symlink(dirs.canary, step)
    return Setup(_resume(run), step, names=_STEP)


def _state_fifo(dirs: CaseDirs) -> Setup:
    run, step = _run_folder(dirs)
    (step / "state.json").unlink()
    os.mkfifo(step / "state.json")
    return Setup(_resume(run), step / "state.json")


def _init_link_out(dirs: CaseDirs) -> Setup:
    run = dirs.inp / "stage1"
    run.mkdir()
    os.symlink(dirs.canary_file, run / "encoder.safetensors")
    argv = ["train", "expression", "--out", str(dirs.out / "run"), "--no-progress"]
    return Setup([*argv, "--set", f"model.init={run}"], run / "encoder.safetensors")


_OUTSIDE = r"outside|link|not inside|escapes|refused"

CKPT_CASES: list[Case] = [
    *(ckpt_case(k, data, problem) for k, (data, problem) in _SAFETENSORS.items()),
    *(
        init_case(k, _SAFETENSORS[k][0], _SAFETENSORS[k][1])
        for k in ("header-len-huge", "header-nested", "tensor-1e12", "pickle-renamed")
    ),
    _json_case("state.json", b"[" * 100_000 + b"]" * 100_000, r"json|nest|corrupt", what="nested"),
    _json_case(
        "state.json", b" " * (70 << 20) + b"{}", r"larger|too (big|large)|bytes", what="huge"
    ),
    _json_case(
        "state.json", b'{"step": ' + b"9" * 5000 + b"}", r"json|digits|corrupt", what="5000-digits"
    ),
    Case("train-ckpt-latest-outside", "train", _latest_outside, _OUTSIDE, skip=_SKIP),
    Case("train-ckpt-latest-absolute", "train", _latest_absolute, _OUTSIDE, skip=_SKIP),
    Case("train-ckpt-model-link-out", "train", _model_link_out, _OUTSIDE, skip=_SKIP),
    Case("train-ckpt-step-link-out", "train", _step_link_out, _OUTSIDE, skip=_SKIP),
    Case(
        "train-ckpt-state-fifo",
        "train",
        _state_fifo,
        r"fifo|not a regular file",
        timeout_s=15,
        skip=_SKIP,
    ),
    Case("train-init-link-out", "train", _init_link_out, _OUTSIDE, skip=_SKIP),
]

CASES: list[Case] = [
    config_case("config-section-not-mapping", "optim: 5\n", r"optim|mapping|section"),
    config_case("config-binary", bytes(range(256)) * 4, _YAML + r"|utf"),
    config_case("config-list", "- optim\n- run\n", _YAML),
    config_case("config-nested-100k", "[" * 100_000 + "]" * 100_000, _YAML + r"|deep|nest"),
    config_case(
        "config-alias-bomb",
        _BOMB,
        _YAML + r"|alias|unknown key",
        note="9^9 list items by aliases: 'billion laughs'",
    ),
    config_case("config-unknown-key", "optim:\n  lrr: 0.1\n", r"unknown key|lrr"),
    config_case("config-wrong-type", "optim:\n  lr: fast\n", r"optim\.lr|type|float"),
    config_case("config-nan-lr", "optim:\n  lr: .nan\n", r"optim\.lr|nan|finite|> 0"),
    config_case(
        "config-python-tag",
        "optim: !!python/object/apply:os.system ['true']\n",
        _YAML + r"|tag|constructor",
    ),
    Case("train-set-without-value", "train", _bad_set, r"KEY=VALUE|=|set", skip=_SKIP),
    Case("train-resume-junk-config", "train", _resume_junk, _YAML + r"|utf|corrupt", skip=_SKIP),
    *CKPT_CASES,
]

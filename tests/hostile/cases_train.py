"""Hostile configs for ``facexpr train``, and the place for hostile checkpoints.

``facexpr train RECIPE --config FILE [--set KEY=VALUE] [--out RUN_DIR] [--resume RUN_DIR]`` landed
on another branch (h-train) while this corpus was written; these cases use only that command line
and YAML, and are skipped where the tree under test has no ``facexpr/cli/train.py``. They were
run against main's tree at the time (``FACEXPR_HOSTILE_SRC=<export of main>/src``).

THE LEAD FILLS IN the checkpoint cases (``.safetensors`` under a run folder for ``--resume``), once
the checkpoint layout is settled: zero bytes, a header length larger than the file, a header that
is not JSON, dtype/shape disagreeing with the byte ranges, overlapping or out-of-file
``data_offsets``, a tensor claiming 10^12 elements, a pickle renamed ``.safetensors`` (never
unpickled), a checkpoint of another model (missing/unexpected keys named). Each is a ``Case``
whose ``build`` writes the run folder into ``dirs.inp`` and returns a :class:`corpus.Setup`.
"""

from __future__ import annotations

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
]

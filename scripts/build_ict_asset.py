"""Builds the compact ICT FaceKit asset shipped in ``src/facexpr/avatars/assets/``.

Reads the lossless ``ict_facekit.npz`` of ``../shared/assets/ict-facekit`` (or ``--source``) and
writes ``ict_facekit_light.npz`` with the whole head topology (face, back of head and neck, mouth,
teeth, eyes, lashes: the renderer needs the back of the head for turned poses and the mouth
interior for open mouths), the 53 expression shapes of ``ICT_CHANNELS`` as float16 deltas, the
first ``--identity-modes`` identity modes as float16, per-corner UVs as float16, materials and the
68 landmark vertex ids; the MIT licence goes beside it. Prints the size and the float16 error.

Usage: python scripts/build_ict_asset.py [--source DIR] [--identity-modes 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from facexpr.core.arkit import ICT_CHANNELS

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "src" / "facexpr" / "avatars" / "assets"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "assets" / "ict-facekit")
    p.add_argument("--identity-modes", type=int, default=50)
    args = p.parse_args()
    src = np.load(args.source / "ict_facekit.npz")
    names = [str(n) for n in src["expression_names"]]
    order = [names.index(n) for n in ICT_CHANNELS]
    expr = src["expression_deltas"][order]
    ident = src["identity_deltas"][: args.identity_modes]
    out = {
        "format_version": np.array(1, np.int32),
        "neutral": src["neutral"].astype(np.float32),
        "quads": src["quads"].astype(np.int32),
        "quad_material": src["quad_material"].astype(np.int16),
        "material_names": np.array([str(n) for n in src["material_names"]]),
        "uv": src["uv"].astype(np.float16),
        "quad_uv": src["quad_uv"].astype(np.int32),
        "expression_names": np.array(ICT_CHANNELS),
        "expression_deltas": expr.astype(np.float16),
        "identity_names": np.array([str(n) for n in src["identity_names"][: args.identity_modes]]),
        "identity_deltas": ident.astype(np.float16),
        "landmarks68": src["landmarks68"].astype(np.int32),
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / "ict_facekit_light.npz"
    np.savez_compressed(path, **out)
    shutil.copyfile(args.source / "LICENSE", OUT_DIR / "LICENSE-ict-facekit.txt")
    err_e = float(np.abs(out["expression_deltas"].astype(np.float32) - expr).max())
    err_i = float(np.abs(out["identity_deltas"].astype(np.float32) - ident).max())
    err_uv = float(np.abs(out["uv"].astype(np.float32) - src["uv"]).max())
    report = {
        "path": str(path.relative_to(ROOT)),
        "bytes": path.stat().st_size,
        "expression_float16_max_abs_error_cm": err_e,
        "identity_float16_max_abs_error_cm": err_i,
        "uv_float16_max_abs_error": err_uv,
        "identity_modes": args.identity_modes,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

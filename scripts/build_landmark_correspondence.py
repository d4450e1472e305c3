"""Builds the correspondence between the front-end's landmarks and ICT FaceKit vertices.

The MediaPipe mesh points and the 68 iBUG points our front-end reports are not placed exactly
where ICT FaceKit's own ``landmarks68`` vertices are (nostrils, lip contours and the jaw line are
defined differently), and a fitter that assumes they are explains the offsets with expressions
(e.g. a constant noseSneer). So the correspondence is measured: ICT heads of sampled identities,
mild expressions and poses are rendered with facexpr's renderer, the front-end runs on the renders,
and each detected point is assigned the face-area vertex whose projections lie closest to it over
all renders (least squares, in units of the inter-ocular distance).

Writes ``src/facexpr/avatars/resources/ict_correspondence.json``:
``{"ibug68": [68 vertex ids], "mesh468": [468 vertex ids], "residual_ibug68": [...],
"residual_mesh468": [...], ...}`` where residuals are the RMS distance between detected points
and the chosen vertex's projection over the renders / inter-ocular distance.

Usage:  python scripts/build_landmark_correspondence.py [--renders 48] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facexpr.avatars.avatar import get_avatar
from facexpr.avatars.ict import load_ict
from facexpr.avatars.render import Renderer, RenderOptions
from facexpr.core.types import Frame
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions

OUT = Path(__file__).resolve().parents[1] / "src/facexpr/avatars/resources/ict_correspondence.json"
FACE_AREA = np.arange(0, 9409)  # ICT "Face" part: skin of the face, lips, eyelids, nose


def _iod(lm68: np.ndarray) -> float:
    return float(np.linalg.norm(lm68[42:48].mean(0) - lm68[36:42].mean(0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--renders", type=int, default=48)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rig = load_ict()
    base_avatar = get_avatar("ict_000")
    fe = FaceFrontEnd(FaceFrontEndOptions(align_size=0, pose=False))
    mild = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R",
            "eyeBlink_L", "eyeBlink_R", "mouthPucker", "browDown_L", "browDown_R"]  # fmt: skip
    proj, pts68, pts468, iods = [], [], [], []
    t0 = time.perf_counter()
    with Renderer(RenderOptions(width=args.size, height=args.size)) as r:
        for i in range(args.renders):
            ident = rng.normal(size=rig.n_identity).astype(np.float32) * 0.8
            avatar = get_avatar(base_avatar.name, identity=ident)
            w = np.zeros(rig.n_channels, np.float32)
            if i % 2:  # half neutral, half a mild expression
                for name in rng.choice(mild, 2, replace=False):
                    w[rig.channel_index(name)] = rng.uniform(0.1, 0.4)
            pose = (rng.uniform(-8, 8), rng.uniform(-18, 18), rng.uniform(-8, 8))
            res = r.render(avatar, w, pose=pose, background=(0.45, 0.5, 0.55))
            out = fe.process(Frame(image=res.image, source=f"render{i}"))
            if len(out.faces) != 1:
                print(f"render {i}: {len(out.faces)} faces found, skipped")
                continue
            face = out.faces[0]
            proj.append(res.project(FACE_AREA))
            pts68.append(face.landmarks)
            pts468.append(face.mesh[:, :2])
            iods.append(_iod(face.landmarks))
    proj_a = np.stack(proj)  # (R, V, 2)
    scale = np.asarray(iods)[:, None, None]
    result: dict[str, object] = {
        "method": "nearest ICT face-area vertex to the front-end's points over renders",
        "renders": len(proj),
        "render_size": args.size,
        "seed": args.seed,
    }
    for name, pts in (("ibug68", pts68), ("mesh468", pts468)):
        p = np.stack(pts)  # (R, K, 2)
        ids, rms = [], []
        for k in range(p.shape[1]):
            d2 = (((proj_a - p[:, k : k + 1]) / scale) ** 2).sum(-1).mean(0)  # (V,)
            v = int(np.argmin(d2))
            ids.append(int(FACE_AREA[v]))
            rms.append(round(float(np.sqrt(d2[v])), 4))
        result[name] = ids
        result[f"residual_{name}"] = rms
        print(f"{name}: median residual {np.median(rms):.3f} IOD, max {max(rms):.3f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result) + "\n")
    print(f"wrote {OUT} from {len(proj)} renders in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

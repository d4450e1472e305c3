"""Records the golden embedding of the shipped expression weights, for the tests.

Usage (after ``scripts/ship_expression_weights.py RUN_DIR``)::

    python scripts/record_expression_golden.py [--tag mae_triplet]

Writes ``src/facexpr/nn/weights/expression_<tag>.golden.npz``: ``images`` (N, 3, S, S) uint8, a
fixed input (seeded noise and smooth gradients, no face data, so it may be committed),
``embedding`` (N, dim) float32 from ``create_model("expression.<tag>", pretrained=True)`` on it
(normalised with the card's mean/std), and ``sha256`` of the weights it was recorded with.
``tests/nn/test_shipped_expression.py`` checks the shipped weights still give it.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch


def golden_images(size: int) -> np.ndarray:
    """Returns (4, 3, size, size) uint8: two seeded noise images and two smooth gradients."""
    g = np.random.default_rng(20261201)
    noise = g.integers(0, 256, (2, 3, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    grad = np.stack(
        [
            np.stack([xx, yy, 1 - xx]),
            np.stack([0.5 + 0.5 * np.sin(6 * xx), yy * xx, 0.5 + 0.5 * np.cos(5 * yy)]),
        ]
    )
    return np.concatenate([noise, (grad * 255 + 0.5).astype(np.uint8)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default="mae_triplet")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from facexpr.io._files import write_bytes_atomic
    from facexpr.nn import create_model, weights_card

    name = f"expression.{args.tag}"
    card = weights_card(name)
    model = create_model(name, pretrained=True)
    images = golden_images(card.input_size[0])
    mean = torch.tensor(card.mean).view(1, -1, 1, 1)
    std = torch.tensor(card.std).view(1, -1, 1, 1)
    with torch.no_grad():
        emb = model((torch.from_numpy(images).float() / 255 - mean) / std).numpy()
    buf = io.BytesIO()
    np.savez(buf, images=images, embedding=emb.astype(np.float32), sha256=np.array(card.sha256))
    out = card.path().with_name(f"expression_{args.tag}.golden.npz")
    write_bytes_atomic(out, buf.getvalue())
    print(f"wrote {out}: {emb.shape} embedding of weights {card.sha256[:12]}")


if __name__ == "__main__":
    main()

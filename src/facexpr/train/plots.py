"""The loss-curve PNG of a run, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from facexpr.io._files import write_bytes_atomic

__all__ = ["draw_curves", "write_image_grid"]

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
_SKIP = {"step", "epoch", "lr", "samples_per_s", "time_s"}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def draw_curves(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    keys: Sequence[str] | None = None,
    size: tuple[int, int] = (800, 480),
) -> Path:
    """Draws metric curves against the optimiser step and writes them as a PNG.

    Args:
        rows: ``metrics.jsonl`` records (each with ``step`` and some metrics).
        path: the PNG to write (atomically).
        keys: metrics to draw (default: every loss-like key: those with 'loss' in the name).
        size: (width, height) px.

    Returns:
        ``path``.
    """
    if keys is None:
        seen: list[str] = []
        for r in rows:
            seen += [k for k in r if k not in _SKIP and "loss" in k and k not in seen]
        keys = seen
    series = {
        k: [(float(r["step"]), float(r[k])) for r in rows if k in r and math.isfinite(r[k])]
        for k in keys
    }
    series = {k: v for k, v in series.items() if v}
    w, h = size
    left, right, top, bottom = 70, 20, 20, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    pts = [p for v in series.values() for p in v]
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        x1 = x1 if x1 > x0 else x0 + 1
        pad = (y1 - y0) * 0.05 or abs(y1) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad

        def xy(x: float, y: float) -> tuple[float, float]:
            return (
                left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom),
            )

        for t in _ticks(y0, y1):
            _, py = xy(x0, t)
            d.line([(left, py), (w - right, py)], fill=(225, 225, 225))
            d.text((5, py - 6), f"{t:.4g}", fill="black", font=font)
        for t in _ticks(x0, x1):
            px, _ = xy(t, y0)
            d.line([(px, top), (px, h - bottom)], fill=(225, 225, 225))
            d.text((px - 10, h - bottom + 5), f"{t:.0f}", fill="black", font=font)
        for i, (k, v) in enumerate(series.items()):
            colour = _COLOURS[i % len(_COLOURS)]
            line = [xy(x, y) for x, y in v]
            if len(line) > 1:
                d.line(line, fill=colour, width=2)
            else:
                px, py = line[0]
                d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
            d.text((w - right - 200, top + 5 + 14 * i), k, fill=colour, font=font)
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    d.text((w // 2 - 15, h - 20), "step", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def write_image_grid(rows: Sequence[Any], path: str | Path, pad: int = 2) -> Path:
    """Writes rows of images as one PNG grid (atomically) and returns ``path``.

    Args:
        rows: each a (N, 3, H, W) float tensor or array in [0, 1]; all of one shape.
        path: the PNG file.
        pad: white px between tiles.
    """
    import numpy as np

    arrs = [
        np.asarray(r.detach().cpu() if hasattr(r, "detach") else r, dtype=np.float32) for r in rows
    ]
    n, _, h, w = arrs[0].shape
    grid = np.full((len(arrs) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for i, a in enumerate(arrs):
        tiles = (np.clip(a, 0, 1).transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
        for j in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = tiles[j]
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)

"""Drawing results onto frames: boxes, face ids, 68 landmarks, the mesh and the head-pose axes,
and, when the learned heads ran, the top emotion, valence-arousal and the strongest AUs."""

from __future__ import annotations

import cv2
import numpy as np

from facexpr.core.affect import EMOTIONS, HEAD_AUS
from facexpr.core.types import FaceResult, FrameResult

# Distinct colours per face id (RGB), cycled.
_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
    ],
    np.uint8,
)


def face_colour(face_id: int) -> tuple[int, int, int]:
    """Returns the RGB colour used for a face id."""
    c = _PALETTE[face_id % len(_PALETTE)]
    return int(c[0]), int(c[1]), int(c[2])


def affect_lines(face: FaceResult, top_aus: int = 3) -> list[str]:
    """Returns the text lines shown under a face for the learned heads (empty without them):
    the top emotion with its probability, valence and arousal, the strongest AUs (intensity >= 1,
    FACS A, at most ``top_aus``)."""
    lines = []
    if face.emotions is not None:
        k = int(np.argmax(face.emotions))
        lines.append(f"{EMOTIONS[k]} {face.emotions[k]:.2f}")
    if face.valence_arousal is not None:
        v, a = (float(x) for x in face.valence_arousal)
        lines.append(f"V {v:+.2f}  A {a:+.2f}")
    if face.au_intensity is not None:
        order = np.argsort(-face.au_intensity)[:top_aus]
        aus = [f"{HEAD_AUS[i]} {face.au_intensity[i]:.1f}" for i in order
               if face.au_intensity[i] >= 1.0]  # fmt: skip
        if aus:
            lines.append("  ".join(aus))
    return lines


def draw_frame(image: np.ndarray, result: FrameResult, *, mesh: bool = False) -> np.ndarray:
    """Returns a copy of ``image`` with every face of ``result`` drawn on it.

    Args:
        image: (H, W, 3) uint8 RGB, the frame the result was computed on.
        result: faces to draw.
        mesh: also draw the 468 mesh points (small, faint).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = np.ascontiguousarray(image.copy())
    scale = max(1.0, max(out.shape[:2]) / 640.0)
    thick = max(1, round(1.5 * scale))
    radius = max(1, round(1.2 * scale))
    for face in result.faces:
        col = face_colour(face.face_id)
        x0, y0, x1, y1 = (round(float(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), col, thick, cv2.LINE_AA)
        label = f"id {face.face_id}  {face.score:.2f}"
        if face.pose is not None:
            label += f"  y{face.pose.yaw:+.0f} p{face.pose.pitch:+.0f} r{face.pose.roll:+.0f}"
        fs = 0.45 * scale
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, thick)
        ty = max(th + 4, y0 - 4)
        tx = max(0, min(x0, out.shape[1] - tw - 4))  # keep the label inside the frame
        cv2.rectangle(out, (tx, ty - th - 4), (tx + tw + 4, ty + 2), col, -1)
        cv2.putText(
            out,
            label,
            (tx + 2, ty - 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            fs,
            (0, 0, 0),
            thick,
            cv2.LINE_AA,
        )
        lines = affect_lines(face)
        line_h = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, fs, thick)[0][1] + 6
        # Under the box, or inside its bottom edge when the frame ends first.
        ly = y1 + 4 if y1 + 4 + line_h * len(lines) <= out.shape[0] else y1 - line_h * len(lines)
        for line in lines:
            (lw, lh), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, fs, thick)
            ly += lh + 6
            lx = max(0, min(x0, out.shape[1] - lw - 4))
            cv2.rectangle(out, (lx, ly - lh - 4), (lx + lw + 4, ly + 2), col, -1)
            cv2.putText(
                out, line, (lx + 2, ly - 1), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), thick,
                cv2.LINE_AA,
            )  # fmt: skip
        if mesh and face.mesh is not None:
            for x, y in face.mesh[:, :2]:
                cv2.circle(out, (round(float(x)), round(float(y))), 0, (200, 200, 200), -1)
        for x, y in face.landmarks:
            cv2.circle(out, (round(float(x)), round(float(y))), radius, col, -1, cv2.LINE_AA)
    return out

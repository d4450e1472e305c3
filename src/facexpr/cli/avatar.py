"""``facexpr avatar capture INPUT -o person.glb``: a textured avatar of the person in a photo or
video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facexpr.cli._args import positive_int as _positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``avatar`` command (and its ``capture`` subcommand); returns its parser."""
    av = subparsers.add_parser("avatar", help="make avatars (capture a person from a photo)")
    asub = av.add_subparsers(dest="avatar_command", required=True)
    c = asub.add_parser(
        "capture",
        help="capture the person of a photo or video as a textured ICT FaceKit avatar (glTF)",
        description="Fit the ICT FaceKit model to the face of a photo (or to near-neutral, "
        "frontal frames of a video), unwrap its pixels into the model's texture, fill what the "
        "photo does not show, and write a glTF binary avatar: the person's neutral face shape, "
        "the 53 expression morph targets and the texture. 'facexpr animate --avatar person.glb' "
        "drives it; Blender and three.js load it.",
    )
    c.add_argument("input", metavar="PHOTO_OR_VIDEO")
    c.add_argument("-o", "--out", required=True, metavar="GLB", help="output .glb (or .gltf)")
    c.add_argument(
        "--texture-size",
        type=_positive_int,
        default=1024,
        metavar="S",
        help="texture height in texels; the texture is S x 2S (default 1024)",
    )
    c.add_argument(
        "--frames", type=_positive_int, default=5, metavar="K", help="video frames merged"
    )
    c.add_argument(
        "--single-face",
        action="store_true",
        help="refuse inputs with several faces (default: capture the largest and say so)",
    )
    c.add_argument("--preview", metavar="PNG", help="also write a contact sheet of expressions")
    return av


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr avatar capture``; returns 0 (errors propagate to ``main``: exit 2)."""
    from facexpr.avatars.gltf import save_avatar_gltf
    from facexpr.avatars.texture import TextureOptions
    from facexpr.core.errors import ConfigError
    from facexpr.synth.capture import CaptureOptions, capture

    out = Path(args.out)
    if out.suffix.lower() not in (".glb", ".gltf"):
        raise ConfigError(f"{out}: the avatar is written as glTF: use a .glb or .gltf name")
    if args.preview and Path(args.preview).suffix.lower() != ".png":
        raise ConfigError(f"{args.preview}: --preview writes a .png")
    options = CaptureOptions(
        texture=TextureOptions(size=args.texture_size),
        frames=args.frames,
        sample_frames=max(48, args.frames),
        several="refuse" if args.single_face else "largest",
        name=out.stem or "captured",
    )
    result = capture(args.input, options)
    save_avatar_gltf(result.avatar, out)
    if args.preview:
        from facexpr.io.images import write_image

        write_image(args.preview, preview_sheet(result.avatar))
    for note in result.notes:
        print(f"facexpr: {args.input}: {note}", file=sys.stderr)
    s = result.avatar.texture.shape
    print(out)
    print(
        f"facexpr: {len(result.frames)} frame(s) merged, {100 * result.seen_fraction:.0f}% of the "
        f"skin seen, texture {s[1]}x{s[0]}",
        file=sys.stderr,
    )
    return 0


def preview_sheet(avatar, size: int = 256):
    """Returns an (size, 5 * size, 3) uint8 strip of the avatar: neutral, jaw open, smile, brows
    up, turned 35 degrees."""
    import numpy as np

    from facexpr.avatars.render import Renderer, RenderOptions

    rig = avatar.rig
    exprs = [
        {},
        {"jawOpen": 0.6},
        {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0},
        {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "eyeWide_L": 0.6, "eyeWide_R": 0.6},
    ]
    with Renderer(RenderOptions(size, size)) as r:
        tiles = [r.render(avatar, rig.weights(**e)).image for e in exprs]
        tiles.append(r.render(avatar, pose=(0.0, 35.0, 0.0)).image)
    return np.concatenate(tiles, axis=1)

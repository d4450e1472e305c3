"""``facexpr animate``: drive avatars with a video, an analysis table or a webcam."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facexpr.core.errors import ConfigError

_LEGACY = ("livelink", "json", "gltf", "preview")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``animate`` command to the ``facexpr`` parser; returns its parser."""
    an = subparsers.add_parser(
        "animate",
        help="drive avatars with a video, an analysed table or a webcam",
        description="Drive one or more avatars with the face of a video (or a table written by "
        "'facexpr analyze --blendshapes fit', or a webcam with --live). With -o OUT_DIR, each "
        "avatar gets OUT_DIR/NAME/ with livelink.csv (Live Link Face CSV), animation.json, "
        "animation.glb (glTF with a morph-weight animation) and preview.mp4 (the avatar "
        "rendered beside the actor). --method animator uses the learned multi-avatar animator, "
        "--method fit the geometric retarget of fitted ARKit weights; the default is the "
        "animator when its weights are shipped or given, else fit.",
    )
    an.add_argument("input", metavar="VIDEO_OR_TABLE", help="a video, a table, or webcam:N")
    an.add_argument(
        "--avatar",
        action="append",
        default=None,
        metavar="NAME_OR_GLB",
        help="avatar name (see facexpr.avatars.list_avatars) or a .glb/.gltf file with morph "
        "targets; repeat for several (default: ict)",
    )
    an.add_argument("-o", "--out", metavar="OUT_DIR", help="output folder, one subfolder an avatar")
    an.add_argument(
        "--method",
        choices=("auto", "animator", "fit"),
        default="auto",
        help="animator (learned), fit (geometric retarget), auto (animator when weights exist)",
    )
    an.add_argument(
        "--animator-weights", metavar="PATH", help="animator .safetensors (card beside)"
    )
    an.add_argument(
        "--encoder-weights",
        metavar="PATH",
        help="expression encoder .safetensors the animator reads (default: the shipped one)",
    )
    an.add_argument(
        "--smooth",
        action="store_true",
        help="One Euro filter over the weights (cutoff min-cutoff + beta * |speed|)",
    )
    an.add_argument("--smooth-min-cutoff", type=float, default=1.0, metavar="HZ")
    an.add_argument("--smooth-beta", type=float, default=5.0, metavar="B")
    an.add_argument("--face-id", type=int, default=None, help="face to follow (default: main)")
    an.add_argument("--no-preview", action="store_true", help="with -o: skip the preview videos")
    an.add_argument("--preview-size", type=int, default=256, metavar="PX")
    an.add_argument("--no-head-pose", action="store_true", help="keep the avatar's head still")
    an.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    an.add_argument(
        "--live",
        action="store_true",
        help="stream Live Link-style JSON over UDP (--udp) frame by frame (webcam:N or a video)",
    )
    an.add_argument(
        "--udp", default="127.0.0.1:11111", metavar="HOST:PORT", help="--live destination"
    )
    an.add_argument("--max-frames", type=int, default=None, help="--live: stop after N frames")
    g = an.add_argument_group("single-output files (one avatar; as before -o existed)")
    g.add_argument("--livelink", metavar="CSV", help="Live Link Face CSV output")
    g.add_argument("--json", metavar="JSON", help="JSON output (fps, names, frames)")
    g.add_argument("--gltf", metavar="GLB", help="glTF/GLB output with the animation")
    g.add_argument("--preview", metavar="MP4", help="preview video output")
    g.add_argument("--source", metavar="VIDEO", help="source video shown beside the preview")
    return an


def _options(args: argparse.Namespace):
    from facexpr.animate.animator import AnimateOptions

    return AnimateOptions(
        method=args.method,
        animator_weights=args.animator_weights,
        encoder_weights=args.encoder_weights,
        smooth=args.smooth,
        min_cutoff=args.smooth_min_cutoff,
        beta=args.smooth_beta,
        face_id=args.face_id,
        num_threads=args.threads,
    )


def _is_table(path: str) -> bool:
    return Path(path).suffix.lower() in (".csv", ".parquet", ".jsonl")


def run(args: argparse.Namespace) -> int:
    """Runs ``facexpr animate``; returns the exit code (errors propagate to ``main``: exit 2)."""
    legacy = [k for k in _LEGACY if getattr(args, k)]
    if args.live:
        return _run_live(args)
    if not legacy and not args.out:
        raise ConfigError(
            "nothing to write: give -o OUT_DIR, or --livelink, --json, --gltf or --preview"
        )
    if args.input.startswith("webcam:"):
        raise ConfigError(f"{args.input}: a webcam streams; animate it with --live")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if _is_table(args.input) and args.method == "animator":
        raise ConfigError(
            f"{args.input}: a table holds no face images, so the animator cannot read it; "
            "animate the video itself, or use --method fit"
        )
    if _is_table(args.input) and args.method == "auto":
        args.method = "fit"  # a table holds fitted weights, no face images
    if legacy and _is_table(args.input) and args.method != "animator" and not args.out:
        return _run_table_files(args)
    from facexpr.animate.animator import Animator

    options = _options(args)
    if options.note and not args.quiet:
        print(f"facexpr: note: {options.note}", file=sys.stderr)
    avatars = args.avatar or ["ict"]
    if legacy and len(avatars) > 1:
        raise ConfigError(
            "--livelink/--json/--gltf/--preview write one avatar; for several give -o OUT_DIR"
        )
    animator = Animator(avatars, options)  # every avatar is checked before anything is read
    anim = animator.retarget(args.input, progress=sys.stderr.isatty())
    video = None if _is_table(args.input) else args.input
    written = []
    if args.out:
        written += _write_dir(args, anim, Path(args.out), video)
    if legacy:
        written += _write_files(args, anim, anim.tracks[0], video or args.source)
    for p in written:
        print(p)
    print(
        f"facexpr: {len(anim.timestamps)} frames at {anim.fps:.2f} fps, face present in "
        f"{int(anim.present.sum())}; method {anim.method}; {len(anim.tracks)} avatar(s)",
        file=sys.stderr,
    )
    if anim.damaged:  # written from every decodable frame, and still a failed input
        print(f"facexpr: error: {anim.damaged}", file=sys.stderr)
        return 2
    return 0


def _weights_for_export(track) -> object:
    """Returns what the exporters take: ICT (T, 53) for ICT-rig avatars, else ARKit (T, 52)."""
    from facexpr.core.arkit import ICT_CHANNELS

    return track.weights if tuple(track.avatar.channel_names) == ICT_CHANNELS else track.arkit


def _write_files(args, anim, track, video) -> list[Path]:
    from facexpr.avatars import export

    pose = None if args.no_head_pose else anim.pose
    w = _weights_for_export(track)
    out = []
    if args.livelink:
        out.append(export.write_live_link_csv(args.livelink, track.arkit, fps=anim.fps,
                                              head_pose=pose))  # fmt: skip
    if args.json:
        out.append(export.write_json(args.json, track.arkit, fps=anim.fps))
    if args.gltf:
        out.append(export.write_gltf_animation(args.gltf, track.avatar.rig, w, fps=anim.fps,
                                               avatar=track.avatar))  # fmt: skip
    if args.preview:
        out.append(export.write_preview_video(args.preview, track.avatar, w, fps=anim.fps,
                                              pose=pose, source_video=video,
                                              size=args.preview_size,
                                              progress=sys.stderr.isatty()))  # fmt: skip
    return out


def _write_dir(args, anim, out_dir: Path, video) -> list[Path]:
    from facexpr.avatars import export
    from facexpr.core.arkit import ICT_CHANNELS

    pose = None if args.no_head_pose else anim.pose
    written = []
    for track in anim.tracks:
        d = out_dir / track.name
        w = _weights_for_export(track)
        ict = tuple(track.avatar.channel_names) == ICT_CHANNELS
        written.append(export.write_live_link_csv(d / "livelink.csv", track.arkit, fps=anim.fps,
                                                  head_pose=pose))  # fmt: skip
        written.append(export.write_json(d / "animation.json", w, fps=anim.fps,
                                         channels="ict" if ict else "arkit"))  # fmt: skip
        written.append(export.write_gltf_animation(d / "animation.glb", track.avatar.rig, w,
                                                   fps=anim.fps, avatar=track.avatar))  # fmt: skip
        if not args.no_preview:
            written.append(export.write_preview_video(
                d / "preview.mp4", track.avatar, w, fps=anim.fps, pose=pose,
                source_video=video or args.source, size=args.preview_size,
                progress=sys.stderr.isatty(),
            ))  # fmt: skip
    return written


def _run_table_files(args: argparse.Namespace) -> int:
    """The table path as it was: fitted ARKit weights of a table copied onto one avatar."""
    from facexpr.animate.retarget import track_from_file
    from facexpr.avatars import export
    from facexpr.avatars.spec import load_avatar

    avatars = args.avatar or ["ict"]
    if len(avatars) > 1:
        raise ConfigError(
            "--livelink/--json/--gltf/--preview write one avatar; for several give -o OUT_DIR"
        )
    track = track_from_file(args.input, face_id=args.face_id)
    # Load the avatar before writing anything, so a bad avatar file leaves no output behind.
    avatar = load_avatar(avatars[0]) if (args.gltf or args.preview) else None
    pose = None if args.no_head_pose else track.pose
    written = []
    if args.livelink:
        written.append(
            export.write_live_link_csv(args.livelink, track.weights, fps=track.fps, head_pose=pose)
        )
    if args.json:
        written.append(export.write_json(args.json, track.weights, fps=track.fps))
    if args.gltf:
        written.append(export.write_gltf_animation(args.gltf, avatar.rig, track.weights,
                                                   fps=track.fps, avatar=avatar))  # fmt: skip
    if args.preview:
        written.append(export.write_preview_video(
            args.preview, avatar, track.weights, fps=track.fps, pose=pose,
            source_video=args.source, size=args.preview_size, progress=sys.stderr.isatty(),
        ))  # fmt: skip
    for p in written:
        print(p)
    print(
        f"facexpr: {len(track.weights)} frames at {track.fps:.2f} fps, face present in "
        f"{int(track.present.sum())}",
        file=sys.stderr,
    )
    return 0


def _run_live(args: argparse.Namespace) -> int:
    from facexpr.animate.animator import Animator
    from facexpr.animate.live import parse_address, send_live

    if _is_table(args.input):
        raise ConfigError(f"{args.input}: --live streams a webcam or a video, not a table")
    if args.out or any(getattr(args, k) for k in _LEGACY):
        raise ConfigError("--live streams over UDP; it writes no files (drop -o and the outputs)")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    host, port = parse_address(args.udp)
    options = _options(args)
    if options.note and not args.quiet:
        print(f"facexpr: note: {options.note}", file=sys.stderr)
    animator = Animator(args.avatar or ["ict"], options)
    frames = animator.stream(args.input)
    if args.max_frames is not None:
        import itertools

        frames = itertools.islice(frames, args.max_frames)
    n = send_live(frames, host, port)
    print(f"facexpr: {n} frames streamed to udp://{host}:{port}", file=sys.stderr)
    return 0

"""Driving avatars from a video: ``Animator(avatars).retarget(source)``.

Two methods give every avatar's rig weights per frame:

- ``animator``: the learned multi-avatar animator (:mod:`facexpr.nn.animator`, FreeAvatar): each
  frame's aligned face goes through the frozen expression encoder, whose embedding and pooled
  features the animator maps to each avatar's rig;
- ``fit``: the geometric retarget of :mod:`facexpr.animate.retarget`: ARKit weights fitted to the
  landmarks by the ICT FaceKit model fitter (``analyze --blendshapes fit``), copied onto each
  avatar's ARKit-named channels. A table written by ``facexpr analyze --blendshapes fit`` is
  retargeted the same way (it holds no face images, so only ``fit`` applies to it).

``method="auto"`` picks ``animator`` when animator weights are shipped or given, else ``fit``
(``AnimateOptions.note`` then says why).

Smoothing (``smooth=True``): a One Euro filter (Casiez et al., CHI 2012; the front-end's
:class:`~facexpr.faces.tracking.OneEuroFilter`) over each avatar's weights in time, cutoff
``min_cutoff + beta * |speed|`` with the speed in weight units per second: slow changes are
smoothed (jitter), fast ones (a mouth opening) pass with little lag.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES
from facexpr.core.errors import ConfigError, InputError, ModelError
from facexpr.core.types import Frame, FrameResult

log = logging.getLogger(__name__)

__all__ = [
    "AnimateOptions",
    "Animation",
    "Animator",
    "AvatarTrack",
    "LiveFrame",
    "mouth_opening",
    "shipped_animator_weights",
]

Method = Literal["auto", "animator", "fit"]
_TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")


def shipped_animator_weights() -> Path | None:
    """Returns the shipped animator weights file, or None while none is shipped."""
    from facexpr.analyze.embedding import shipped_weights

    return shipped_weights("animator_*.safetensors")


@dataclass
class AnimateOptions:
    """How avatars are driven.

    Attributes:
        method: "animator", "fit" or "auto" (animator when its weights exist, else fit).
        animator_weights: an animator's ``.safetensors`` (its card ``.json`` beside it, as
            ``facexpr train animator`` writes them), or None for the shipped one.
        encoder_weights: the expression encoder the animator reads, or None for the shipped
            one (it must be the encoder the animator was trained on).
        smooth: One Euro smoothing of the weights over time.
        min_cutoff: One Euro cutoff at rest, Hz.
        beta: One Euro speed coefficient, per (weight unit / s).
        face_id: the face to follow (default: the one present in most frames).
        num_threads: CPU threads of the face models and the encoder.
        note: set when ``auto`` fell back to ``fit``: why.
    """

    method: Method = "auto"
    animator_weights: str | Path | None = None
    encoder_weights: str | Path | None = None
    smooth: bool = False
    min_cutoff: float = 1.0
    beta: float = 5.0
    face_id: int | None = None
    num_threads: int = 1
    note: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.method not in ("auto", "animator", "fit"):
            raise ConfigError(f"method must be 'auto', 'animator' or 'fit', not {self.method!r}")
        if not self.min_cutoff > 0 or not self.beta >= 0:
            raise ConfigError(
                f"smoothing needs min_cutoff > 0 and beta >= 0, got {self.min_cutoff}, {self.beta}"
            )
        if self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, not {self.num_threads}")
        for name in ("animator_weights", "encoder_weights"):
            v = getattr(self, name)
            if v is not None and not Path(v).is_file():
                raise InputError(v, f"{name.replace('_', ' ')} file not found")
        if self.method == "auto":
            if self.animator_weights is not None or shipped_animator_weights() is not None:
                self.method = "animator"
            else:
                self.method = "fit"
                self.note = (
                    "no animator weights are shipped yet: using the geometric fit retarget "
                    "(give trained weights with --animator-weights PATH)"
                )


@dataclass(frozen=True)
class AvatarTrack:
    """One avatar's animation.

    Attributes:
        avatar: the avatar object (rig, identity, look).
        name: its name (a glTF file's stem).
        weights: (T, C) float32 rig weights in [0, 1], the avatar's channel order.
        arkit: (T, 52) float32 the same as ARKit weights (channels without an ARKit name
            dropped), for Live Link Face.
    """

    avatar: Any
    name: str
    weights: np.ndarray
    arkit: np.ndarray


@dataclass(frozen=True)
class Animation:
    """Every avatar's animation of one source.

    Attributes:
        tracks: one per avatar, in the order asked.
        pose: (T, 3) float32 head pitch, yaw, roll in degrees (held where the face is lost).
        timestamps: (T,) float64 seconds.
        fps: frame rate.
        present: (T,) bool, the face was found.
        mouth_open: (T,) float32 inner-lip gap over the inter-ocular distance from the
            landmarks (NaN where the face is lost; NaN everywhere for a table).
        method: "animator" or "fit".
        source: the input.
        damaged: set when the video was read only in part (a truncated file): what was lost;
            the animation covers every decodable frame.
    """

    tracks: tuple[AvatarTrack, ...]
    pose: np.ndarray
    timestamps: np.ndarray
    fps: float
    present: np.ndarray
    mouth_open: np.ndarray
    method: str
    source: str
    damaged: str | None = None


@dataclass(frozen=True)
class LiveFrame:
    """One frame of a live stream: every avatar's weights now.

    Attributes:
        index: frame number.
        timestamp: seconds.
        present: the face was found (else the last weights are held).
        weights: avatar name -> (C,) float32 rig weights.
        arkit: avatar name -> (52,) float32 ARKit weights.
        pose: (3,) float32 pitch, yaw, roll in degrees.
    """

    index: int
    timestamp: float
    present: bool
    weights: dict[str, np.ndarray]
    arkit: dict[str, np.ndarray]
    pose: np.ndarray


def mouth_opening(landmarks: np.ndarray) -> float:
    """Returns the inner-lip gap over the inter-ocular distance of iBUG 68 landmarks (px)."""
    lm = np.asarray(landmarks, np.float64)
    gap = np.mean(np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1))
    iod = np.linalg.norm(lm[36] - lm[45])
    return float(gap / max(iod, 1e-6))


def _to_arkit(avatar: Any, weights: np.ndarray) -> np.ndarray:
    """Returns (T, 52) ARKit weights of (T, C) channel weights (mean of the channels per name)."""
    from facexpr.core.arkit import ICT_CHANNELS, ict_to_arkit_matrix

    if tuple(avatar.channel_names) == ICT_CHANNELS:
        return (weights @ ict_to_arkit_matrix().T).astype(np.float32)
    m = avatar.arkit_matrix()  # (C, 52)
    return (weights @ m / np.maximum(m.sum(0), 1.0)).astype(np.float32)


class _Smoother:
    def __init__(self, options: AnimateOptions) -> None:
        from facexpr.faces.tracking import OneEuroFilter

        self.on = options.smooth
        self.filters: dict[str, OneEuroFilter] = {}
        self.make = lambda: OneEuroFilter(options.min_cutoff, options.beta, 1.0)

    def __call__(self, name: str, w: np.ndarray, t: float) -> np.ndarray:
        if not self.on:
            return w
        f = self.filters.setdefault(name, self.make())
        return np.clip(f(w, t, 1.0), 0.0, 1.0).astype(np.float32)


class Animator:
    """Drives avatars from videos, tables or live frames.

    Args:
        avatars: registered avatar names or .glb/.gltf files with morph targets.
        options: method, weights, smoothing.

    Raises:
        ConfigError: no avatar, an unknown avatar name, or (animator) an avatar the animator
            was not trained for.
        InputError: an avatar file that is not a usable rig (named).
        ModelError: animator or encoder weights that do not load (named), or none available.
    """

    def __init__(self, avatars: Sequence[str], options: AnimateOptions | None = None) -> None:
        from facexpr.avatars.spec import avatar_name, load_avatar

        if isinstance(avatars, str):
            avatars = [avatars]
        if not avatars:
            raise ConfigError("give at least one avatar")
        self.options = options or AnimateOptions()
        self.names = [avatar_name(a) for a in avatars]
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"an avatar is named twice: {list(avatars)}")
        self.avatars = [load_avatar(a) for a in avatars]
        self.method = self.options.method
        self._net: Any = None
        self._encoder: Any = None
        if self.method == "animator":
            self._load_animator()

    def _load_animator(self) -> None:
        import torch

        from facexpr.nn import create_model
        from facexpr.nn.animator import load_animator, load_expression_encoder
        from facexpr.nn.registry import sha256_file

        o = self.options
        if o.animator_weights is not None:
            net, card = load_animator(o.animator_weights)
        elif shipped_animator_weights() is None:
            raise ModelError(
                "no animator weights are shipped yet: give a trained animator with "
                "--animator-weights PATH (AnimateOptions(animator_weights=...)), train one with  "
                "facexpr train animator --config configs/animator_tiny.yaml, or use --method fit"
            )
        else:
            from facexpr.nn.registry import weights_card

            net, card = create_model("animator", pretrained=True), weights_card("animator")
        for name, avatar in zip(self.names, self.avatars, strict=True):
            i = net.index(name)
            if net.n_shapes(i) != avatar.rig.n_channels:
                raise ConfigError(
                    f"avatar '{name}' has {avatar.rig.n_channels} channels, the animator drives "
                    f"{net.n_shapes(i)}: not the rig it was trained for"
                )
        enc, enc_card = load_expression_encoder(o.encoder_weights)
        want = card.config.get("encoder_sha256")
        got = sha256_file(o.encoder_weights) if o.encoder_weights is not None else None
        if want and got and want != got:
            log.warning(
                "the animator was trained on another expression encoder (sha256 %s..., given "
                "%s...): its output will be poor",
                want[:12],
                got[:12],
            )
        self._net, self._encoder, self._enc_card = net.eval(), enc, enc_card
        self._torch = torch

    # -- per-frame work ---------------------------------------------------------------------

    def _features(self, crops: list[np.ndarray]) -> np.ndarray:
        from facexpr.analyze.embedding import prepare_crops
        from facexpr.nn.animator import expression_features

        torch = self._torch
        c = self._enc_card
        x = prepare_crops(crops, int(c.input_size[0]), c.mean, c.std, grey=c.grey)
        before = torch.get_num_threads()
        torch.set_num_threads(self.options.num_threads)
        try:
            with torch.inference_mode():
                return expression_features(self._encoder, torch.from_numpy(x)).numpy()
        finally:
            torch.set_num_threads(before)

    def _rig(self, feats: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(feats)
            return [self._net(x, n).numpy().astype(np.float32) for n in self.names]

    def _analyzer(self, mode: Any = None) -> Any:
        from facexpr.analyze import Analyzer, AnalyzerOptions

        return Analyzer(
            AnalyzerOptions(
                mode=mode,
                blendshapes="fit" if self.method == "fit" else "none",
                embedding=None,
                heads=None,
                num_threads=self.options.num_threads,
                device="cpu",
            )
        )

    @staticmethod
    def _pick(result: FrameResult, face_id: int | None) -> Any:
        if not result.faces:
            return None
        if face_id is None:
            return result.faces[0]
        return next((f for f in result.faces if f.face_id == face_id), None)

    # -- sources ----------------------------------------------------------------------------

    def retarget(self, source: str | Path, *, progress: bool = False) -> Animation:
        """Returns every avatar's animation of a video (or, with ``fit``, an analysis table).

        Raises:
            InputError: the source cannot be read, or no face is found in it (named).
            ConfigError: a table with the ``animator`` method.
        """
        path = Path(source)
        if path.suffix.lower() in _TABLE_SUFFIXES:
            return self._from_table(path)
        return self._from_video(path, progress=progress)

    def _from_table(self, path: Path) -> Animation:
        from facexpr.animate.retarget import track_from_file

        if self.method != "fit":
            raise ConfigError(
                f"{path}: a table holds no face images, so the animator cannot read it; animate "
                "the video itself, or use --method fit"
            )
        tr = track_from_file(path, face_id=self.options.face_id)
        mouth = np.full(len(tr.weights), np.nan, np.float32)
        return self._finish(tr.weights, tr.pose, tr.timestamps, tr.fps, tr.present, mouth, path)

    def _from_video(self, path: Path, *, progress: bool) -> Animation:
        from facexpr.animate.retarget import FPS_RANGE
        from facexpr.core.errors import DamagedInputError
        from facexpr.io.video import VIDEO_EXTENSIONS

        rows: list[dict[int, Any]] = []
        times: list[float] = []
        damaged = None
        with self._analyzer() as analyzer:
            it: Iterable[tuple[Frame, FrameResult]] = analyzer.iter_results(path)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc="faces", unit="frame")
            try:
                for _, result in it:
                    times.append(result.timestamp)
                    rows.append({f.face_id: f for f in result.faces})
            except DamagedInputError as e:  # raised after the last good frame: keep those
                damaged = str(e)
                log.warning("%s", e)
            except InputError as e:
                if rows or path.suffix.lower() in VIDEO_EXTENSIONS or not path.is_file():
                    raise
                raise InputError(
                    path,
                    f"{e.problem}: animate reads a video or a table (.csv, .parquet, .jsonl), "
                    f"and '{path.suffix or path.name}' is neither format",
                ) from None
        if not rows:
            raise InputError(path, "no frames could be read")
        counts: dict[int, int] = {}
        for r in rows:
            for k in r:
                counts[k] = counts.get(k, 0) + 1
        if not counts:
            raise InputError(path, f"no face found in any of its {len(rows)} frames")
        fid = self.options.face_id
        if fid is None:
            fid = max(counts, key=lambda k: (counts[k], -k))
        elif fid not in counts:
            raise InputError(path, f"no face_id {fid} in the video (has {sorted(counts)})")
        at = [i for i, r in enumerate(rows) if fid in r]
        faces = [rows[i][fid] for i in at]
        t = len(rows)
        present = np.zeros(t, bool)
        present[at] = True
        pose = np.zeros((t, 3), np.float32)
        mouth = np.full(t, np.nan, np.float32)
        for i, f in zip(at, faces, strict=True):
            if f.pose is not None:
                pose[i] = (f.pose.pitch, f.pose.yaw, f.pose.roll)
            mouth[i] = mouth_opening(f.landmarks)
        if self.method == "fit":
            arkit = np.zeros((t, len(ARKIT_NAMES)), np.float32)
            for i, f in zip(at, faces, strict=True):
                if f.blendshapes is not None:
                    arkit[i] = f.blendshapes
            weights: Any = arkit
        else:
            feats = np.concatenate(
                [
                    self._features([f.aligned for f in faces[k : k + 64]])
                    for k in range(0, len(faces), 64)
                ]
            )
            rigs = self._rig(feats)
            weights = []
            for avatar, r in zip(self.avatars, rigs, strict=True):
                full = np.zeros((t, avatar.rig.n_channels), np.float32)
                full[at] = r
                weights.append(full)
        # Frames without the face hold the last seen values (neutral before the first).
        last = np.maximum.accumulate(np.where(present, np.arange(t), -1))
        seen = last >= 0
        idx = np.maximum(last, 0)
        pose = np.where(seen[:, None], pose[idx], 0.0).astype(np.float32)
        if isinstance(weights, list):
            weights = [np.where(seen[:, None], w[idx], 0.0).astype(np.float32) for w in weights]
        else:
            weights = np.where(seen[:, None], weights[idx], 0.0).astype(np.float32)
        ts = np.asarray(times, np.float64)
        step = np.diff(ts)
        fps = 1.0 / float(np.median(step)) if len(ts) > 1 and np.all(step > 0) else 30.0
        fps = float(np.clip(fps, *FPS_RANGE))
        return self._finish(weights, pose, ts, fps, present, mouth, path, damaged)

    def _finish(
        self,
        weights: np.ndarray | list[np.ndarray],
        pose: np.ndarray,
        ts: np.ndarray,
        fps: float,
        present: np.ndarray,
        mouth: np.ndarray,
        source: Path,
        damaged: str | None = None,
    ) -> Animation:
        from facexpr.avatars.export import weights_for_channels

        tracks = []
        for k, (name, avatar) in enumerate(zip(self.names, self.avatars, strict=True)):
            if isinstance(weights, list):
                w = weights[k]
            else:  # ARKit weights (fit): onto the avatar's channels by name
                w = weights_for_channels(avatar.channel_names, weights).astype(np.float32)
            if self.options.smooth:
                sm = _Smoother(self.options)
                w = np.stack([sm(name, w[i], float(ts[i])) for i in range(len(w))])
            tracks.append(AvatarTrack(avatar, name, w, _to_arkit(avatar, w)))
        return Animation(
            tracks=tuple(tracks),
            pose=pose,
            timestamps=ts,
            fps=fps,
            present=present,
            mouth_open=mouth,
            method=self.method,
            source=str(source),
            damaged=damaged,
        )

    def stream(self, frames: Iterable[Frame] | str | Path) -> Iterator[LiveFrame]:
        """Yields every avatar's weights frame by frame, as the frames come (a webcam).

        Args:
            frames: a video path or ``webcam:N``, or any iterable of :class:`Frame` (a
                camera reader, or a file standing in for one).
        """
        from facexpr.core.types import RunningMode
        from facexpr.io import MediaSource

        smoother = _Smoother(self.options)
        last = {
            n: np.zeros(a.rig.n_channels, np.float32)
            for n, a in zip(self.names, self.avatars, strict=True)
        }
        pose = np.zeros(3, np.float32)
        with self._analyzer(RunningMode.STREAM) as analyzer:
            if isinstance(frames, str | Path):
                src = str(frames)
                kind = "webcam" if src.startswith("webcam:") else "video"
                results = (r for _, r in analyzer.iter_results(MediaSource(path=src, kind=kind)))
            else:
                fe = analyzer._frontend(RunningMode.STREAM)
                fe.reset()
                results = (self._stage(analyzer, fe.process(f)) for f in frames)
            for result in results:
                face = self._pick(result, self.options.face_id)
                if face is not None:
                    if self.method == "fit":
                        arkit = face.blendshapes if face.blendshapes is not None else np.zeros(52)
                        from facexpr.avatars.export import weights_for_channels

                        now = [
                            weights_for_channels(a.channel_names, arkit[None])[0].astype(np.float32)
                            for a in self.avatars
                        ]
                    else:
                        now = [r[0] for r in self._rig(self._features([face.aligned]))]
                    for n, w in zip(self.names, now, strict=True):
                        last[n] = smoother(n, w, result.timestamp)
                    if face.pose is not None:
                        pose = np.array(
                            [face.pose.pitch, face.pose.yaw, face.pose.roll], np.float32
                        )
                yield LiveFrame(
                    index=result.index,
                    timestamp=result.timestamp,
                    present=face is not None,
                    weights=dict(last),
                    arkit={
                        n: _to_arkit(a, last[n][None])[0]
                        for n, a in zip(self.names, self.avatars, strict=True)
                    },
                    pose=pose.copy(),
                )

    @staticmethod
    def _stage(analyzer: Any, result: FrameResult) -> FrameResult:
        from facexpr.analyze.stages import run_stages

        return run_stages(analyzer.stages, [result], tracked=True)[0] if analyzer.stages else result

"""The Analyzer: media in, per-face measurements out.

``Analyzer(AnalyzerOptions(...)).analyze(source)`` returns an :class:`ExpressionTable`;
``iter_results`` streams ``(Frame, FrameResult)`` pairs so that videos of any length run in flat
memory. The CLI only calls these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.analyze.embedding import EmbeddingOptions
from facexpr.analyze.heads import HeadsOptions
from facexpr.analyze.stages import Stage, run_stages
from facexpr.analyze.table import ExpressionTable
from facexpr.core import columns as C
from facexpr.core.errors import ConfigError, DamagedInputError
from facexpr.core.types import Frame, FrameResult, RunningMode
from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
from facexpr.io import MediaSource, expand_inputs, iter_frames, probe_video

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda", "auto"]
DEFAULT_LANDMARKS = "mesh478"
"""The landmark model when none is asked for (docs/frontend.md: speed and agreement of both)."""
_CHUNK = 32  # video frames the stages process together (fitting, embedding batches)


@dataclass
class AnalyzerOptions:
    """What to analyse and how.

    Attributes:
        mode: force a running mode; None picks IMAGE for photos, VIDEO for videos, STREAM for
            webcams.
        detector: "full" (full-range BlazeFace: faces at any distance, best recall) or "short"
            (faces within ~2 m, faster).
        min_face_score: detector score threshold in (0, 1).
        max_faces: most faces per frame.
        every: keep every Nth video frame.
        fps: keep at most this many frames per second of video (by timestamp), or None.
        start: seconds into a video to start at, or None.
        end: seconds into a video to stop at, or None.
        smoothing: temporal smoothing of landmarks in video (One Euro filter).
        align_size: side of the aligned face crop in px (0: no crop).
        redetect_every: in video, run the detector every N frames to find new faces.
        num_threads: CPU threads for the face models.
        device: torch device for learned heads ("auto": CUDA if available); "auto" is resolved by
            the stages that run torch, so that without one torch is never imported.
        mesh: add the 468-point mesh columns (mesh_x_*, mesh_y_*, mesh_z_*) to the table.
        aligned: inputs are pre-cropped faces (one face filling each image, e.g. 48 px FER+
            crops): no detection; the mesh runs on the whole image.
        blendshapes: the 52 ARKit blendshape columns: "learned" from the analysis heads, "fit"
            by fitting the ICT FaceKit morphable model to the landmarks, "mediapipe" from
            MediaPipe's Blendshape V2 (needs Face Mesh V2), "none" for none; "fit" and
            "mediapipe" add FACS AU intensities (AUxx_r) through the ARKit-to-FACS table when the
            heads do not run. "auto" (default): "learned" when analysis weights are available,
            else "none".
        landmarks: the front-end's landmark model: "mesh468" (Face Mesh) or "mesh478" (Face Mesh
            V2 with iris: adds the gaze columns gaze_0_x..gaze_angle_y); None picks "mesh478"
            for ``blendshapes="mediapipe"``, else :data:`DEFAULT_LANDMARKS`.
        heads: the learned heads (emotions, valence, arousal, AUxx_r and AUxx_c, learned
            blendshapes, the embedding: :mod:`facexpr.analyze.heads`) with these options, or
            None for none. On by default when weights are available; ``heads_note`` says why
            not otherwise.
        heads_note: set when the heads were asked for but are off: why.
        embedding: the expression embedding (``FaceResult.embedding``, columns expr_00..expr_15)
            with these options, or None for none. On by default when weights are available
            (shipped, or ``EmbeddingOptions(weights=PATH)``); without any, the analysis runs
            without it and ``embedding_note`` says why.
        embedding_note: set when the embedding was asked for but is off: why (no weights).
    """

    mode: RunningMode | None = None
    detector: Literal["full", "short"] = "full"
    min_face_score: float = 0.5
    max_faces: int = 10
    every: int = 1
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    smoothing: bool = True
    align_size: int = 224
    redetect_every: int = 10
    num_threads: int = 1
    device: Device = "auto"
    mesh: bool = False
    blendshapes: Literal["auto", "none", "fit", "learned", "mediapipe"] = "auto"
    landmarks: Literal["mesh468", "mesh478"] | None = None
    aligned: bool = False
    embedding: EmbeddingOptions | None = field(default_factory=EmbeddingOptions)
    heads: HeadsOptions | None = field(default_factory=HeadsOptions)
    groups: tuple[str, ...] = field(init=False)
    embedding_note: str | None = field(init=False, default=None)
    heads_note: str | None = field(init=False, default=None)
    heads_on: bool = field(init=False, default=False)
    separate_embedding: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.mode is not None and not isinstance(self.mode, RunningMode):
            raise ConfigError(f"mode must be a RunningMode or None, not {self.mode!r}")
        if self.detector not in ("full", "short"):
            raise ConfigError(f"detector must be 'full' or 'short', not {self.detector!r}")
        if not 0.0 < self.min_face_score < 1.0:
            raise ConfigError(f"min_face_score must be in (0, 1), not {self.min_face_score}")
        if self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1, not {self.max_faces}")
        if self.every < 1:
            raise ConfigError(f"every must be >= 1, not {self.every}")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"fps must be > 0, not {self.fps}")
        if self.start is not None and self.start < 0:
            raise ConfigError(f"start must be >= 0 seconds, not {self.start}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"end ({self.end} s) must be after start ({self.start} s)")
        if self.align_size < 0 or 0 < self.align_size < 32:
            raise ConfigError(f"align_size must be 0 or >= 32 px, not {self.align_size}")
        if self.redetect_every < 1:
            raise ConfigError(f"redetect_every must be >= 1, not {self.redetect_every}")
        if self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, not {self.num_threads}")
        if self.blendshapes not in ("auto", "none", "fit", "learned", "mediapipe"):
            raise ConfigError(
                "blendshapes must be 'auto', 'none', 'fit', 'learned' or 'mediapipe', not "
                f"{self.blendshapes!r}"
            )
        if self.heads is not None and not isinstance(self.heads, HeadsOptions):
            raise ConfigError(
                f"heads must be HeadsOptions or None, not {type(self.heads).__name__}"
            )
        self.heads_note = None
        self.heads_on = False
        if self.heads is not None:
            if not self.heads.available:
                self.heads_note = (
                    "no analysis weights are shipped yet: emotions, valence-arousal, AUs and "
                    "learned blendshapes are left out (give trained weights with --heads-weights)"
                )
            elif self.align_size == 0:
                if self.heads.weights is not None:
                    raise ConfigError(
                        "the analysis heads need the aligned crop: align_size must be > 0"
                    )
                self.heads_note = "align_size is 0: no crop, so no learned heads"
            else:
                self.heads_on = True
        head_names = self.heads.head_names() if self.heads_on else ()
        learned = "blendshapes" in head_names
        if self.blendshapes == "auto":
            self.blendshapes = "learned" if learned else "none"
        if self.blendshapes == "learned" and not learned:
            why = self.heads_note or (
                "heads off"
                if not self.heads_on
                else "the analysis weights have no blendshape "
                f"head (they hold {', '.join(head_names)}); use --blendshapes fit or mediapipe"
            )
            raise ConfigError(f"blendshapes 'learned' needs the analysis heads: {why}")
        if self.landmarks is None:
            self.landmarks = "mesh478" if self.blendshapes == "mediapipe" else DEFAULT_LANDMARKS
        if self.landmarks not in ("mesh468", "mesh478"):
            raise ConfigError(f"landmarks must be 'mesh468' or 'mesh478', not {self.landmarks!r}")
        if self.blendshapes == "mediapipe" and self.landmarks != "mesh478":
            raise ConfigError(
                "blendshapes 'mediapipe' needs Face Mesh V2's 478 points: landmarks must be "
                f"'mesh478', not {self.landmarks!r}"
            )
        if self.device != "auto":
            # "auto" is left to the stages that run torch: without one, torch is never imported.
            self.device = resolve_device(self.device)
        groups = list(C.DEFAULT_GROUPS)
        if self.landmarks == "mesh478":
            groups.insert(groups.index("meta") + 1, "gaze")  # OpenFace's place for them
        if self.blendshapes in ("fit", "learned", "mediapipe"):
            groups.append("blendshapes")
        if self.blendshapes == "mediapipe":
            import facexpr.analyze.mediapipe_blendshapes  # noqa: F401 - registers the aus group
        if self.blendshapes in ("fit", "mediapipe") and "aus" not in head_names:
            groups.append("aus")  # from the blendshapes; the heads' AUxx_r replace them when on
        groups += [g for h, g in (("aus", "au_heads"), ("emotion", "emotions"), ("va", "va"))
                   if h in head_names]  # fmt: skip
        if self.embedding is not None and not isinstance(self.embedding, EmbeddingOptions):
            raise ConfigError(
                f"embedding must be EmbeddingOptions or None, not {type(self.embedding).__name__}"
            )
        self.embedding_note = None
        # The heads carry the embedding; a separate expression model runs only when its weights
        # are given by path (or when the heads are off).
        self.separate_embedding = False
        if "embedding" in head_names and (self.embedding is None or self.embedding.weights is None):
            if self.embedding is not None:
                groups.append("expr")
        elif self.embedding is not None:
            if not self.embedding.available:
                self.embedding_note = (
                    "no expression weights are shipped yet: the expr_00..expr_15 columns are "
                    "left out (give trained weights with --expression-weights PATH)"
                )
            elif self.align_size == 0:
                if self.embedding.weights is not None:
                    raise ConfigError(
                        "the expression embedding needs the aligned crop: align_size must be > 0"
                    )
                self.embedding_note = "align_size is 0: no crop, so no expression embedding"
            else:
                groups.append("expr")
                self.separate_embedding = True
        if self.mesh:
            groups.append("mesh")
        self.groups = tuple(groups)

    @property
    def embedding_on(self) -> bool:
        """Whether the expression embedding runs (asked for, and weights available)."""
        return "expr" in self.groups and self.separate_embedding


def resolve_device(device: str) -> str:
    """Returns "cpu" or "cuda" for a requested device, checking that CUDA exists if asked."""
    if device not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device")
    return "cuda" if has_cuda else "cpu"


class Analyzer:
    """Runs the face front-end (and, as they land, the expression heads) over media.

    Args:
        options: see :class:`AnalyzerOptions`; defaults if None.
    """

    def __init__(self, options: AnalyzerOptions | None = None) -> None:
        self.options = options or AnalyzerOptions()
        self._frontends: dict[RunningMode, FaceFrontEnd] = {}
        o = self.options
        # The stages after the front-end, in order; each has the Stage shape (analyze/stages.py).
        self.stages: list[Stage] = []
        if o.blendshapes == "fit":
            from facexpr.analyze.blendshapes import BlendshapeFitter

            self.stages.append(BlendshapeFitter(device=o.device))
        elif o.blendshapes == "mediapipe":
            from facexpr.analyze.mediapipe_blendshapes import MediaPipeBlendshapes

            self.stages.append(MediaPipeBlendshapes(o.num_threads))
        if o.heads_note is not None:
            log.info("%s", o.heads_note)
        if o.heads_on:
            from facexpr.analyze.heads import FaceHeads

            self.stages.append(
                FaceHeads(
                    o.heads,
                    blendshapes=o.blendshapes == "learned",
                    embedding="expr" in o.groups and not o.separate_embedding,
                    device=o.device,
                    num_threads=o.num_threads,
                )
            )
        if o.embedding_note is not None:
            log.info("%s", o.embedding_note)
        if o.embedding_on:
            from facexpr.analyze.embedding import ExpressionEmbedder

            embedder = ExpressionEmbedder(o.embedding, device=o.device, num_threads=o.num_threads)
            if embedder.dim != C.N_EXPR:
                raise ConfigError(
                    f"{o.embedding.weights or 'shipped weights'}: the expression model gives "
                    f"{embedder.dim}-d embeddings; the table has {C.N_EXPR} expr_* columns"
                )
            self.stages.append(embedder)

    def _frontend(self, mode: RunningMode) -> FaceFrontEnd:
        fe = self._frontends.get(mode)
        if fe is None:
            o = self.options
            fe = FaceFrontEnd(
                FaceFrontEndOptions(
                    mode=mode,
                    detector=o.detector,
                    min_face_score=o.min_face_score,
                    max_faces=o.max_faces,
                    align_size=o.align_size,
                    smoothing=o.smoothing,
                    redetect_every=o.redetect_every,
                    num_threads=o.num_threads,
                    aligned=o.aligned,
                    landmark_model=o.landmarks,
                )
            )
            self._frontends[mode] = fe
        return fe

    def _mode_for(self, source: MediaSource) -> RunningMode:
        if self.options.mode is not None:
            return self.options.mode
        return {
            "image": RunningMode.IMAGE,
            "video": RunningMode.VIDEO,
            "webcam": RunningMode.STREAM,
        }[source.kind]

    def estimate_frames(self, source: MediaSource) -> int | None:
        """Returns how many frames analysing ``source`` will yield, if known cheaply."""
        if source.kind == "image":
            return 1
        if source.kind != "video":
            return None
        info = probe_video(source.path)
        if not info.n_frames:
            return None
        n = info.n_frames
        if self.options.start is not None or self.options.end is not None:
            lo = self.options.start or 0.0
            hi = self.options.end if self.options.end is not None else info.duration
            n = max(0, round((min(hi, info.duration) - lo) * info.fps))
        if self.options.fps is not None and info.fps > 0:
            n = round(n * min(1.0, self.options.fps / info.fps))
        return max(1, -(-n // self.options.every)) if n else 0

    def iter_results(self, source: MediaSource | str | Path) -> Iterator[tuple[Frame, FrameResult]]:
        """Yields (frame, result) for every kept frame of one source, in order.

        Raises:
            InputError: the source cannot be read (the message names the file and the problem).
        """
        if not isinstance(source, MediaSource):
            sources = expand_inputs([source])
            if len(sources) != 1:
                raise ConfigError(f"{source}: names {len(sources)} inputs; use analyze() for many")
            source = sources[0]
        mode = self._mode_for(source)
        fe = self._frontend(mode)
        fe.reset()
        o = self.options
        frames = iter_frames(source, every=o.every, fps=o.fps, start=o.start, end=o.end)
        if not self.stages:
            for frame in frames:
                yield frame, fe.process(frame)
            return
        # The stages work on chunks of frames: a tracked face's frames are fitted together
        # (shared identity, temporal prior) and the faces of many frames are embedded in batches,
        # while memory stays bounded.
        for stage in self.stages:
            stage.reset()
        tracked = mode is not RunningMode.IMAGE
        # A live stream is not held back for the embedding alone (a chunk is about 1 s of
        # webcam); the fitter keeps its chunks, whose temporal prior needs them.
        size = _CHUNK if mode is RunningMode.VIDEO or self.options.blendshapes == "fit" else 1
        size = size if tracked else 1
        chunk: list[tuple[Frame, FrameResult]] = []
        try:
            for frame in frames:
                chunk.append((frame, fe.process(frame)))
                if len(chunk) >= size:
                    yield from self._run_chunk(chunk, tracked)
                    chunk = []
        except DamagedInputError:  # raised after the last good frame: deliver those, then raise
            if chunk:
                yield from self._run_chunk(chunk, tracked)
            raise
        if chunk:
            yield from self._run_chunk(chunk, tracked)

    def _run_chunk(
        self, chunk: list[tuple[Frame, FrameResult]], tracked: bool
    ) -> Iterator[tuple[Frame, FrameResult]]:
        done = run_stages(self.stages, [r for _, r in chunk], tracked=tracked)
        for (frame, _), result in zip(chunk, done, strict=True):
            yield frame, result

    def analyze_image(self, image: np.ndarray | str | Path) -> FrameResult:
        """Returns the faces of one photo (an RGB uint8 array or a path)."""
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ConfigError(
                    f"image must be an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}"
                )
            fe = self._frontend(RunningMode.IMAGE)
            result = fe.process(Frame(image=image, source="<array>"))
            for stage in self.stages:
                stage.reset()
            return run_stages(self.stages, [result], tracked=False)[0]
        ((_, result),) = list(self.iter_results(image))
        return result

    def analyze_video(self, path: str | Path) -> Iterator[FrameResult]:
        """Yields the result of every kept frame of a video, with tracked face ids."""
        for _, result in self.iter_results(path):
            yield result

    def analyze_stream(self, index: int = 0) -> Iterator[FrameResult]:
        """Yields results from a webcam until the caller stops iterating."""
        for _, result in self.iter_results(MediaSource(path=f"webcam:{index}", kind="webcam")):
            yield result

    def analyze(self, source: str | Path | np.ndarray | Sequence[str | Path]) -> ExpressionTable:
        """Returns the table of every face in every frame of the given input(s).

        Args:
            source: a photo or video path, a folder, a glob, a list of those, or an RGB array.
        """
        if isinstance(source, np.ndarray):
            return ExpressionTable.from_frames([self.analyze_image(source)], self.options.groups)
        inputs = [source] if isinstance(source, str | Path) else list(source)
        results: list[FrameResult] = []
        for src in expand_inputs(inputs):
            results.extend(r for _, r in self.iter_results(src))
        return ExpressionTable.from_frames(results, self.options.groups)

    def close(self) -> None:
        """Frees the models."""
        for fe in self._frontends.values():
            fe.close()
        self._frontends.clear()

    def __enter__(self) -> Analyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

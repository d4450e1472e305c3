"""Expression-similarity triplets for stage 2, where the identity is never the cue.

A triplet (anchor, positive, negative) says: the anchor and the positive show the more similar
expressions, the negative the odd one (FEC's convention, Vemulapalli and Agarwala, CVPR 2019). So
that an embedding cannot solve triplets by who the person is, the sources vary identity inside
each triplet: the **positive comes from another subject** than the anchor, and the negative, where
one qualifies, from the **anchor's own subject** (the identity then points the wrong way).

Sources (each a fixed, seeded list of index triples mined once, so ``len`` and ``[i]`` are
deterministic and batches resume exactly):

- :class:`RigTriplets` (a) synthetic faces: distance between the exact ``arkit_weights`` the synth
  engine rendered. Positive: the nearest rig of another identity (``pos_max`` bounds it; where the
  dataset renders one rig on several identities, that distance is 0); negative: a rig at least
  ``margin`` further from both.
- :class:`TeacherTriplets` (b) real faces: the same rule on cached Blendshape V2 vectors
  (``arkit_teacher``, ``facexpr dataset teach``) of UTKFace, FER+ and video frames, across people.
- :class:`VoteTriplets` (c) FER+: L1 distance between the 10-annotator vote distributions.
- :class:`TrackTriplets` (d) video: three frames of one tracked face whose expression changed
  (same person throughout, so only the expression can tell them apart).
- :class:`FecTriplets`: human-annotated FEC triplets (:mod:`facexpr.io.datasets.fec`).

:class:`TripletMix` mixes sources by ratio; :func:`collate_triplets` stacks a batch with its type
ids, which pick the per-type margin of the loss (:data:`DEFAULT_MARGINS`). Held-out splits:
``split="train" | "test"`` keeps the subjects of one side of a seeded subject-exclusive split
(:func:`split_subjects`): identities never trained on (synthetic), people never trained on (real).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError
from facexpr.io.shards import subject_split
from facexpr.train.mixing import ShardIndex, resize_square

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MARGINS",
    "FecTriplets",
    "RigTriplets",
    "TeacherTriplets",
    "TrackTriplets",
    "Triplet",
    "TripletMix",
    "TripletType",
    "VoteTriplets",
    "collate_triplets",
    "mine_triplets",
    "split_subjects",
]

Split = Literal["all", "train", "test"]


class TripletType(enum.IntEnum):
    """Where a triplet comes from; the id selects the loss margin."""

    RIG = 0
    TEACHER = 1
    VOTES = 2
    TRACK = 3
    FEC_ONE_CLASS = 4
    FEC_TWO_CLASS = 5
    FEC_THREE_CLASS = 6


DEFAULT_MARGINS: dict[TripletType, float] = {
    TripletType.RIG: 0.2,
    TripletType.TEACHER: 0.1,
    TripletType.VOTES: 0.1,
    TripletType.TRACK: 0.1,
    TripletType.FEC_ONE_CLASS: 0.1,
    TripletType.FEC_TWO_CLASS: 0.1,
    TripletType.FEC_THREE_CLASS: 0.2,
}
"""Loss margins (squared distances of unit embeddings) per type; FEC's are the paper's."""


@dataclass(frozen=True, slots=True)
class Triplet:
    """One training triplet.

    Attributes:
        anchor: (S, S, 3) uint8 RGB.
        positive: (S, S, 3) uint8 RGB, the expression closer to the anchor's.
        negative: (S, S, 3) uint8 RGB, the odd one.
        type_id: a :class:`TripletType`.
        keys: the three samples' keys (or FEC URLs).
        subjects: the three subject ids ('' where unknown).
        labels: the three samples' label vectors the source mined by, (D,) float32 each (rig
            weights, teacher scores, votes), or None (FEC has none); for auxiliary losses.
    """

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    type_id: TripletType
    keys: tuple[str, str, str]
    subjects: tuple[str, str, str]
    labels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def split_subjects(
    subject_ids: Sequence[str], test_share: float = 0.2, seed: int = 0
) -> dict[str, frozenset[str]]:
    """Returns ``{"train": ids, "test": ids}``, a subject-exclusive split by sample share.

    Raises:
        ConfigError: ``test_share`` outside (0, 1), or fewer than 2 subjects.
    """
    if not 0.0 < test_share < 1.0:
        raise ConfigError(f"test_share must be in (0, 1), got {test_share}")
    folds = subject_split(list(subject_ids), {"train": 1 - test_share, "test": test_share}, seed)
    return {k: frozenset(v) for k, v in folds.items()}


def _dist(vectors: np.ndarray, a: np.ndarray | int, metric: str) -> np.ndarray:
    diff = vectors - a
    if metric == "l1":
        return np.abs(diff).sum(-1)
    return np.sqrt((diff * diff).sum(-1))


def mine_triplets(
    vectors: np.ndarray,
    subjects: Sequence[str],
    n: int,
    *,
    pos_max: float,
    margin: float,
    metric: Literal["l2", "l1"] = "l2",
    same_subject_positive: bool = False,
    pool: int = 512,
    seed: int = 0,
    max_tries: int = 20,
    own_negative: float = 0.5,
) -> np.ndarray:
    """Returns (M, 3) int64 index triples (anchor, positive, negative), M <= n.

    For each triple: a random anchor; the positive is the nearest of ``pool`` random candidates
    from *other* subjects (or, with ``same_subject_positive``, from the anchor's own subject),
    accepted when its distance ``d_ap <= pos_max``; the negative must satisfy
    ``d(a, n) >= d_ap + margin`` and ``d(p, n) >= d_ap + margin`` (both sides, as the symmetric
    loss asks), and, for a share ``own_negative`` of the anchors, is taken from the anchor's own
    subject when one there qualifies, else from the pool. Only own-subject negatives (the hardest
    kind: identity points the wrong way in every triplet) collapsed the embedding onto one point
    in training (FaceNet, Schroff et al. 2015, saw the same with the hardest negatives), hence a
    share. Anchors that find no such pair are redrawn (up to ``max_tries * n`` draws).

    Args:
        vectors: (N, D) float expression descriptors (rig weights, teacher scores, votes).
        subjects: (N,) subject ids; '' means unknown (each such sample its own subject).
        n: triples wanted.
        pos_max: largest anchor-positive distance.
        margin: least extra distance of the negative.
        metric: 'l2' (Euclidean) or 'l1'.
        same_subject_positive: all three from one subject (video tracks).
        pool: candidates drawn per anchor.
        seed: the draw seed.
        max_tries: anchor draws per wanted triple before giving up.
        own_negative: share of anchors whose negative is looked for in their own subject first.
    """
    if metric not in ("l2", "l1"):
        raise ConfigError(f"metric must be 'l2' or 'l1', got {metric!r}")
    v = np.asarray(vectors, np.float32)
    N = len(v)
    if N < 3 or len(subjects) != N:
        raise ConfigError(f"mine_triplets: need >= 3 vectors with one subject each, got {N}")
    subj = np.array([s if s else f"\0{i}" for i, s in enumerate(subjects)])
    _, sid = np.unique(subj, return_inverse=True)
    groups: dict[int, np.ndarray] = {}
    order = np.argsort(sid, kind="stable")
    bounds = np.flatnonzero(np.diff(sid[order])) + 1
    for g in np.split(order, bounds):
        groups[int(sid[g[0]])] = g
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int, int]] = []
    for _ in range(max(1, max_tries) * n):
        if len(out) >= n:
            break
        a = int(rng.integers(N))
        own = groups[int(sid[a])]
        if same_subject_positive:
            cand = own[own != a]
            if len(cand) > pool:
                cand = rng.choice(cand, pool, replace=False)
        else:
            cand = rng.integers(0, N, size=min(pool, N))
            cand = cand[sid[cand] != sid[a]]
        if len(cand) == 0:
            continue
        d = _dist(v[cand], v[a], metric)
        k = int(np.argmin(d))
        d_ap = float(d[k])
        if not d_ap <= pos_max:
            continue
        p = int(cand[k])
        found = -1
        pooled = rng.integers(0, N, size=min(pool, N))
        first_own = same_subject_positive or rng.random() < own_negative
        for src in (own, pooled) if first_own else (pooled,):
            src = src[(src != a) & (src != p)]
            if len(src) == 0:
                continue
            ok = (_dist(v[src], v[a], metric) >= d_ap + margin) & (
                _dist(v[src], v[p], metric) >= d_ap + margin
            )
            hits = src[ok]
            if len(hits):
                found = int(hits[int(rng.integers(len(hits)))])
                break
            if same_subject_positive:
                break  # the negative must come from the track too
        if found >= 0:
            out.append((a, p, found))
    if len(out) < n:
        log.warning("mined %d of %d triplets (pos_max %.3g, margin %.3g)", len(out), n,
                    pos_max, margin)  # fmt: skip
    return np.array(out, np.int64).reshape(-1, 3)


class _IndexedTriplets:
    """Triplets of index triples over one or more :class:`ShardIndex` (see the subclasses)."""

    type_id: TripletType

    def __init__(
        self,
        indexes: Sequence[ShardIndex],
        field: str,
        n: int,
        *,
        pos_max: float,
        margin: float,
        metric: Literal["l2", "l1"],
        split: Split,
        test_share: float,
        split_seed: int,
        seed: int,
        size: int | None,
        same_subject_positive: bool = False,
        min_presence: float | None = None,
    ) -> None:
        if n < 1:
            raise ConfigError(f"{type(self).__name__}: n must be >= 1, got {n}")
        if split not in ("all", "train", "test"):
            raise ConfigError(f"split must be 'all', 'train' or 'test', got {split!r}")
        vecs, subjects, refs = [], [], []
        for di, ix in enumerate(indexes):
            v, present = ix.vectors(field)
            if min_presence is not None and "teacher_presence" in ix.fields:
                pr, has = ix.vectors("teacher_presence")
                present &= has & (pr[:, 0] >= min_presence)
            for i in np.flatnonzero(present):
                vecs.append(v[i])
                s = ix.subject_ids[i]
                # Subjects of different datasets never coincide; '' stays unknown (own subject).
                subjects.append(f"{di}:{s}" if s else "")
                refs.append((di, int(i)))
        if len(vecs) < 3:
            raise ConfigError(
                f"{type(self).__name__}: {len(vecs)} samples carry '{field}'; need at least 3"
            )
        subj_keys = [s if s else f"{refs[i][0]}:#{refs[i][1]}" for i, s in enumerate(subjects)]
        if split != "all":
            keep_ids = split_subjects(subj_keys, test_share, split_seed)[split]
            keep = [i for i, s in enumerate(subj_keys) if s in keep_ids]
            vecs = [vecs[i] for i in keep]
            subjects = [subjects[i] for i in keep]
            refs = [refs[i] for i in keep]
            subj_keys = [subj_keys[i] for i in keep]
        self.indexes = list(indexes)
        self.refs = refs
        self.subject_keys = subj_keys
        self.size = size
        self.vectors = np.stack(vecs).astype(np.float32)
        self.triples = mine_triplets(
            self.vectors, subjects, n, pos_max=pos_max, margin=margin, metric=metric,
            same_subject_positive=same_subject_positive, seed=seed,
        )  # fmt: skip
        if len(self.triples) == 0:
            raise ConfigError(
                f"{type(self).__name__}: no triplet satisfies pos_max={pos_max} and "
                f"margin={margin} on '{field}'; loosen them"
            )

    def subjects(self) -> frozenset[str]:
        """Returns the subject ids (``dataset:subject``) the triplets draw from."""
        return frozenset(self.subject_keys[int(i)] for i in np.unique(self.triples))

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, i: int) -> Triplet:
        tri = self.triples[i]
        imgs, keys, subs = [], [], []
        for j in tri:
            di, k = self.refs[int(j)]
            ix = self.indexes[di]
            imgs.append(resize_square(ix.image(k), self.size))
            keys.append(ix.keys[k])
            subs.append(ix.subject_ids[k])
        labels = tuple(self.vectors[int(j)] for j in tri)
        return Triplet(
            imgs[0], imgs[1], imgs[2], self.type_id, tuple(keys), tuple(subs),  # type: ignore[arg-type]
            labels,  # type: ignore[arg-type]
        )  # fmt: skip


def _as_indexes(datasets: str | Path | ShardIndex | Sequence[str | Path | ShardIndex]):
    if isinstance(datasets, str | Path | ShardIndex):
        datasets = [datasets]
    return [d if isinstance(d, ShardIndex) else ShardIndex(d) for d in datasets]


class RigTriplets(_IndexedTriplets):
    """(a) Synthetic triplets by exact rig-weight distance (``arkit_weights``, Euclidean).

    Args:
        datasets: synthetic dataset folder(s) (``facexpr synth``) or their indexes.
        n: triplets to mine.
        pos_max: largest anchor-positive rig distance (0 for exact pairs only).
        margin: least extra rig distance of the negative.
        split: 'train' or 'test' side of a subject split over identities, or 'all'.
        test_share: share of samples (whole identities) held out for 'test'.
        split_seed: seed of that split (the same on both sides).
        seed: mining seed.
        size: output side in px (None: as stored).
    """

    type_id = TripletType.RIG

    def __init__(
        self,
        datasets: str | Path | ShardIndex | Sequence[str | Path | ShardIndex],
        n: int = 10000,
        *,
        pos_max: float = 0.35,
        margin: float = 0.3,
        split: Split = "all",
        test_share: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        size: int | None = 224,
        field: str = "arkit_weights",
    ) -> None:
        super().__init__(
            _as_indexes(datasets), field, n, pos_max=pos_max, margin=margin, metric="l2",
            split=split, test_share=test_share, split_seed=split_seed, seed=seed, size=size,
        )  # fmt: skip


class TeacherTriplets(_IndexedTriplets):
    """(b) Real-face triplets by Blendshape V2 teacher-vector distance, across people.

    Args:
        datasets: datasets with cached ``arkit_teacher`` (UTKFace, FER+, video frames).
        n, pos_max, margin, split, test_share, split_seed, seed, size: as :class:`RigTriplets`.
        min_presence: samples whose teacher face presence is lower are left out.
    """

    type_id = TripletType.TEACHER

    def __init__(
        self,
        datasets: str | Path | ShardIndex | Sequence[str | Path | ShardIndex],
        n: int = 10000,
        *,
        pos_max: float = 0.35,
        margin: float = 0.3,
        split: Split = "all",
        test_share: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        size: int | None = 224,
        min_presence: float = 0.5,
    ) -> None:
        super().__init__(
            _as_indexes(datasets), "arkit_teacher", n, pos_max=pos_max, margin=margin,
            metric="l2", split=split, test_share=test_share, split_seed=split_seed, seed=seed,
            size=size, min_presence=min_presence,
        )  # fmt: skip


class VoteTriplets(_IndexedTriplets):
    """(c) FER+ triplets by L1 distance between vote distributions (``emotion_soft``, 0-2).

    FER2013 has no subject ids, so every face counts as its own person (the split is by face).
    Args as :class:`RigTriplets`.
    """

    type_id = TripletType.VOTES

    def __init__(
        self,
        datasets: str | Path | ShardIndex | Sequence[str | Path | ShardIndex],
        n: int = 10000,
        *,
        pos_max: float = 0.2,
        margin: float = 0.6,
        split: Split = "all",
        test_share: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        size: int | None = 224,
    ) -> None:
        super().__init__(
            _as_indexes(datasets), "emotion_soft", n, pos_max=pos_max, margin=margin,
            metric="l1", split=split, test_share=test_share, split_seed=split_seed, seed=seed,
            size=size,
        )  # fmt: skip


class TrackTriplets(_IndexedTriplets):
    """(d) Video triplets: three frames of one tracked face (subject ``file#track``), the
    negative a frame whose expression moved ``margin`` further.

    Args:
        datasets: corpus datasets built from videos (``facexpr dataset build VIDEO``).
        field: the expression descriptor: ``arkit_teacher`` (cached teacher) or ``arkit``
            (the fitted blendshapes every corpus has).
        other args: as :class:`RigTriplets`.
    """

    type_id = TripletType.TRACK

    def __init__(
        self,
        datasets: str | Path | ShardIndex | Sequence[str | Path | ShardIndex],
        n: int = 10000,
        *,
        field: str = "arkit_teacher",
        pos_max: float = 0.2,
        margin: float = 0.3,
        split: Split = "all",
        test_share: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        size: int | None = 224,
    ) -> None:
        super().__init__(
            _as_indexes(datasets), field, n, pos_max=pos_max, margin=margin, metric="l2",
            split=split, test_share=test_share, split_seed=split_seed, seed=seed, size=size,
            same_subject_positive=True,
            min_presence=0.5 if field == "arkit_teacher" else None,
        )  # fmt: skip


class FecTriplets:
    """FEC's annotated triplets: the odd one (most votes) is the negative, the similar pair
    anchor and positive; the type id follows FEC's triplet type.

    Args:
        dataset: an opened :class:`~facexpr.io.datasets.fec.FecDataset` (its ``size`` sets the
            crop side).
        min_agreement: keep triplets whose odd one got at least this share of the votes.
    """

    def __init__(self, dataset, min_agreement: float = 0.0) -> None:
        if not 0.0 <= min_agreement <= 1.0:
            raise ConfigError(f"min_agreement must be in [0, 1], got {min_agreement}")
        self.dataset = dataset
        self.items = [i for i, t in enumerate(dataset.triplets) if t.agreement >= min_agreement]
        if not self.items:
            raise ConfigError(f"FecTriplets: no triplet with agreement >= {min_agreement}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Triplet:
        faces = self.dataset[self.items[i]]
        t = faces.triplet
        odd = t.odd_one
        a, p = (k for k in range(3) if k != odd)
        tid = TripletType(TripletType.FEC_ONE_CLASS + t.triplet_type)
        return Triplet(
            faces.images[a], faces.images[p], faces.images[odd], tid,
            (t.urls[a], t.urls[p], t.urls[odd]), ("", "", ""),
        )  # fmt: skip


class TripletMix:
    """Triplet sources mixed by ratio: item ``i`` is a pure function of ``(seed, i)``.

    Args:
        sources: name -> a triplet source (``len`` and ``[i]`` giving :class:`Triplet`).
        ratios: name -> positive share (normalised).
        n: items per epoch (default: the sources' total).
        seed: draw seed.

    Raises:
        ConfigError: ratios that do not match the sources or are not positive; an empty source.
    """

    def __init__(self, sources, ratios, *, n: int | None = None, seed: int = 0) -> None:
        if set(sources) != set(ratios) or not sources:
            raise ConfigError(
                f"TripletMix: ratios name {sorted(ratios)} but the sources are {sorted(sources)}"
            )
        bad = {k: v for k, v in ratios.items() if not float(v) > 0}
        if bad:
            raise ConfigError(f"TripletMix: ratios must be > 0, got {bad}")
        self.names = sorted(sources)
        self.sources = [sources[k] for k in self.names]
        empty = [k for k, s in zip(self.names, self.sources, strict=True) if len(s) == 0]
        if empty:
            raise ConfigError(f"TripletMix: empty sources {empty}")
        p = np.array([float(ratios[k]) for k in self.names])
        self.n = sum(len(s) for s in self.sources) if n is None else int(n)
        if self.n < 1:
            raise ConfigError(f"TripletMix: n must be >= 1, got {n}")
        rng = np.random.default_rng([seed, 2])
        self._which = rng.choice(len(self.names), size=self.n, p=p / p.sum())
        self._pos = np.zeros(self.n, np.int64)
        for d, s in enumerate(self.sources):
            at = np.flatnonzero(self._which == d)
            r = np.random.default_rng([seed, 3, d])
            reps = -(-len(at) // len(s)) if len(at) else 0
            seq = np.concatenate([r.permutation(len(s)) for _ in range(reps)]) if reps else []
            self._pos[at] = seq[: len(at)]

    def __len__(self) -> int:
        return self.n

    def counts(self) -> dict[str, int]:
        """Returns how many items each source gives."""
        return {k: int((self._which == d).sum()) for d, k in enumerate(self.names)}

    def __getitem__(self, i: int) -> Triplet:
        if not -self.n <= i < self.n:
            raise IndexError(f"TripletMix item {i} out of range ({self.n})")
        return self.sources[int(self._which[i])][int(self._pos[i])]


def collate_triplets(batch: Sequence[Triplet]):
    """Returns a batch dict: ``anchor``/``positive``/``negative`` (B, 3, S, S) uint8 tensors and
    ``type_id`` (B,) int64.

    Raises:
        ConfigError: images of different sizes in the batch (set the sources' ``size``).
    """
    import torch

    shapes = {t.anchor.shape for t in batch} | {t.negative.shape for t in batch}
    shapes |= {t.positive.shape for t in batch}
    if len(shapes) != 1:
        raise ConfigError(f"collate_triplets: images of several sizes {sorted(shapes)}")

    def stack(name: str):
        a = np.stack([getattr(t, name) for t in batch])
        return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()

    return {
        "anchor": stack("anchor"),
        "positive": stack("positive"),
        "negative": stack("negative"),
        "type_id": torch.tensor([int(t.type_id) for t in batch], dtype=torch.int64),
    }

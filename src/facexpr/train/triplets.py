"""Expression triplets for stage 2: an image pool from shard datasets, and triplets over it.

A triplet (anchor, positive, negative) says the anchor and the positive show the more similar
expressions. The identity is never the cue: the three faces always belong to three different
subjects. Triplets come from either

- **mining by a label vector** (:func:`mine_triplets`): for each anchor, a few candidates of other
  people are drawn; the nearest in label space is the positive, and a negative is drawn among the
  candidates farther than the positive by ``min_gap`` from *both* the anchor and the positive (the
  symmetric loss compares both). The vector is any per-sample label of the shards: the
  Blendshape V2 teacher's 52 scores, the fitted ARKit weights (``arkit``, from ``facexpr dataset
  build``), FER+ vote distributions (``emotion_soft``), synthetic rig weights; or
- **a triplets file** (:func:`read_triplets`), JSON lines ``{"anchor": KEY, "positive": KEY,
  "negative": KEY, "type": NAME}`` whose keys are sample keys of the listed shard datasets, or
  ``"D:KEY"`` (D the dataset's position in the list) where a key is in several (FEC triplets,
  video triplets, synthetic ones written by a builder).

The pool keeps each image's PNG bytes (decoded when a batch is built), so 24k faces take about
their file size in memory, not 37 kB each.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import read_manifest

__all__ = ["ImagePool", "Triplets", "load_pool", "mine_triplets", "read_triplets"]


@dataclass(frozen=True)
class ImagePool:
    """Images of one or more shard datasets, by index.

    Attributes:
        keys: (N,) sample keys (unique within a dataset).
        subjects: (N,) subject ids.
        png: N PNG byte strings.
        labels: label name -> (N, D) float32 vectors, NaN rows where a sample (or its whole
            dataset) lacks the label.
        dataset: (N,) int index of the dataset each sample comes from.
    """

    keys: np.ndarray
    subjects: np.ndarray
    png: list[bytes]
    labels: dict[str, np.ndarray]
    dataset: np.ndarray

    def index(self) -> dict[str, int]:
        """Returns key -> index: ``"D:KEY"`` (D the dataset's position in the list) for every
        sample, and the bare ``"KEY"`` where it is unique over the datasets."""
        out: dict[str, int] = {}
        seen: dict[str, int] = {}
        for i, (k, d) in enumerate(zip(self.keys, self.dataset, strict=True)):
            out[f"{d}:{k}"] = i
            seen[str(k)] = seen.get(str(k), 0) + 1
        for i, k in enumerate(self.keys):
            if seen[str(k)] == 1:
                out[str(k)] = i
        return out


@dataclass(frozen=True)
class Triplets:
    """Triplets as indices into an :class:`ImagePool`.

    Attributes:
        anchor, positive, negative: (T,) int64 indices.
        types: (T,) triplet type names (each has a margin in the recipe's config).
    """

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    types: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)

    def select(self, mask: np.ndarray) -> Triplets:
        """Returns the triplets where ``mask`` is True."""
        return Triplets(
            self.anchor[mask], self.positive[mask], self.negative[mask], self.types[mask]
        )

    @staticmethod
    def concat(parts: Sequence[Triplets]) -> Triplets:
        """Returns the triplets of ``parts`` one after the other."""
        if not parts:
            e = np.zeros(0, np.int64)
            return Triplets(e, e, e, np.zeros(0, dtype=object))
        return Triplets(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("anchor", "positive", "negative", "types")
            )
        )


def load_pool(dataset_dirs: Sequence[str | Path], labels: Sequence[str] = ()) -> ImagePool:
    """Returns the images (and some label vectors) of shard datasets.

    Args:
        dataset_dirs: folders with ``manifest.json``.
        labels: names of numeric label fields to keep as vectors; each must be a field of at
            least one of the datasets (the others' rows are NaN).

    Raises:
        InputError: a missing or corrupt dataset or shard (named).
        ConfigError: a label no dataset has (or of different sizes).
    """
    manifests = [read_manifest(d) for d in dataset_dirs]
    dims: dict[str, int] = {}
    for name in labels:
        for m in manifests:
            f = {x.name: x for x in m.fields}.get(name)
            if f is None or f.dtype == "str":
                continue
            dim = int(np.prod(f.shape)) if f.shape else 1
            if dims.setdefault(name, dim) != dim:
                raise ConfigError(f"{m.path}: label '{name}' has {dim} values, not {dims[name]}")
        if name not in dims:
            have = sorted({x.name for m in manifests for x in m.fields if x.dtype != "str"})
            raise ConfigError(
                f"no dataset has a numeric label '{name}' to mine triplets by "
                f"(they have: {', '.join(have)})"
            )
    keys, subjects, png, which = [], [], [], []
    rows: dict[str, list[np.ndarray]] = {name: [] for name in labels}
    for di, (d, m) in enumerate(zip(dataset_dirs, manifests, strict=True)):
        for info in m.shards:
            path = Path(d) / info.name
            try:
                tar = tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:")  # noqa: SIM115
                groups: dict[str, dict[str, bytes]] = {}
                for mem in tar.getmembers():
                    if mem.isfile():
                        k, _, ext = mem.name.partition(".")
                        fh = tar.extractfile(mem)
                        if fh is not None:
                            groups.setdefault(k, {})[ext] = fh.read()
            except FileNotFoundError:
                raise InputError(path, "shard listed in the manifest is missing") from None
            except (tarfile.TarError, OSError) as e:
                raise InputError(path, f"corrupt shard, not a readable tar ({e})") from None
            for k, parts in groups.items():
                if "png" not in parts or "json" not in parts:
                    raise InputError(path, f"sample '{k}' lacks its .png or .json member")
                try:
                    meta = json.loads(parts["json"])
                except ValueError as e:
                    raise InputError(path, f"sample '{k}': corrupt JSON ({e})") from None
                keys.append(k)
                subjects.append(str(meta.get("subject_id", "")) or k)
                png.append(parts["png"])
                which.append(di)
                values = meta.get("labels") or {}
                for name in labels:
                    row = np.full(dims[name], np.nan, np.float32)
                    v = values.get(name)
                    if v is not None:
                        try:
                            row[:] = np.asarray(v, np.float32).reshape(-1)
                        except (ValueError, TypeError):
                            raise InputError(
                                path, f"sample '{k}': label '{name}' has the wrong size"
                            ) from None
                    rows[name].append(row)
    return ImagePool(
        keys=np.asarray(keys, dtype=object),
        subjects=np.asarray(subjects, dtype=object),
        png=png,
        labels={
            name: np.stack(r) if r else np.zeros((0, dims[name]), np.float32)
            for name, r in rows.items()
        },
        dataset=np.asarray(which, np.int64),
    )


def mine_triplets(
    pool: ImagePool,
    label: str,
    allowed: np.ndarray,
    n: int,
    *,
    type_name: str,
    min_gap: float,
    candidates: int = 32,
    negative: Literal["random", "closest"] = "closest",
    seed: int = 0,
) -> Triplets:
    """Returns up to ``n`` triplets mined by label distance among the ``allowed`` samples.

    Args:
        pool: images with ``labels``.
        label: the label vector to mine by (a key of ``pool.labels``).
        allowed: (N,) bool, the samples this split may use (its subjects), with a label.
        n: triplets wanted.
        type_name: the type given to every triplet (its margin is looked up by this name).
        min_gap: the negative's Euclidean label distance to both the anchor and the positive
            exceeds the positive's distance to the anchor by at least this.
        candidates: candidates drawn per anchor (more: closer positives, slower).
        negative: among the candidates far enough, the one closest to the anchor (harder
            triplets, finer distinctions, as FEC's annotated near-misses) or a random one.
        seed: mining seed.

    Raises:
        ConfigError: the label was not loaded, or fewer than 3 subjects to draw from.
    """
    if label not in pool.labels:
        raise ConfigError(f"label '{label}' was not loaded into the pool")
    lab = pool.labels[label]
    ok = allowed & ~np.isnan(lab).any(axis=1)
    idx = np.flatnonzero(ok)
    if len(np.unique(pool.subjects[idx].astype(str))) < 3:
        raise ConfigError(
            f"mining '{type_name}' triplets needs faces of at least 3 subjects with label "
            f"'{label}'; found {len(idx)} faces"
        )
    rng = np.random.default_rng(seed)
    subj = pool.subjects.astype(str)
    out_a, out_p, out_n = [], [], []
    tries = 0
    while len(out_a) < n and tries < 20 * n + 100:
        tries += 1
        a = idx[rng.integers(len(idx))]
        c = idx[rng.integers(len(idx), size=candidates)]
        c = c[subj[c] != subj[a]]
        if len(c) < 2:
            continue
        d = np.linalg.norm(lab[c] - lab[a], axis=1)
        j = int(np.argmin(d))
        p, d_ap = c[j], d[j]
        d_pn = np.linalg.norm(lab[c] - lab[p], axis=1)
        far = (d >= d_ap + min_gap) & (d_pn >= d_ap + min_gap) & (subj[c] != subj[p])
        if not far.any():
            continue
        if negative == "closest":
            neg = c[far][int(np.argmin(d[far]))]
        else:
            neg = c[far][rng.integers(int(far.sum()))]
        out_a.append(a)
        out_p.append(p)
        out_n.append(neg)
    k = len(out_a)
    return Triplets(
        np.asarray(out_a, np.int64),
        np.asarray(out_p, np.int64),
        np.asarray(out_n, np.int64),
        np.asarray([type_name] * k, dtype=object),
    )


def read_triplets(path: str | Path, pool: ImagePool) -> Triplets:
    """Returns the triplets of a JSON-lines file over ``pool`` (see the module docstring).

    Raises:
        InputError: unreadable file, a bad line, a key not in the pool, or a triplet whose
            images repeat a subject (file and line named).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the triplets file ({e})") from None
    index = pool.index()
    subj = pool.subjects.astype(str)
    a, p, n, t = [], [], [], []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ids = [index[str(row[k])] for k in ("anchor", "positive", "negative")]
            kind = str(row["type"])
        except ValueError as e:
            raise InputError(path, f"line {no}: not JSON ({e})") from None
        except KeyError as e:
            raise InputError(
                path, f"line {no}: {e} is missing or not a key of the datasets"
            ) from None
        except TypeError:
            raise InputError(
                path, f"line {no}: expected an object with anchor/positive/negative/type"
            ) from None
        if len({subj[i] for i in ids}) < 3:
            raise InputError(
                path, f"line {no}: the three faces must be of three different subjects"
            )
        a.append(ids[0])
        p.append(ids[1])
        n.append(ids[2])
        t.append(kind)
    return Triplets(
        np.asarray(a, np.int64),
        np.asarray(p, np.int64),
        np.asarray(n, np.int64),
        np.asarray(t, dtype=object),
    )

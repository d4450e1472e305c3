"""Blendshape rigs: a neutral mesh, linear expression deltas and optional identity modes.

A :class:`Rig` is the geometry every other part of :mod:`facexpr.avatars` works on: the ICT
FaceKit loader (:mod:`facexpr.avatars.ict`), the glTF reader and writer
(:mod:`facexpr.avatars.gltf`), the renderer (:mod:`facexpr.avatars.render`) and the landmark fitter.

The shape of a rig for expression weights ``w`` (C,) and identity coefficients ``z`` (K,) is the
linear model ``neutral + sum_c w_c deltas_c + sum_k z_k identity_basis_k``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from facexpr.core.arkit import ARKIT_NAMES, ict_to_arkit_name
from facexpr.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

__all__ = ["Rig", "arkit_index"]

_ARKIT_KEY = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
_SIDE = re.compile(r"[._]?(L|R|l|r)$")


def arkit_index(name: str) -> int | None:
    """Returns the ARKit index (:data:`facexpr.core.arkit.ARKIT_NAMES`) a channel name drives.

    Case-insensitive and tolerant of exporter prefixes and side suffixes: ``jawOpen``,
    ``blendShape1.jawOpen``, ``BS_mouthSmileLeft``, ``mouthSmile_L`` and ``mouthSmile.L`` all
    match; ICT's split ``browInnerUp_L`` / ``cheekPuff_R`` match ``browInnerUp`` / ``cheekPuff``.
    None when nothing matches.
    """
    base = name.rsplit(".", 1)[-1] if not re.search(r"\.[LRlr]$", name) else name
    base = base.split(":")[-1].strip()
    for cand in (base, re.sub(r"^(bs|arkit|blendshape\d*|shape)[_-]?", "", base, flags=re.I)):
        key = cand.replace("_", "").replace("-", "").lower()
        if key in _ARKIT_KEY:
            return _ARKIT_KEY[key]
        m = _SIDE.search(cand)
        if m is not None:
            stem = cand[: m.start()]
            side = "Left" if m.group(1).upper() == "L" else "Right"
            ict = ict_to_arkit_name(f"{stem}_{m.group(1).upper()}")
            for k in (ict, stem + side):
                k = k.replace("_", "").replace("-", "").lower()
                if k in _ARKIT_KEY:
                    return _ARKIT_KEY[k]
    return None


@dataclass(frozen=True, eq=False)
class Rig:
    """A triangle mesh with linear blendshapes (arrays are treated as read-only).

    Attributes:
        neutral: (V, 3) float32 vertex positions of the neutral face, model units (cm for ICT).
        faces: (F, 3) int32 vertex ids of the triangles (quads are split into two triangles).
        channel_names: the C expression channel names, in the order of ``deltas``.
        deltas: (C, V, 3) float32 (or float16, promoted when evaluated) vertex offsets per channel.
        uv: optional texture coordinates, (V, 2) per vertex or (F, 3, 2) per triangle corner.
        face_material: optional (F,) int16 material id of each triangle into ``material_names``.
        material_names: names of the materials (empty when ``face_material`` is None).
        identity_basis: optional (K, V, 3) float32 identity modes (offsets per unit coefficient).
        landmark_vertices: optional (68,) int64 vertex ids of the Multi-PIE 68 landmarks.
        name: a label for messages and files.
    """

    neutral: np.ndarray
    faces: np.ndarray
    channel_names: tuple[str, ...]
    deltas: np.ndarray
    uv: np.ndarray | None = None
    face_material: np.ndarray | None = None
    material_names: tuple[str, ...] = ()
    identity_basis: np.ndarray | None = None
    landmark_vertices: np.ndarray | None = None
    name: str = "rig"
    _flat: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        neutral = np.asarray(self.neutral, np.float32)
        if neutral.ndim != 2 or neutral.shape[1] != 3:
            raise ConfigError(f"Rig '{self.name}': neutral must be (V, 3), got {neutral.shape}")
        v = neutral.shape[0]
        faces = np.asarray(self.faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ConfigError(
                f"Rig '{self.name}': faces must be (F, 3) triangles, got {faces.shape}"
            )
        faces = faces.astype(np.int32, copy=False)
        if faces.size and (faces.min() < 0 or faces.max() >= v):
            raise ConfigError(
                f"Rig '{self.name}': face vertex ids must be in [0, {v}), got "
                f"[{faces.min()}, {faces.max()}]"
            )
        names = tuple(str(n) for n in self.channel_names)
        deltas = np.asarray(self.deltas)
        if deltas.dtype not in (np.float16, np.float32):
            deltas = deltas.astype(np.float32)
        if deltas.shape != (len(names), v, 3):
            raise ConfigError(
                f"Rig '{self.name}': deltas must be (C={len(names)}, V={v}, 3), got {deltas.shape}"
            )
        lower = [n.lower() for n in names]
        if len(set(lower)) != len(lower):
            dup = sorted({n for n in lower if lower.count(n) > 1})
            raise ConfigError(f"Rig '{self.name}': duplicate channel names {dup}")
        uv = self.uv
        if uv is not None:
            uv = np.asarray(uv, np.float32)
            if uv.shape not in ((v, 2), (faces.shape[0], 3, 2)):
                raise ConfigError(
                    f"Rig '{self.name}': uv must be (V, 2) or (F, 3, 2), got {uv.shape}"
                )
        mat = self.face_material
        if mat is not None:
            mat = np.asarray(mat).astype(np.int16, copy=False)
            if mat.shape != (faces.shape[0],):
                raise ConfigError(f"Rig '{self.name}': face_material must be (F,), got {mat.shape}")
            if mat.size and (mat.min() < 0 or mat.max() >= len(self.material_names)):
                raise ConfigError(
                    f"Rig '{self.name}': face_material ids must index the "
                    f"{len(self.material_names)} material_names"
                )
        basis = self.identity_basis
        if basis is not None:
            basis = np.asarray(basis)
            if basis.dtype not in (np.float16, np.float32):
                basis = basis.astype(np.float32)
            if basis.ndim != 3 or basis.shape[1:] != (v, 3):
                raise ConfigError(
                    f"Rig '{self.name}': identity_basis must be (K, V={v}, 3), got {basis.shape}"
                )
        lmk = self.landmark_vertices
        if lmk is not None:
            lmk = np.asarray(lmk).astype(np.int64, copy=False)
            if lmk.ndim != 1 or (lmk.size and (lmk.min() < 0 or lmk.max() >= v)):
                raise ConfigError(
                    f"Rig '{self.name}': landmark_vertices must be (N,) vertex ids in [0, {v})"
                )
        for key, val in (
            ("neutral", neutral), ("faces", faces), ("channel_names", names),
            ("deltas", deltas), ("uv", uv), ("face_material", mat),
            ("material_names", tuple(self.material_names)), ("identity_basis", basis),
            ("landmark_vertices", lmk),
        ):  # fmt: skip
            if isinstance(val, np.ndarray):
                val.setflags(write=False)
            object.__setattr__(self, key, val)

    # ------------------------------------------------------------------ sizes and names
    @property
    def n_vertices(self) -> int:
        """Returns V, the number of vertices."""
        return int(self.neutral.shape[0])

    @property
    def n_channels(self) -> int:
        """Returns C, the number of expression channels."""
        return len(self.channel_names)

    @property
    def n_identity(self) -> int:
        """Returns K, the number of identity modes (0 without a basis)."""
        return 0 if self.identity_basis is None else int(self.identity_basis.shape[0])

    def channel_index(self, name: str) -> int:
        """Returns the index of channel ``name`` (case-insensitive).

        Raises:
            ConfigError: no channel has that name; the message lists close matches.
        """
        index = self._flat.get("index")
        if index is None:
            index = {n.lower(): i for i, n in enumerate(self.channel_names)}
            self._flat["index"] = index
        i = index.get(name.lower())
        if i is None:
            import difflib

            close = difflib.get_close_matches(name, self.channel_names, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ConfigError(f"Rig '{self.name}': no channel named '{name}'{hint}")
        return i

    def weights(self, **values: float) -> np.ndarray:
        """Returns (C,) float32 weights, zero except the named channels (case-insensitive).

        Example: ``rig.weights(jawOpen=1.0, eyeBlink_L=0.5)``.
        """
        w = np.zeros(self.n_channels, np.float32)
        for k, val in values.items():
            w[self.channel_index(k)] = val
        return w

    # ------------------------------------------------------------------ evaluation
    def delta_matrix(self) -> np.ndarray:
        """Returns the (C, V*3) float32 expression deltas as one matrix (cached)."""
        m = self._flat.get("deltas")
        if m is None:
            m = np.ascontiguousarray(self.deltas.reshape(self.n_channels, -1), dtype=np.float32)
            m.setflags(write=False)
            self._flat["deltas"] = m
        return m

    def identity_matrix(self) -> np.ndarray:
        """Returns the (K, V*3) float32 identity basis as one matrix (cached; (0, V*3) if none)."""
        m = self._flat.get("identity")
        if m is None:
            if self.identity_basis is None:
                m = np.zeros((0, self.n_vertices * 3), np.float32)
            else:
                m = np.ascontiguousarray(
                    self.identity_basis.reshape(self.n_identity, -1), dtype=np.float32
                )
            m.setflags(write=False)
            self._flat["identity"] = m
        return m

    def _check_weights(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, np.float32)
        if w.shape != (self.n_channels,):
            raise ConfigError(
                f"Rig '{self.name}': weights must be ({self.n_channels},), got {w.shape}"
            )
        return w

    def _check_identity(self, identity: np.ndarray) -> np.ndarray:
        z = np.asarray(identity, np.float32)
        if z.ndim != 1 or z.shape[0] > self.n_identity:
            raise ConfigError(
                f"Rig '{self.name}': identity must be (K,) with K <= {self.n_identity} "
                f"(the rig's identity modes), got {z.shape}"
            )
        return z

    def identity_shape(self, identity: np.ndarray | None) -> np.ndarray:
        """Returns the (V, 3) float32 neutral face of identity coefficients (K',), K' <= K.

        Missing trailing coefficients count as 0.

        Raises:
            ConfigError: more coefficients than identity modes.
        """
        if identity is None:
            return self.neutral
        z = self._check_identity(identity)
        out = self.neutral.reshape(-1) + z @ self.identity_matrix()[: z.shape[0]]
        return out.reshape(-1, 3)

    def evaluate(
        self,
        weights: np.ndarray,
        identity: np.ndarray | None = None,
        *,
        clamp: bool = False,
        base: np.ndarray | None = None,
    ) -> np.ndarray:
        """Returns the (V, 3) float32 vertices for (C,) expression weights.

        Args:
            weights: (C,) weights, usually in [0, 1].
            identity: optional (K',) identity coefficients, K' <= K (trailing ones count as 0).
            clamp: clip the weights to [0, 1] first.
            base: optional (V, 3) neutral to add the expression to instead of ``neutral`` (e.g. a
                precomputed :meth:`identity_shape`); ``identity`` must then be None.

        Raises:
            ConfigError: wrong shapes.
        """
        w = self._check_weights(weights)
        if clamp:
            w = np.clip(w, 0.0, 1.0)
        if base is None:
            base = self.identity_shape(identity)
        elif identity is not None:
            raise ConfigError(f"Rig '{self.name}': give identity or base, not both")
        out = base.reshape(-1) + w @ self.delta_matrix()
        return out.reshape(-1, 3)

    def evaluate_torch(
        self,
        weights: torch.Tensor,
        identity: torch.Tensor | None = None,
        *,
        clamp: bool = False,
    ) -> torch.Tensor:
        """Returns (B, V, 3) vertices for a batch of weights, differentiably.

        One matmul over the flattened deltas (and one over the identity basis); the matrices are
        moved to the weights' device and dtype and cached there.

        Args:
            weights: (B, C) weights.
            identity: optional (B, K') identity coefficients, K' <= K.
            clamp: clip the weights to [0, 1] first.

        Raises:
            ConfigError: wrong shapes.
        """
        import torch

        if weights.ndim != 2 or weights.shape[1] != self.n_channels:
            raise ConfigError(
                f"Rig '{self.name}': weights must be (B, {self.n_channels}), "
                f"got {tuple(weights.shape)}"
            )
        if clamp:
            weights = weights.clamp(0.0, 1.0)
        key = ("torch", weights.device, weights.dtype)
        mats = self._flat.get(key)
        if mats is None:
            to = {"device": weights.device, "dtype": weights.dtype}
            mats = (
                torch.from_numpy(self.neutral.reshape(-1).copy()).to(**to),
                torch.from_numpy(self.delta_matrix().copy()).to(**to),
                torch.from_numpy(self.identity_matrix().copy()).to(**to),
            )
            self._flat[key] = mats
        neutral, deltas, basis = mats
        out = neutral + weights @ deltas
        if identity is not None:
            if (
                identity.ndim != 2
                or identity.shape[0] != weights.shape[0]
                or (identity.shape[1] > self.n_identity)
            ):
                raise ConfigError(
                    f"Rig '{self.name}': identity must be (B={weights.shape[0]}, K<="
                    f"{self.n_identity}), got {tuple(identity.shape)}"
                )
            out = out + identity @ basis[: identity.shape[1]]
        return out.reshape(weights.shape[0], -1, 3)

    # ------------------------------------------------------------------ derived rigs
    def with_neutral(self, neutral: np.ndarray, name: str | None = None) -> Rig:
        """Returns a copy with another (V, 3) neutral (same topology and deltas)."""
        return replace(self, neutral=neutral, name=name or self.name)

    def with_identity(self, identity: np.ndarray, name: str | None = None) -> Rig:
        """Returns a copy whose neutral is the face of these identity coefficients (K',)."""
        return self.with_neutral(self.identity_shape(identity), name)

    def split_uv_seams(self, name: str | None = None) -> tuple[Rig, np.ndarray]:
        """Returns a copy with per-vertex UVs, and the (V',) int64 source vertex of each vertex.

        A rig with per-corner UVs ((F, 3, 2), as ICT FaceKit's UDIM tiles) has vertices whose
        corners carry different UVs (texture seams); renderers and glTF need one UV per vertex,
        so each distinct (vertex, UV) pair becomes a vertex. Everything per vertex (neutral,
        deltas, identity modes) is gathered with the returned map, landmark vertices point at one
        copy, and the triangles keep their order, so ``face_material`` stays valid. A rig that
        already has per-vertex UVs (or none) comes back as it is with the identity map.

        Returns:
            (the rig, src) where ``rig.neutral == self.neutral[src]``.
        """
        if self.uv is None or self.uv.shape == (self.n_vertices, 2):
            return self, np.arange(self.n_vertices, dtype=np.int64)
        corner_v = self.faces.reshape(-1).astype(np.int64)
        corner_uv = self.uv.reshape(-1, 2)
        # Exact float keys: corners of one vertex on one side of a seam store the same UV.
        key = np.column_stack([corner_v.astype(np.float64), corner_uv.astype(np.float64)])
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        src = corner_v[first]
        uv = corner_uv[first]
        faces = inverse.reshape(-1, 3).astype(np.int32)
        lmk = None
        if self.landmark_vertices is not None:
            # The first copy of each source vertex (np.unique sorts by vertex id first).
            first_copy = np.full(self.n_vertices, -1, np.int64)
            first_copy[src[::-1]] = np.arange(len(src))[::-1]
            lmk = first_copy[self.landmark_vertices]
        basis = None if self.identity_basis is None else self.identity_basis[:, src]
        rig = replace(
            self,
            neutral=self.neutral[src],
            faces=faces,
            deltas=self.deltas[:, src],
            uv=uv,
            identity_basis=basis,
            landmark_vertices=lmk,
            name=name or self.name,
        )
        return rig, src

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Returns the (68, 3) landmark positions of (V, 3) vertices.

        Raises:
            ConfigError: the rig has no landmark vertices.
        """
        if self.landmark_vertices is None:
            raise ConfigError(f"Rig '{self.name}': this rig has no landmark vertices")
        return np.asarray(vertices)[self.landmark_vertices]

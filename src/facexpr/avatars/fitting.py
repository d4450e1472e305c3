"""Fitting the ICT FaceKit morphable model to 2D landmarks: blendshapes, identity and pose.

The model is restricted to the vertices that correspond to detected landmarks (the 68 iBUG points
by ICT's own ``landmarks68`` vertex list, or any other documented correspondence). For each frame
we solve for 53 expression weights in [0, 1], a rigid pose and, shared by every frame of one
tracked face, identity coefficients, minimising

    sum_i  c_i * huber(|| project(R (n_i + E_i w + I_i b) + t) - l_i || / d_io)
    + lambda_id ||b||^2 + lambda_l1 sum(w) + lambda_t sum_t ||w_t - w_{t-1}||^2

with a pinhole camera (focal length = image width unless given, principal point at the centre),
``d_io`` the inter-ocular distance in px, ``c_i`` per-landmark confidences (the jaw contour,
which slides along the silhouette on turned heads, is down-weighted). The optimiser is projected
Adam in torch (weights = sigmoid of free parameters), batched over frames, initialised by
``cv2.solvePnP`` of the neutral model. The residual (mean landmark error / inter-ocular distance)
marks unreliable fits.

Coordinates: ICT is in cm, +y up, the face looks toward +z; the camera frame is x right, y down,
z forward, so a model point X maps to R @ diag(1, -1, -1) @ X + t.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

import numpy as np

from facexpr.core.errors import ConfigError

if TYPE_CHECKING:
    # Imported where used: the default (alternating) solver runs in numpy, without torch.
    import torch

log = logging.getLogger(__name__)

_FLIP = np.diag([1.0, -1.0, -1.0]).astype(np.float32)
# iBUG 68: jaw contour 0-16, eyes 36-41 (subject's right) and 42-47 (left).
CONTOUR = tuple(range(17))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
# MediaPipe Face Mesh: eye corners (subject's right eye 33/133, left 362/263) and the face oval,
# which like the iBUG jaw contour follows the silhouette rather than fixed skin points.
MESH_RIGHT_EYE = (33, 133, 160, 158, 153, 144)
MESH_LEFT_EYE = (362, 263, 385, 387, 380, 373)
MESH_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
Points = Literal["ibug68", "mesh468"]


@cache
def correspondence() -> dict:
    """Returns the measured front-end-point -> ICT vertex correspondence.

    Built by ``scripts/build_landmark_correspondence.py`` (renders of ICT heads, front-end run on
    them, nearest vertex over all renders); keys ``ibug68`` and ``mesh468`` (vertex ids) and their
    RMS residuals in inter-ocular units.
    """
    text = resources.files("facexpr.avatars").joinpath("resources/ict_correspondence.json")
    return json.loads(text.read_text("utf-8"))


@dataclass(frozen=True)
class LandmarkModel:
    """The morphable model at the landmark vertices.

    Attributes:
        neutral: (N, 3) float32 cm.
        expression: (C, N, 3) float32 cm per unit weight.
        identity: (K, N, 3) float32 cm per unit coefficient (coefficients ~ N(0, 1)).
        channel_names: C names.
        landmark_weights: (N,) float32 confidence of each landmark's correspondence.
    """

    neutral: np.ndarray
    expression: np.ndarray
    identity: np.ndarray
    channel_names: tuple[str, ...]
    landmark_weights: np.ndarray
    eyes: tuple[tuple[int, ...], tuple[int, ...]] = (RIGHT_EYE, LEFT_EYE)

    @classmethod
    def from_arrays(
        cls,
        neutral: np.ndarray,
        expression_deltas: np.ndarray,
        identity_deltas: np.ndarray,
        vertex_ids: np.ndarray,
        channel_names: tuple[str, ...],
        *,
        contour_weight: float = 0.3,
        points: Points = "ibug68",
    ) -> LandmarkModel:
        """Returns the model restricted to ``vertex_ids`` (one vertex per landmark).

        Args:
            neutral: (V, 3) full-mesh neutral.
            expression_deltas: (C, V, 3).
            identity_deltas: (K, V, 3).
            vertex_ids: (68,) vertex of each iBUG landmark.
            channel_names: C names.
            contour_weight: weight of the silhouette points (iBUG jaw 0-16, the mesh's oval).
            points: which landmark layout ``vertex_ids`` follows.
        """
        ids = np.asarray(vertex_ids, np.int64)
        if len(channel_names) != expression_deltas.shape[0]:
            raise ConfigError(
                f"{len(channel_names)} channel names for {expression_deltas.shape[0]} shapes"
            )
        w = np.ones(len(ids), np.float32)
        eyes = (RIGHT_EYE, LEFT_EYE)
        if points == "ibug68":
            w[list(CONTOUR)] = contour_weight
        else:
            w[list(MESH_OVAL)] = contour_weight
            eyes = (MESH_RIGHT_EYE, MESH_LEFT_EYE)
        return cls(
            neutral=np.asarray(neutral[ids], np.float32),
            expression=np.asarray(expression_deltas[:, ids], np.float32),
            identity=np.asarray(identity_deltas[:, ids], np.float32),
            channel_names=tuple(channel_names),
            landmark_weights=w,
            eyes=eyes,
        )

    @classmethod
    def from_rig(
        cls,
        rig,
        *,
        points: Points = "ibug68",
        n_identity: int | None = None,
        contour_weight: float = 0.3,
    ) -> LandmarkModel:
        """Returns the model of an ICT FaceKit :class:`facexpr.avatars.rig.Rig` at the vertices
        measured to correspond to the front-end's points (see :func:`correspondence`).

        Raises:
            ConfigError: the rig is not ICT FaceKit's topology.
        """
        ids = np.asarray(correspondence()[points])
        if rig.neutral.shape[0] <= ids.max() or getattr(rig, "landmark_vertices", None) is None:
            raise ConfigError(
                f"rig '{getattr(rig, 'name', '?')}' is not the ICT FaceKit topology, so the "
                "landmark correspondence does not apply"
            )
        basis = rig.identity_basis
        if basis is None:
            basis = np.zeros((0, *rig.neutral.shape), np.float32)
        if n_identity is not None:
            basis = basis[:n_identity]
        return cls.from_arrays(
            rig.neutral,
            np.asarray(rig.deltas, np.float32),
            np.asarray(basis, np.float32),
            ids,
            tuple(rig.channel_names),
            contour_weight=contour_weight,
            points=points,
        )

    @property
    def n_channels(self) -> int:
        return int(self.expression.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity.shape[0])

    def shape(self, weights: np.ndarray, identity: np.ndarray | None = None) -> np.ndarray:
        """Returns the (..., N, 3) landmark positions in cm for (..., C) weights."""
        out = self.neutral + np.einsum("...c,cnk->...nk", weights, self.expression)
        if identity is not None:
            out = out + np.einsum("...k,knd->...nd", identity, self.identity)
        return out


@dataclass
class FitOptions:
    """How hard to fit and how strongly to regularise.

    Attributes:
        solver: "alternating" (default): rounds of (pose by PnP, expression by bounded linear
            least squares of the linearised projection, identity by ridge regression), the
            classic fitting scheme, fast and precise; "adam": joint first-order optimisation of
            everything in torch (differentiable, runs on GPU).
        rounds: rounds of the alternating solver.
        iterations: Adam steps of the joint stage (a pose-only stage of a third as many runs
            first).
        lr: Adam learning rate (weights and identity; pose uses a tenth for rotation).
        identity_prior: weight of ||b||^2 (identity coefficients ~ N(0, 1)), per frame.
        expression_l1: weight of sum(w), favouring sparse activations. Both are relative to the
            data term sum_i c_i (error_i / inter-ocular distance)^2; tuned on synthetic renders
            of seeds other than the benchmark's.
        temporal: weight of squared frame-to-frame weight differences (video).
        antagonist: weight of the products w_a * w_b of antagonist channels (jawLeft and
            jawRight, ...: :data:`ANTAGONISTS`), alternating solver only.
        huber: Huber transition in units of the inter-ocular distance.
        max_residual: fits with mean error / inter-ocular distance above this are unreliable.
        fit_identity: solve for identity (else neutral identity).
    """

    solver: Literal["alternating", "adam"] = "alternating"
    rounds: int = 8
    iterations: int = 200
    lr: float = 0.05
    identity_prior: float = 1e-2
    expression_l1: float = 1e-2
    temporal: float = 0.0
    antagonist: float = 0.05
    huber: float = 0.05
    max_residual: float = 0.06
    fit_identity: bool = True

    def __post_init__(self) -> None:
        if self.solver not in ("alternating", "adam"):
            raise ConfigError(f"solver must be 'alternating' or 'adam', not {self.solver!r}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, not {self.rounds}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, not {self.iterations}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, not {self.lr}")
        for name in (
            "identity_prior",
            "expression_l1",
            "temporal",
            "antagonist",
            "huber",
            "max_residual",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, not {getattr(self, name)}")


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters of T frames of one face.

    Attributes:
        weights: (T, C) float32 in [0, 1], expression channel weights.
        identity: (K,) float32 identity coefficients shared by the frames.
        rotation: (T, 3) float32 axis-angle (radians) of the head, camera frame.
        translation: (T, 3) float32 cm, camera frame.
        residual: (T,) float32 mean landmark error / inter-ocular distance.
        reliable: (T,) bool, residual <= max_residual.
        channel_names: C names.
    """

    weights: np.ndarray
    identity: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    residual: np.ndarray
    reliable: np.ndarray
    channel_names: tuple[str, ...]


def _rodrigues(r: torch.Tensor) -> torch.Tensor:
    """(T, 3) axis-angle -> (T, 3, 3) rotation matrices."""
    import torch

    theta = torch.linalg.norm(r, dim=-1, keepdim=True).clamp_min(1e-8)
    k = r / theta
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    kmat = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(kmat)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    return eye + s * kmat + (1 - c) * (kmat @ kmat)


def _init_pose(
    model: LandmarkModel, landmarks: np.ndarray, camera: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    pts3 = (model.neutral @ _FLIP.T).astype(np.float64)
    use = model.landmark_weights >= 0.99
    rots, trans = [], []
    for lm in landmarks:
        ok, rvec, tvec = cv2.solvePnP(
            pts3[use], lm[use].astype(np.float64), camera, None, flags=cv2.SOLVEPNP_EPNP
        )
        if ok:
            ok, rvec, tvec = cv2.solvePnP(
                pts3[use],
                lm[use].astype(np.float64),
                camera,
                None,
                rvec,
                tvec,
                True,
                flags=cv2.SOLVEPNP_ITERATIVE,
            )
        if not ok or tvec[2, 0] <= 0:
            rvec = np.zeros((3, 1))
            tvec = np.array([[0.0], [0.0], [60.0]])
        rots.append(rvec[:, 0])
        trans.append(tvec[:, 0])
    return np.asarray(rots, np.float32), np.asarray(trans, np.float32)


def interocular(
    landmarks: np.ndarray, eyes: tuple[tuple[int, ...], tuple[int, ...]] = (RIGHT_EYE, LEFT_EYE)
) -> np.ndarray:
    """Returns the (T,) distance in px between the eye centres of (T, N, 2) landmarks."""
    r = landmarks[:, list(eyes[0])].mean(axis=1)
    left = landmarks[:, list(eyes[1])].mean(axis=1)
    return np.linalg.norm(left - r, axis=-1)


def fit_landmarks(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    model: LandmarkModel,
    options: FitOptions | None = None,
    *,
    focal: float | None = None,
    identity: np.ndarray | None = None,
    device: str = "cpu",
) -> FitResult:
    """Fits expression weights, pose and a shared identity to the landmarks of one face.

    Args:
        landmarks: (T, N, 2) px, N = the model's landmark count (frames of one tracked face, or
            T = 1 for a photo).
        image_size: (width, height) px of the frames.
        model: the morphable model at the landmarks.
        options: see :class:`FitOptions`.
        focal: focal length in px (default: image width).
        identity: (K,) fixed identity coefficients (skips identity fitting).
        device: torch device of the "adam" solver ("auto": CUDA if available); the default
            "alternating" solver runs in numpy and ignores it.

    Returns:
        the fitted parameters and per-frame residuals.
    """
    o = options or FitOptions()
    lm = np.asarray(landmarks, np.float32)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1:] != (model.neutral.shape[0], 2):
        raise ConfigError(
            f"landmarks must be (T, {model.neutral.shape[0]}, 2), got {tuple(landmarks.shape)}"
        )
    if not np.isfinite(lm).all():
        raise ConfigError("landmarks contain NaN or inf (drop frames without a face first)")
    w_img, h_img = image_size
    f = float(focal or w_img)
    camera = np.array([[f, 0, w_img / 2], [0, f, h_img / 2], [0, 0, 1]], np.float64)
    rot0, trans0 = _init_pose(model, lm, camera)
    if o.solver == "alternating":
        return _fit_alternating(model, lm, camera, o, rot0, trans0, identity)
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    t_frames = lm.shape[0]
    dev = torch.device(device)
    tt = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=dev)  # noqa: E731

    neutral = tt(model.neutral @ _FLIP.T)  # camera-oriented model
    expr = tt(model.expression @ _FLIP.T).reshape(model.n_channels, -1)
    ident_basis = tt(model.identity @ _FLIP.T).reshape(model.n_identity, -1)
    conf = tt(model.landmark_weights)
    target = tt(lm)
    scale = tt(interocular(lm, model.eyes)).clamp_min(1.0)
    fc = torch.tensor([f, f], device=dev)
    cc = torch.tensor([w_img / 2, h_img / 2], device=dev)

    # w = sigmoid(theta): bounded in (0, 1) with gradients that never vanish at a bound, unlike
    # clamping, where channels pushed below 0 early stay stuck there.
    theta = torch.full((t_frames, model.n_channels), -4.0, device=dev, requires_grad=True)
    rot = tt(rot0).requires_grad_(True)
    trans = tt(trans0).requires_grad_(True)
    fixed_identity = identity is not None or not o.fit_identity
    ident = tt(
        identity if identity is not None else np.zeros(model.n_identity, np.float32)
    ).requires_grad_(not fixed_identity)

    def residuals() -> torch.Tensor:
        weights = torch.sigmoid(theta)
        shape = neutral.reshape(1, -1) + weights @ expr + (ident @ ident_basis)[None]
        pts = shape.view(t_frames, -1, 3) @ _rodrigues(rot).transpose(1, 2) + trans[:, None]
        z = pts[..., 2:3].clamp_min(1e-3)
        proj = pts[..., :2] / z * fc + cc
        return torch.linalg.norm(proj - target, dim=-1) / scale[:, None]  # (T, N)

    def loss_fn(stage_pose_only: bool) -> torch.Tensor:
        r = residuals()
        weights = torch.sigmoid(theta)
        h = o.huber
        rob = torch.where(r < h, 0.5 * r**2, h * (r - 0.5 * h))
        loss = (rob * conf).sum(-1).mean() / conf.sum()
        if not stage_pose_only:
            # The data term here is about sum_i c_i r_i^2 / (2 sum_i c_i): rescale the priors.
            k = 1.0 / (2.0 * float(conf.sum()))
            loss = loss + k * o.expression_l1 * weights.sum(-1).mean()
            if not fixed_identity:
                loss = loss + k * o.identity_prior * (ident**2).sum()
            if o.temporal > 0 and t_frames > 1:
                loss = loss + o.temporal * ((weights[1:] - weights[:-1]) ** 2).sum(-1).mean()
        return loss

    # Stage 1: rigid pose only (neutral face); stage 2: everything.
    pose_opt = torch.optim.Adam(
        [{"params": [rot], "lr": o.lr * 0.1}, {"params": [trans]}], lr=o.lr * 10
    )
    for _ in range(max(1, o.iterations // 3)):
        pose_opt.zero_grad()
        loss_fn(True).backward()
        pose_opt.step()
    groups = [
        {"params": [theta], "lr": o.lr * 4},
        {"params": [rot], "lr": o.lr * 0.1},
        {"params": [trans], "lr": o.lr * 10},
    ]
    if not fixed_identity:
        groups.append({"params": [ident], "lr": o.lr * 2})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, o.iterations)
    for _ in range(o.iterations):
        opt.zero_grad()
        loss_fn(False).backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        res = (residuals() * conf).sum(-1) / conf.sum()
    res_np = res.cpu().numpy().astype(np.float32)
    if not math.isfinite(float(res_np.mean())):
        log.warning("fit diverged (non-finite residual)")
    return FitResult(
        weights=torch.sigmoid(theta).detach().cpu().numpy(),
        identity=ident.detach().cpu().numpy(),
        rotation=rot.detach().cpu().numpy(),
        translation=trans.detach().cpu().numpy(),
        residual=res_np,
        reliable=res_np <= o.max_residual,
        channel_names=model.channel_names,
    )


def project_model(
    model: LandmarkModel,
    weights: np.ndarray,
    identity: np.ndarray | None,
    rotation: np.ndarray,
    translation: np.ndarray,
    image_size: tuple[int, int],
    focal: float | None = None,
) -> np.ndarray:
    """Returns the (T, N, 2) px projections of the model's landmarks (the fit's forward model).

    Args:
        weights: (T, C); identity: (K,) or None; rotation: (T, 3) axis-angle; translation: (T, 3)
            cm; image_size: (width, height); focal: px (default: width).
    """
    import cv2

    w_img, h_img = image_size
    f = float(focal or w_img)
    pts = model.shape(np.atleast_2d(weights), identity) @ _FLIP.T
    out = []
    for p, r, t in zip(pts, np.atleast_2d(rotation), np.atleast_2d(translation), strict=True):
        rm, _ = cv2.Rodrigues(r.astype(np.float64))
        cam = p @ rm.T.astype(np.float32) + t
        out.append(cam[:, :2] / cam[:, 2:3] * f + np.array([w_img / 2, h_img / 2]))
    return np.asarray(out, np.float32)


def _project_np(pts: np.ndarray, f: float, c: np.ndarray) -> np.ndarray:
    return pts[..., :2] / np.maximum(pts[..., 2:3], 1e-3) * f + c


ANTAGONISTS: tuple[tuple[str, str], ...] = (
    ("jawLeft", "jawRight"),
    ("mouthLeft", "mouthRight"),
    ("eyeLookIn_L", "eyeLookOut_L"),
    ("eyeLookIn_R", "eyeLookOut_R"),
    ("eyeLookUp_L", "eyeLookDown_L"),
    ("eyeLookUp_R", "eyeLookDown_R"),
    ("mouthSmile_L", "mouthFrown_L"),
    ("mouthSmile_R", "mouthFrown_R"),
    ("mouthShrugLower", "mouthRollLower"),
    ("eyeWide_L", "eyeBlink_L"),
    ("eyeWide_R", "eyeBlink_R"),
)
"""Channel pairs that move the face in opposite directions: a fit that uses both at once explains
something else (identity, a landmark offset) with two cancelling actions."""


def _antagonist_matrix(names: tuple[str, ...]) -> np.ndarray:
    """Returns the (C, C) symmetric matrix P with P[a, b] = 1 for antagonist pairs (w'Pw/2 =
    sum of w_a * w_b)."""
    idx = {n: i for i, n in enumerate(names)}
    p = np.zeros((len(names), len(names)))
    for a, b in ANTAGONISTS:
        if a in idx and b in idx:
            p[idx[a], idx[b]] = p[idx[b], idx[a]] = 1.0
    return p


def _bounded_lsq(h: np.ndarray, g: np.ndarray, w: np.ndarray, sweeps: int = 20) -> np.ndarray:
    """Minimises 0.5 w'Hw - g'w over the box [0, 1]^C by projected coordinate descent.

    Args:
        h: (T, C, C) symmetric positive semi-definite; g: (T, C); w: (T, C) start (updated).
    """
    diag = np.maximum(np.einsum("tcc->tc", h), 1e-12)
    hw = np.einsum("tij,tj->ti", h, w)  # kept up to date as coordinates move
    for _ in range(sweeps):
        for j in range(w.shape[1]):
            new = np.clip(w[:, j] + (g[:, j] - hw[:, j]) / diag[:, j], 0.0, 1.0)
            step = new - w[:, j]
            w[:, j] = new
            hw += h[:, :, j] * step[:, None]
    return w


def _fit_alternating(
    model: LandmarkModel,
    lm: np.ndarray,
    camera: np.ndarray,
    o: FitOptions,
    rot: np.ndarray,
    trans: np.ndarray,
    identity: np.ndarray | None,
) -> FitResult:
    import cv2

    t_frames, n_pts, _ = lm.shape
    f = float(camera[0, 0])
    c = camera[:2, 2]
    flip = _FLIP.astype(np.float64)
    neutral = model.neutral.astype(np.float64) @ flip.T  # (N, 3), camera-oriented model
    expr = np.einsum("cnk,jk->njc", model.expression.astype(np.float64), flip)  # (N, 3, C)
    ident_b = np.einsum("knd,jd->njk", model.identity.astype(np.float64), flip)  # (N, 3, K)
    conf = np.sqrt(model.landmark_weights.astype(np.float64))[:, None]  # per residual row
    scale = np.maximum(interocular(lm, model.eyes), 1.0).astype(np.float64)  # (T,)
    fixed_identity = identity is not None or not o.fit_identity
    b = np.zeros(model.n_identity) if identity is None else np.asarray(identity, np.float64)
    w = np.zeros((t_frames, model.n_channels))
    rot = rot.astype(np.float64).copy()
    trans = trans.astype(np.float64).copy()
    target = lm.astype(np.float64)
    n_res = n_pts * 2

    def shapes() -> np.ndarray:
        return neutral + np.einsum("ncj,tj->tnc", expr, w) + (ident_b @ b)[None]

    def linearise(x: np.ndarray, basis: np.ndarray):
        """Rows of d(projection)/d(coefficients) at shapes x: (T, N*2, M) and residuals."""
        rm = np.stack([cv2.Rodrigues(r)[0] for r in rot])  # (T, 3, 3)
        p = np.einsum("tij,tnj->tni", rm, x) + trans[:, None]
        z = np.maximum(p[..., 2], 1e-3)
        jac = np.zeros((t_frames, n_pts, 2, 3))
        jac[..., 0, 0] = f / z
        jac[..., 1, 1] = f / z
        jac[..., 0, 2] = -f * p[..., 0] / z**2
        jac[..., 1, 2] = -f * p[..., 1] / z**2
        jr = jac @ rm[:, None]  # (T, N, 2, 3)
        a = (jr @ basis[None]) * conf[None, :, :, None]  # (T, N, 2, M), batched BLAS
        r = (target - _project_np(p, f, c)) * conf[None]
        inv = 1.0 / scale[:, None, None, None]
        return (a * inv).reshape(t_frames, n_res, -1), (r[..., None] * inv).reshape(t_frames, n_res)

    # PnP on a spread subset of the stable points: as accurate, and 4x cheaper than all of them.
    use = np.flatnonzero(model.landmark_weights >= 0.99)
    if len(use) > 120:
        use = use[:: len(use) // 120]
    for _ in range(o.rounds):
        x = shapes()
        for t in range(t_frames):  # rigid pose of each frame's current shape
            ok, rv, tv = cv2.solvePnP(
                x[t][use], target[t][use], camera, None, flags=cv2.SOLVEPNP_SQPNP
            )
            if ok and tv[2, 0] > 0:
                rot[t], trans[t] = rv[:, 0], tv[:, 0]
        # expression: min ||A dw - r||^2 + l1 * sum(w) + temporal, w in [0, 1]
        a, r = linearise(x, expr)
        at = a.transpose(0, 2, 1)
        h = at @ a
        g = (at @ (r + (a @ w[..., None])[..., 0])[..., None])[..., 0] - 0.5 * o.expression_l1
        if o.temporal > 0 and t_frames > 1:
            lap = np.zeros((t_frames, 1))
            nb = np.zeros_like(w)
            nb[1:] += w[:-1]
            nb[:-1] += w[1:]
            lap[1:] += 1
            lap[:-1] += 1
            h = h + o.temporal * lap[:, :, None] * np.eye(w.shape[1])[None]
            g = g + o.temporal * nb
        if o.antagonist > 0:
            h = h + o.antagonist * _antagonist_matrix(model.channel_names)[None]
        w = _bounded_lsq(h, g, w.copy())
        if not fixed_identity and model.n_identity:
            a_id, r_id = linearise(shapes(), ident_b)
            a_id = a_id.reshape(-1, model.n_identity)
            rhs = r_id.reshape(-1) + a_id @ b
            lhs = a_id.T @ a_id + o.identity_prior * t_frames * np.eye(model.n_identity)
            b = np.linalg.solve(lhs, a_id.T @ rhs)
    x = shapes()
    rm = np.stack([cv2.Rodrigues(r)[0] for r in rot])
    proj = _project_np(np.einsum("tij,tnj->tni", rm, x) + trans[:, None], f, c)
    err = np.linalg.norm(proj - target, axis=-1) / scale[:, None]
    wts = model.landmark_weights.astype(np.float64)
    res = ((err * wts).sum(-1) / wts.sum()).astype(np.float32)
    return FitResult(
        weights=w.astype(np.float32),
        identity=b.astype(np.float32),
        rotation=rot.astype(np.float32),
        translation=trans.astype(np.float32),
        residual=res,
        reliable=res <= o.max_residual,
        channel_names=model.channel_names,
    )

"""Masked autoencoder pretraining of a ViT encoder (He et al. 2022, "Masked Autoencoders Are
Scalable Vision Learners", arXiv:2111.06377), as MAE-Face pretrains on faces.

The steps, one method each, in the paper's order: :meth:`~MaskedAutoencoder.patchify` the
image, :meth:`~MaskedAutoencoder.random_masking` keeps a random 25 % of the patch tokens,
:meth:`~MaskedAutoencoder.forward_encoder` runs the encoder on the kept tokens only,
:meth:`~MaskedAutoencoder.forward_decoder` (a light transformer) fills the masked positions with a
learned mask token and predicts every patch's pixels, and :meth:`~MaskedAutoencoder.forward_loss`
is the mean squared error on the masked patches, against per-patch normalised pixels
(``norm_pix_loss``, the paper's better target).

The wrapper holds the encoder as ``self.encoder`` and uses its own modules unchanged (patch
embedding, class token, position embedding, blocks, final norm), so after pretraining
``mae.encoder`` (or its state dict) is a plain :class:`~facexpr.nn.vit.VisionTransformer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facexpr.core.errors import ConfigError, InputError
from facexpr.nn.vit import Block, VisionTransformer, init_weights, sincos_pos_embed_2d

__all__ = ["MaskedAutoencoder", "Reconstruction"]


@dataclass(frozen=True)
class Reconstruction:
    """What :meth:`MaskedAutoencoder.reconstruct` returns, for a reconstructions PNG.

    Attributes:
        original: (B, C, H, W) float32 in [0, 1], the input images.
        masked: (B, C, H, W) float32 in [0, 1], the input with masked patches grey (0.5).
        predicted: (B, C, H, W) float32 in [0, 1], the decoder's prediction of every patch.
        pasted: (B, C, H, W) float32 in [0, 1], visible patches from the input, masked ones
            predicted (what the model actually fills in).
        mask: (B, N) float32, 1 = masked patch.
        loss: the batch's pretraining loss.
    """

    original: torch.Tensor
    masked: torch.Tensor
    predicted: torch.Tensor
    pasted: torch.Tensor
    mask: torch.Tensor
    loss: float


class MaskedAutoencoder(nn.Module):
    """MAE around a :class:`VisionTransformer` encoder.

    Args:
        encoder: the encoder to pretrain (used in place, its modules unchanged).
        decoder_dim: decoder token width (a multiple of 4 and of ``decoder_num_heads``).
        decoder_depth: decoder blocks (the paper's light decoder: few and narrow).
        decoder_num_heads: decoder attention heads.
        mask_ratio: share of patches masked, in (0, 1); 0.75 as the paper.
        norm_pix_loss: regress per-patch normalised pixels (mean 0, variance 1 per patch).

    Raises:
        ConfigError: invalid sizes or mask ratio.
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        decoder_dim: int = 256,
        decoder_depth: int = 4,
        decoder_num_heads: int = 8,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, VisionTransformer):
            raise ConfigError(
                f"MaskedAutoencoder needs a VisionTransformer encoder, got {type(encoder).__name__}"
            )
        if decoder_dim < 4 or decoder_dim % 4 or decoder_dim % decoder_num_heads:
            raise ConfigError(
                f"MaskedAutoencoder: decoder_dim {decoder_dim} must be a multiple of 4 and of "
                f"decoder_num_heads {decoder_num_heads}"
            )
        if decoder_depth < 1:
            raise ConfigError(f"MaskedAutoencoder: decoder_depth must be >= 1, got {decoder_depth}")
        self._check_ratio(mask_ratio, encoder.num_patches)
        self.encoder = encoder
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        cfg = encoder.config
        self.patch_size = cfg.patch_size
        self.in_chans = cfg.in_chans
        self.decoder_embed = nn.Linear(cfg.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer(
            "decoder_pos_embed", sincos_pos_embed_2d(decoder_dim, cfg.grid_size)[None]
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_num_heads) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, cfg.patch_size**2 * cfg.in_chans)
        # Initialise only the decoder: the encoder keeps the weights it came with.
        nn.init.normal_(self.mask_token, std=0.02)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(init_weights)

    @staticmethod
    def _check_ratio(ratio: float, num_patches: int) -> None:
        if not 0.0 < ratio < 1.0 or int(num_patches * (1 - ratio)) < 1:
            raise ConfigError(
                f"mask_ratio must be in (0, 1) and keep at least one of {num_patches} patches, "
                f"got {ratio}"
            )

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """Returns (B, N, p*p*C) patches, row-major, of (B, C, H, W) images."""
        p, c = self.patch_size, self.in_chans
        b, _, h, w = imgs.shape
        x = imgs.reshape(b, c, h // p, p, w // p, p)
        return torch.einsum("bchpwq->bhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (B, C, H, W) images of (B, N, p*p*C) patches (inverse of :meth:`patchify`)."""
        p, c = self.patch_size, self.in_chans
        b = x.shape[0]
        g = self.encoder.config.grid_size
        x = x.reshape(b, g, g, p, p, c)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(b, c, g * p, g * p)

    def random_masking(
        self, x: torch.Tensor, mask_ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keeps a random subset of tokens per sample (shuffle by uniform noise, keep the first).

        Uses torch's global RNG, so a seeded run (and a resumed one that restores the RNG state)
        masks the same patches.

        Args:
            x: (B, N, D) patch tokens.
            mask_ratio: share of tokens to drop.

        Returns:
            kept (B, N_keep, D) tokens; mask (B, N) float32, 1 = dropped, in original order;
            ids_restore (B, N) int64 that undoes the shuffle.
        """
        b, n, d = x.shape
        keep = int(n * (1 - mask_ratio))
        noise = torch.rand(b, n, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return kept, mask, ids_restore

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the encoder's (B, 1 + N_keep, D) tokens of the kept patches, the mask and
        ids_restore (see :meth:`random_masking`)."""
        enc = self.encoder
        x = enc.patch_embed(imgs) + enc.pos_embed[:, 1:]
        x, mask, ids_restore = self.random_masking(x, mask_ratio)
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in enc.blocks:
            x = block(x)
        return enc.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Returns (B, N, p*p*C) predicted patches from the encoder's kept tokens."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        masks = self.mask_token.expand(b, n + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], masks], dim=1)  # kept first, then mask tokens
        patches = torch.gather(patches, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Returns the (B, N, p*p*C) regression target: patches, per-patch normalised if asked."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward_loss(
        self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Returns the mean squared error over masked patches (a scalar)."""
        per_patch = ((pred - self.target(imgs)) ** 2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (loss, pred (B, N, p*p*C), mask (B, N)) of (B, C, H, W) normalised images.

        Raises:
            ConfigError: invalid ``mask_ratio``. InputError: images of the wrong shape.
        """
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        self._check_ratio(ratio, self.encoder.num_patches)
        latent, mask, ids_restore = self.forward_encoder(imgs, ratio)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    @torch.no_grad()
    def reconstruct(
        self,
        imgs: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        mask_ratio: float | None = None,
    ) -> Reconstruction:
        """Returns input, masked input and reconstructions as [0, 1] images, for a PNG.

        With ``norm_pix_loss`` the decoder predicts normalised patches; they are shown with each
        true patch's mean and variance put back, as MAE's visualisations do (so the colour of a
        masked patch comes from the input; its structure from the model).

        Args:
            imgs: (B, C, H, W) images normalised with ``mean``/``std``.
            mean, std: the normalisation (the card's), to map back to [0, 1].
            mask_ratio: defaults to the model's.
        """
        if len(mean) != self.in_chans or len(std) != self.in_chans:
            raise InputError(None, f"reconstruct needs {self.in_chans} mean and std values")
        was_training = self.training
        self.eval()
        try:
            loss, pred, mask = self(imgs, mask_ratio)
        finally:
            self.train(was_training)
        if self.norm_pix_loss:
            patches = self.patchify(imgs)
            mu = patches.mean(dim=-1, keepdim=True)
            var = patches.var(dim=-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mu
        m = torch.tensor(mean, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)

        def to01(x: torch.Tensor) -> torch.Tensor:
            return (x * s + m).clamp(0, 1)

        pixel_mask = self.unpatchify(mask[..., None].expand(-1, -1, pred.shape[-1]))
        predicted = self.unpatchify(pred)
        original = to01(imgs)
        return Reconstruction(
            original=original,
            masked=original * (1 - pixel_mask) + 0.5 * pixel_mask,
            predicted=to01(predicted),
            pasted=to01(imgs * (1 - pixel_mask) + predicted * pixel_mask),
            mask=mask,
            loss=float(loss),
        )

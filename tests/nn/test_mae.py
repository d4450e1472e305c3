"""The masked autoencoder: patch round trip, masking, the loss falls, the encoder stays plain."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facexpr.core.errors import ConfigError, InputError
from facexpr.nn.mae import MaskedAutoencoder
from facexpr.nn.vit import FACE_MEAN, FACE_STD, VisionTransformer

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4}


def _mae(**kw) -> MaskedAutoencoder:
    return MaskedAutoencoder(
        VisionTransformer(**TINY), decoder_dim=32, decoder_depth=1, decoder_num_heads=2, **kw
    )


def _similar_images(n: int, seed: int = 0) -> torch.Tensor:
    # Smooth images around one shared layout (as aligned faces share one), so that masked
    # patches are predictable from the visible ones and from their position.
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 3, 4, 4, generator=g) + 0.2 * torch.randn(n, 3, 4, 4, generator=g)
    return F.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False)


def test_patchify_round_trip_and_layout():
    mae = _mae()
    x = torch.randn(2, 3, 32, 32)
    patches = mae.patchify(x)
    assert tuple(patches.shape) == (2, 16, 8 * 8 * 3)
    assert torch.equal(mae.unpatchify(patches), x)
    # patch 1 is row 0, column 1: pixels [0:8, 8:16], channels last
    assert torch.equal(patches[0, 1].reshape(8, 8, 3), x[0, :, 0:8, 8:16].permute(1, 2, 0))


def test_random_masking_keeps_a_quarter_and_restores_order():
    torch.manual_seed(0)
    mae = _mae()
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 16, 1)
    kept, mask, ids_restore = mae.random_masking(x, 0.75)
    assert tuple(kept.shape) == (2, 4, 1)
    assert mask.sum(1).tolist() == [12.0, 12.0]
    # the kept tokens are exactly the unmasked positions
    for b in range(2):
        assert sorted(kept[b, :, 0].tolist()) == x[b, mask[b] == 0, 0].tolist()
    assert torch.equal(torch.sort(ids_restore, dim=1).values, torch.arange(16).expand(2, -1))


def test_forward_shapes_and_mask_ratio_override():
    torch.manual_seed(0)
    mae = _mae()
    loss, pred, mask = mae(torch.randn(2, 3, 32, 32))
    assert loss.ndim == 0
    assert tuple(pred.shape) == (2, 16, 192)
    assert mask.sum().item() == 24
    _, _, mask = mae(torch.randn(2, 3, 32, 32), mask_ratio=0.5)
    assert mask.sum().item() == 16


def test_loss_falls_within_a_few_dozen_cpu_steps():
    torch.manual_seed(0)
    mae = _mae()
    imgs = _similar_images(8)
    opt = torch.optim.AdamW(mae.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss, _, _ = mae(imgs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses
    # below 1.0, the loss of predicting zeros (the mean of per-patch normalised pixels)
    assert last < 0.9, losses


def test_encoder_state_dict_loads_into_a_plain_encoder():
    torch.manual_seed(0)
    encoder = VisionTransformer(**TINY)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    mae = MaskedAutoencoder(encoder, decoder_dim=32, decoder_depth=1, decoder_num_heads=2)
    # wrapping initialises only the decoder
    assert all(torch.equal(before[k], v) for k, v in mae.encoder.state_dict().items())
    enc_keys = {k[len("encoder.") :] for k in mae.state_dict() if k.startswith("encoder.")}
    assert enc_keys == set(before)
    opt = torch.optim.SGD(mae.parameters(), lr=0.1)
    loss, _, _ = mae(torch.randn(2, 3, 32, 32))
    loss.backward()
    opt.step()
    assert not torch.equal(mae.encoder.patch_embed.proj.weight, before["patch_embed.proj.weight"])
    plain = VisionTransformer(**TINY).eval()
    plain.load_state_dict(mae.encoder.state_dict())  # strict: same names, same shapes
    mae.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), mae.encoder(x))


def test_reconstruct_gives_images_in_unit_range():
    torch.manual_seed(0)
    mae = _mae()
    mean, std = torch.tensor(FACE_MEAN).view(1, 3, 1, 1), torch.tensor(FACE_STD).view(1, 3, 1, 1)
    raw = torch.rand(2, 3, 32, 32)
    rec = mae.reconstruct((raw - mean) / std, FACE_MEAN, FACE_STD)
    assert torch.allclose(rec.original, raw, atol=1e-5)
    for img in (rec.masked, rec.predicted, rec.pasted):
        assert tuple(img.shape) == (2, 3, 32, 32)
        assert img.min() >= 0
        assert img.max() <= 1
    visible = mae.unpatchify(rec.mask[..., None].expand(-1, -1, 192)) == 0
    assert torch.allclose(rec.pasted[visible], raw[visible], atol=1e-5)
    assert torch.allclose(rec.masked[~visible], torch.full_like(rec.masked[~visible], 0.5))
    assert mae.training  # mode restored


def test_bad_options_and_inputs():
    with pytest.raises(ConfigError, match=r"mask_ratio must be in \(0, 1\)"):
        _mae(mask_ratio=1.0)
    with pytest.raises(ConfigError, match=r"mask_ratio must be in \(0, 1\)"):
        _mae()(torch.randn(1, 3, 32, 32), mask_ratio=0.0)
    with pytest.raises(ConfigError, match=r"decoder_dim 30 must be a multiple of 4"):
        MaskedAutoencoder(VisionTransformer(**TINY), decoder_dim=30, decoder_num_heads=2)
    with pytest.raises(ConfigError, match=r"needs a VisionTransformer encoder, got Linear"):
        MaskedAutoencoder(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match=r"expected a \(B, 3, 32, 32\) image tensor"):
        _mae()(torch.randn(1, 3, 16, 16))
    with pytest.raises(InputError, match=r"reconstruct needs 3 mean and std values"):
        _mae().reconstruct(torch.randn(1, 3, 32, 32), (0.5,), (0.5,))

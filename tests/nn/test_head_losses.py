"""Masked losses of the analysis heads: missing labels change nothing, empty batches give a zero
loss with zero gradients, soft CE renormalises over a source's classes, CCC by its definition."""

from __future__ import annotations

import math

import pytest
import torch

from facexpr.nn.losses import ccc, masked_bce, masked_ccc_loss, masked_mse, masked_soft_ce

LOSSES = {
    "soft_ce": masked_soft_ce,
    "mse": masked_mse,
    "bce": masked_bce,
    "ccc": masked_ccc_loss,
}


def _case(name: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b, k = 6, 8
    pred = torch.randn(b, k, generator=g)
    if name == "soft_ce":
        target = torch.softmax(torch.randn(b, k, generator=g), 1)
    elif name == "bce":
        target = (torch.rand(b, k, generator=g) > 0.5).float()
    else:
        target = torch.rand(b, k, generator=g)
    mask = torch.rand(b, k, generator=g) > 0.3
    mask[0] = True  # at least one full row
    if name == "soft_ce":
        mask[1] = False  # a row with no label at all
    return pred, target, mask


def _loss_and_grad(fn, pred, target, mask):
    p = pred.clone().requires_grad_(True)
    loss = fn(p, target, mask)
    loss.backward()
    return loss.detach(), p.grad


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_changing_a_masked_target_changes_neither_loss_nor_gradient(name):
    fn = LOSSES[name]
    pred, target, mask = _case(name)
    loss, grad = _loss_and_grad(fn, pred, target, mask)
    assert float(loss) > 0.0
    for junk in (7.0, -3.0, float("nan"), float("inf")):
        other = target.clone()
        other[~mask] = junk
        loss2, grad2 = _loss_and_grad(fn, pred, other, mask)
        assert torch.equal(loss2, loss), junk
        assert torch.equal(grad2, grad), junk
    # ... while changing a labelled target does change the loss (the check above can fail).
    moved = target.clone()
    r, c = (int(v) for v in torch.nonzero(mask)[0])
    moved[r, c] = moved[r, c] * 0.5 + 0.3
    if name == "soft_ce":
        moved[r] = moved[r] / moved[r].sum()
    loss3, _ = _loss_and_grad(fn, pred, moved, mask)
    assert not torch.equal(loss3, loss)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_batch_without_labels_gives_zero_loss_and_zero_gradient(name):
    fn = LOSSES[name]
    pred, target, _ = _case(name)
    mask = torch.zeros_like(target, dtype=torch.bool)
    loss, grad = _loss_and_grad(fn, pred, target, mask)
    assert float(loss) == 0.0
    assert grad is not None  # the graph is kept: DDP needs every head's gradient, zero
    assert grad.shape == pred.shape
    assert float(grad.abs().max()) == 0.0


@pytest.mark.parametrize("name", ["mse", "bce"])
def test_elementwise_losses_average_over_labelled_entries_only(name):
    fn = LOSSES[name]
    pred, target, mask = _case(name)
    if name == "mse":
        per = (pred - target) ** 2
    else:
        per = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
    want = per[mask].mean()
    torch.testing.assert_close(fn(pred, target, mask), want)


def test_bce_pos_weight_up_weights_positives():
    logits = torch.zeros(2, 2)
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    plain = masked_bce(logits, target, mask)
    weighted = masked_bce(logits, target, mask, pos_weight=torch.tensor([3.0, 3.0]))
    # log 2 per entry; the two positives count 3 times: (2 * 3 + 2) / 4 * log 2.
    assert float(plain) == pytest.approx(math.log(2))
    assert float(weighted) == pytest.approx(2.0 * math.log(2))


def test_soft_ce_renormalises_over_the_classes_a_source_names():
    # FER2013's 7 classes name no contempt (index 7): the prediction is a distribution over the
    # other 7, whatever the contempt logit.
    logits = torch.tensor([[0.5, 1.0, -0.3, 0.2, 0.0, -1.0, 0.4, 0.0]])
    target = torch.tensor([[0.1, 0.6, 0.0, 0.1, 0.1, 0.0, 0.1, 0.0]])
    mask = torch.ones(1, 8, dtype=torch.bool)
    mask[0, 7] = False
    logq7 = torch.log_softmax(logits[:, :7], 1)
    want = -(target[:, :7] * logq7).sum()
    got = masked_soft_ce(logits, target, mask)
    torch.testing.assert_close(got, want)
    high = logits.clone()
    high[0, 7] = 25.0  # a contempt logit that would swallow the 8-class softmax
    torch.testing.assert_close(masked_soft_ce(high, target, mask), want)
    # With all 8 named, the same logits give the 8-class cross-entropy (larger).
    full = masked_soft_ce(logits, target, torch.ones(1, 8, dtype=torch.bool))
    want8 = -(target * torch.log_softmax(logits, 1)).sum()
    torch.testing.assert_close(full, want8)
    assert float(full) > float(want)
    # Targets are renormalised over the named classes (a mass on an unnamed class is dropped).
    spill = target.clone()
    spill[0, 7] = 0.5
    torch.testing.assert_close(masked_soft_ce(logits, spill, mask), want)


def test_soft_ce_is_the_mean_over_labelled_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [False, False], [True, True]])
    r0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    r2 = -math.log(math.e / (math.e + 1))
    assert float(masked_soft_ce(logits, target, mask)) == pytest.approx((r0 + r2) / 2, rel=1e-6)


def test_soft_ce_skips_rows_whose_target_has_no_mass():
    # A row with classes named but an all-zero distribution carries no label; it must not
    # count in the mean.
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    only_first = masked_soft_ce(logits[:1], target[:1], mask[:1])
    torch.testing.assert_close(masked_soft_ce(logits, target, mask), only_first)


def _ccc_by_hand(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((a - mx) ** 2 for a in x) / n  # population moments, as Lin (1989)
    vy = sum((b - my) ** 2 for b in y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    return 2 * sxy / (vx + vy + (mx - my) ** 2)


def test_ccc_matches_the_textbook_definition():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [1.5, 1.9, 3.6, 3.7, 5.8]
    # By hand: means 3 and 3.3; population variances 10 / 5 = 2 and 11.7 / 5 = 2.34;
    # covariance 10.4 / 5 = 2.08; CCC = 2 * 2.08 / (2 + 2.34 + 0.3^2) = 4.16 / 4.43.
    assert _ccc_by_hand(x, y) == pytest.approx(4.16 / 4.43)
    got = float(ccc(torch.tensor(x), torch.tensor(y)))
    assert got == pytest.approx(4.16 / 4.43, rel=1e-5)


def test_ccc_known_values():
    x = torch.tensor([0.2, -0.4, 0.9, 0.1, -0.7, 0.3])
    assert float(ccc(x, x)) == pytest.approx(1.0, abs=1e-5)
    # Negated: -1 for zero-mean data; otherwise the means differ by 2 mean(x) and CCC > -1.
    z = x - x.mean()
    assert float(ccc(z, -z)) == pytest.approx(-1.0, abs=1e-5)
    v = float(x.var(unbiased=False))
    m = float(x.mean())
    assert float(ccc(x, -x)) == pytest.approx(-2 * v / (2 * v + 4 * m**2), rel=1e-5)
    # A constant shift keeps Pearson r = 1 but CCC = 2 var / (2 var + c^2) < 1.
    c = 0.5
    shifted = float(ccc(x, x + c))
    assert shifted == pytest.approx(2 * v / (2 * v + c**2), rel=1e-5)
    assert shifted < 1.0
    # A scale change: for zero-mean z, CCC(z, 2z) = 2 * 2v / (v + 4v) = 0.8.
    assert float(ccc(z, 2 * z)) == pytest.approx(0.8, rel=1e-5)


def test_ccc_loss_is_one_minus_ccc_per_column_on_labelled_rows():
    pred = torch.tensor([[0.1, 0.5], [0.4, -0.2], [0.8, 0.3], [0.2, 0.9]])
    target = torch.tensor([[0.0, 0.4], [0.5, 0.0], [0.7, 0.1], [99.0, 0.8]])
    mask = torch.tensor([[True, True], [True, True], [True, True], [False, True]])
    v = 1 - _ccc_by_hand([0.1, 0.4, 0.8], [0.0, 0.5, 0.7])
    a = 1 - _ccc_by_hand([0.5, -0.2, 0.3, 0.9], [0.4, 0.0, 0.1, 0.8])
    assert float(masked_ccc_loss(pred, target, mask)) == pytest.approx((v + a) / 2, rel=1e-5)
    # A column with a single labelled row is skipped (no CCC of one point).
    one = mask.clone()
    one[1:, 0] = False
    assert float(masked_ccc_loss(pred, target, one)) == pytest.approx(a, rel=1e-5)

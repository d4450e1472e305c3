"""FEC's symmetric triplet loss, per-type margins, and triplet accuracy."""

from __future__ import annotations

import pytest
import torch

from facexpr.core.errors import ConfigError
from facexpr.nn import create_model
from facexpr.nn.losses import (
    FEC_MARGINS,
    margins_for,
    triplet_accuracy,
    triplet_distances,
    triplet_loss,
)


def _points():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[0.1, 0.0], [1.0, 0.0]])
    n = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    return a, p, n


def test_distances_are_squared_euclidean():
    d_ap, d_an, d_pn = triplet_distances(*_points())
    assert torch.allclose(d_ap, torch.tensor([0.01, 1.0]))
    assert torch.allclose(d_an, torch.tensor([1.0, 0.25]))
    assert torch.allclose(d_pn, torch.tensor([1.01, 0.25]))


def test_symmetric_loss_counts_both_negative_distances():
    a, p, n = _points()
    per = triplet_loss(a, p, n, margin=0.1, reduction="none")
    # triplet 0: both terms satisfied; triplet 1: (1 - 0.25 + 0.1) twice
    assert torch.allclose(per, torch.tensor([0.0, 1.7]))
    assert triplet_loss(a, p, n, 0.1).item() == pytest.approx(0.85)
    assert triplet_loss(a, p, n, 0.1, reduction="sum").item() == pytest.approx(1.7)
    # only the positive-negative side violated: a one-sided loss would miss it
    a2, p2, n2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.3, 0.0]]), torch.tensor([[0.5, 0.0]])
    assert triplet_loss(a2, p2, n2, 0.0).item() == pytest.approx(0.09 - 0.04)


def test_margins_per_triplet():
    a, p, n = _points()
    m = margins_for(["one_class", "three_class"])
    assert m.tolist() == pytest.approx([0.1, 0.2])
    assert FEC_MARGINS["two_class"] == 0.1
    per = triplet_loss(a, p, n, m, reduction="none")
    assert torch.allclose(per, torch.tensor([0.0, 1.9]))
    with pytest.raises(
        ConfigError, match=r"triplet type 'four_class' has no margin \(known: one_class"
    ):
        margins_for(["four_class"])


def test_accuracy_needs_both_distances_larger():
    a, p, n = _points()
    assert triplet_accuracy(a, p, n).item() == pytest.approx(0.5)
    a2, p2, n2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.3, 0.0]]), torch.tensor([[0.5, 0.0]])
    assert triplet_accuracy(a2, p2, n2).item() == 0.0  # d(a,n) > d(a,p) but d(p,n) < d(a,p)


def test_bad_arguments():
    a, p, n = _points()
    with pytest.raises(ConfigError, match=r"three \(B, D\) tensors of one shape"):
        triplet_loss(a, p[:1], n, 0.1)
    with pytest.raises(ConfigError, match=r"margin must be a number or a \(2,\) tensor"):
        triplet_loss(a, p, n, torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ConfigError, match=r"margins must be >= 0"):
        triplet_loss(a, p, n, -0.1)
    with pytest.raises(ConfigError, match=r"reduction must be 'mean', 'sum' or 'none'"):
        triplet_loss(a, p, n, 0.1, reduction="max")


def test_accuracy_reaches_100_percent_on_one_overfitted_batch():
    torch.manual_seed(0)
    model = create_model("expression", img_size=32, depth=1, hidden_dim=64)
    imgs = torch.randn(3, 9, 3, 32, 32)  # 9 triplets of random images
    margins = margins_for(["one_class", "two_class", "three_class"] * 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def embed():
        e = model(imgs.reshape(27, 3, 32, 32)).reshape(3, 9, -1)
        return e[0], e[1], e[2]

    with torch.no_grad():
        start = triplet_accuracy(*embed()).item()
        first_loss = triplet_loss(*embed(), margins).item()
    for _ in range(80):
        a, p, n = embed()
        if triplet_accuracy(a, p, n).item() == 1.0 and triplet_loss(a, p, n, margins) < 0.01:
            break
        loss = triplet_loss(a, p, n, margins)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a, p, n = embed()
    assert start < 1.0
    assert triplet_accuracy(a, p, n).item() == 1.0
    assert triplet_loss(a, p, n, margins).item() < 0.25 * first_loss

"""``optim.encoder_lr_scale``: a pretrained encoder trains slower than fresh heads."""

from __future__ import annotations

import pytest
import torch

from facexpr.core.errors import ConfigError
from facexpr.train.config import OptimConfig
from facexpr.train.engine import build_optimizer


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)


def test_encoder_parameters_get_their_own_scaled_groups():
    net = _Net()
    opt = build_optimizer(net, OptimConfig(lr=1e-3, encoder_lr_scale=0.25, weight_decay=0.1))
    by_param = {}
    for g in opt.param_groups:
        for p in g["params"]:
            by_param[id(p)] = g
    enc_w = by_param[id(net.encoder.weight)]
    assert enc_w["lr_scale"] == 0.25
    assert enc_w["weight_decay"] == 0.1
    assert by_param[id(net.encoder.bias)]["weight_decay"] == 0.0
    assert by_param[id(net.head.weight)]["lr_scale"] == 1.0
    assert len(opt.param_groups) == 4


def test_scale_one_keeps_the_two_groups_of_before():
    opt = build_optimizer(_Net(), OptimConfig(lr=1e-3))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all("lr_scale" not in g for g in opt.param_groups)


def test_scale_is_checked():
    with pytest.raises(ConfigError, match=r"optim\.encoder_lr_scale must be"):
        OptimConfig(encoder_lr_scale=0.0)

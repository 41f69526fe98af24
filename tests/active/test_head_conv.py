"""The head's 3x3 convolution on 2x2 maps (one matrix product) computes what ``nn.Conv2d`` computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mintaudit.active import ActiveModel, MintHead
from mintaudit.active.head import _Conv3x3
from mintaudit.models import ModelSpec, active_taps, build_model


@pytest.mark.parametrize("size", [2, 3, 5])
def test_the_convolution_matches_conv2d_values_and_gradients(size):
    torch.manual_seed(0)
    fast = _Conv3x3(6, 10, 3, padding=1)
    ref = nn.Conv2d(6, 10, 3, padding=1)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(7, 6, size, size, requires_grad=True)
    y_fast, y_ref = fast(x), ref(x)
    assert y_fast.shape == y_ref.shape == (7, 10, size, size)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_ref)
    grads_fast = torch.autograd.grad(y_fast, [x, fast.weight, fast.bias], g)
    grads_ref = torch.autograd.grad(y_ref, [x, ref.weight, ref.bias], g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_head_keeps_the_state_dict_of_plain_convolutions():
    head = MintHead([(8, 4, 4), (8, 3, 3)])  # both pooled to 2x2 before the second convolution
    assert sum(isinstance(m, _Conv3x3) for m in head.modules()) == 2
    assert all(type(m) is nn.Conv2d for b in head.branches for m in b[:1])
    plain = MintHead([(8, 4, 4), (8, 3, 3)])
    for branch in plain.branches:
        old = branch[4]
        branch[4] = nn.Conv2d(old.in_channels, old.out_channels, 3, padding=1)
    assert head.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(head.state_dict())
    taps = [torch.randn(5, 8, 4, 4), torch.randn(5, 8, 3, 3)]
    torch.testing.assert_close(head(taps), plain(taps), rtol=1e-5, atol=1e-5)


def test_one_amint_step_is_the_same_as_with_conv2d(monkeypatch):
    """objcls-cnn, middle taps at 28 px (the benchmark's setup): the loss and every gradient of one step."""
    spec = ModelSpec("objcls-cnn", 1, 10, (28, 28))
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    backbone = build_model(spec).eval()  # eval: dropout off, so both steps see the same function
    model = ActiveModel(backbone, active_taps("objcls-cnn", "middle", backbone), example=x[:2]).eval()
    target = torch.cat([torch.ones(8), torch.zeros(8)])

    def step() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        logits, mint = model(x)
        loss = nn.functional.cross_entropy(logits[:8], y[:8]) + nn.functional.binary_cross_entropy_with_logits(
            mint, target
        )
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss_fast, grads_fast = step()
    monkeypatch.setattr(_Conv3x3, "forward", nn.Conv2d.forward)
    loss_ref, grads_ref = step()
    torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)

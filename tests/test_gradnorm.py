"""Per-sample gradient norms from one backward pass equal those of the per-sample gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mintaudit.models import ModelSpec, build_model
from mintaudit.signals import gradient_layers, gradient_vectors
from mintaudit.signals.gradnorm import per_sample_grad_norms


def _reference(model, x, y, layers):
    grads, logits = gradient_vectors(model, x, y, layers, "l2")
    return {k: v.norm(dim=1) for k, v in grads.items()}, logits


@pytest.mark.parametrize("name", ["tiny-cnn", "objcls-cnn"])
def test_norms_equal_the_per_sample_gradients_norms(name):
    torch.manual_seed(0)
    model = build_model(ModelSpec(name, 1, 10, (28, 28))).train()
    x, y = torch.randn(12, 1, 28, 28), torch.randint(0, 10, (12,))
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    got, logits = per_sample_grad_norms(model, x, y, layers)
    want, want_logits = _reference(model, x, y, layers)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    for layer in layers:
        assert got[layer].shape == (12,)
        torch.testing.assert_close(got[layer], want[layer], rtol=1e-4, atol=1e-7)
    assert set(gradient_layers(model, "combined")) <= set(layers)


class _Tokens(nn.Module):
    """A linear layer on (B, T, D) tokens, one on vectors, and a grouped conv (the fallback)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.tok = nn.Linear(4, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = self.conv(x).flatten(2).transpose(1, 2)  # (B, 16, 4)
        return self.out(torch.relu(self.tok(h)).mean(1))


def test_token_inputs_and_the_grouped_conv_fallback():
    torch.manual_seed(1)
    model = _Tokens()
    x, y = torch.randn(5, 4, 4, 4), torch.randint(0, 3, (5,))
    for layers in (["tok", "out"], ["conv", "tok", "out"]):
        got, _ = per_sample_grad_norms(model, x, y, layers)
        want, _ = _reference(model, x, y, layers)
        for layer in layers:
            torch.testing.assert_close(got[layer], want[layer], rtol=1e-4, atol=1e-7)


def test_frozen_weights_still_give_the_gradient_norms():
    torch.manual_seed(2)
    model = build_model(ModelSpec("tiny-cnn", 1, 10, (28, 28)))
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    want, _ = _reference(model, x, y, ["conv2", "fc"])
    for p in model.parameters():
        p.requires_grad_(False)
    got, _ = per_sample_grad_norms(model, x, y, ["conv2", "fc"])
    for layer in ("conv2", "fc"):
        torch.testing.assert_close(got[layer], want[layer], rtol=1e-4, atol=1e-7)

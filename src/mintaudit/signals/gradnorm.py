"""Per-sample gradient norms from one forward and one backward pass (the "ghost norm" way).

The norm of one sample's loss gradient with respect to a layer's weight does not need the
per-sample gradient of every parameter (:func:`~mintaudit.signals.gradient_vectors`, ``vmap`` over
``grad``). In eval mode the samples of a batch are independent, so one backward pass of the
summed loss gives, at each chosen layer, every sample's gradient with respect to the layer's
output, ``g``; with the layer's input ``a`` (kept by a forward hook), the weight gradient of
sample i is:

- ``nn.Linear`` on (B, D) inputs: the outer product ``g_i a_i^T``, whose norm is ``|g_i| |a_i|``;
  on (B, T, D) inputs the sum over t of ``g_it a_it^T``: its squared norm is
  ``sum_{t,s} (g_it . g_is)(a_it . a_is)`` (Goodfellow 2015; Li et al. 2022, "ghost clipping"),
  or the product is formed when that is smaller;
- ``nn.Conv2d`` (zero padding, one group): ``g_i U_i^T``, ``U`` the unfolded input patches
  (``torch.nn.functional.unfold``), formed in chunks of samples.

The backward pass stops at the earliest chosen layer's output and computes no parameter
gradient. Other layers (grouped or non-zero-padded convolutions, other weighted modules, a
module called twice in one forward) fall back to :func:`~mintaudit.signals.gradient_vectors`.
The norms equal the Frobenius norms of the per-sample weight gradients up to float rounding
(``tests/signals/test_gradnorm.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mintaudit._logits import logits_of

__all__ = ["per_sample_grad_norms"]

_CHUNK_FLOATS = 32 * 2**20  # per-sample products formed at once (128 MiB of float32)


def _fast(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return False


def _linear_norm(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if a.ndim == 2:
        return g.norm(dim=1) * a.norm(dim=1)
    a, g = a.flatten(1, -2), g.flatten(1, -2)  # (B, T, D)
    t, d_in, d_out = a.shape[1], a.shape[2], g.shape[2]
    if t * t <= d_in * d_out:
        return ((g @ g.transpose(1, 2)) * (a @ a.transpose(1, 2))).sum((1, 2)).clamp(min=0).sqrt()
    return _chunked(lambda s: torch.einsum("bto,bti->boi", g[s], a[s]), len(a), d_in * d_out)


def _conv_norm(conv: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    u = F.unfold(a, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    g = g.flatten(2)  # (B, C_out, L)
    return _chunked(lambda s: torch.bmm(g[s], u[s].transpose(1, 2)), len(a), g.shape[1] * u.shape[1])


def _chunked(product, n: int, per_sample: int) -> torch.Tensor:
    step = max(1, _CHUNK_FLOATS // max(per_sample, 1))
    return torch.cat([product(slice(i, i + step)).flatten(1).norm(dim=1) for i in range(0, n, step)])


def per_sample_grad_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: Sequence[str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """({layer: float (B,) norm of each sample's loss gradient w.r.t. the layer's weight}, logits (B, K)).

    The loss is ``cross_entropy(model(x), y)`` per sample, in eval mode (mode restored after);
    the model's parameters and their ``.grad`` are left untouched.
    """
    modules = dict(model.named_modules())
    if not all(_fast(modules[name]) for name in layers):
        from mintaudit.signals.gradients import gradient_vectors

        grads, logits = gradient_vectors(model, x, y, layers, "l2")
        return {name: grads[name].norm(dim=1) for name in layers}, logits
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in layers}

    def keep(name: str):
        def hook(_module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            if not out.requires_grad:  # frozen weights upstream: the output still needs a gradient
                out = out.detach().requires_grad_(True)
            seen[name].append((args[0].detach(), out))
            return out

        return hook

    was_training = model.training
    model.eval()
    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    try:
        with torch.enable_grad():
            logits = logits_of(model(x.detach()))
            if any(len(v) != 1 for v in seen.values()):  # a layer called twice: no single output to read
                from mintaudit.signals.gradients import gradient_vectors

                grads, logits = gradient_vectors(model, x, y, layers, "l2")
                return {name: grads[name].norm(dim=1) for name in layers}, logits
            loss = F.cross_entropy(logits, y, reduction="sum")
            outs = [seen[name][0][1] for name in layers]
            got = torch.autograd.grad(loss, outs, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    norms: dict[str, torch.Tensor] = {}
    for name, g in zip(layers, got):
        a = seen[name][0][0]
        if g is None:  # the loss does not depend on this layer's output
            norms[name] = torch.zeros(len(x), dtype=a.dtype)
        elif isinstance(modules[name], nn.Linear):
            norms[name] = _linear_norm(a, g.detach())
        else:
            norms[name] = _conv_norm(modules[name], a, g.detach())
    return norms, logits.detach()

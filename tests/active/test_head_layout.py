"""The MINT head runs its convolutions on channels-last maps: same outputs and gradients as on NCHW maps."""

from __future__ import annotations

import torch

from mintaudit.active.head import HeadConfig, MintHead


def _nchw_reference(head: MintHead, taps: list[torch.Tensor]) -> torch.Tensor:
    """The head's math with every branch fed the taps as they come (NCHW), no layout change."""
    return head.mlp(torch.cat([branch(x) for branch, x in zip(head.branches, taps)], dim=1)).squeeze(1)


def _outputs_and_grads(head: MintHead, taps: list[torch.Tensor], fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    head.zero_grad(set_to_none=True)
    leaves = [t.detach().clone().requires_grad_() for t in taps]
    out = fn(head, leaves)
    (out * torch.linspace(-1.0, 1.0, out.numel())).sum().backward()
    grads = [leaf.grad for leaf in leaves] + [p.grad.clone() for p in head.parameters()]
    return out.detach(), grads


def test_channels_last_head_matches_the_nchw_math_in_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    shapes = [(8, 7, 7), (16, 4, 4), (12,)]
    for config in (HeadConfig(widths=(16, 32), hidden=8), HeadConfig(preset="paper", widths=(8, 16))):
        head = MintHead(shapes, config).train()
        taps = [torch.randn(6, *s) for s in shapes]
        out, grads = _outputs_and_grads(head, taps, lambda h, t: h(t))
        ref, ref_grads = _outputs_and_grads(head, taps, _nchw_reference)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert len(grads) == len(ref_grads)
        for g, r in zip(grads, ref_grads):
            assert g.shape == r.shape
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
        assert all(g.abs().sum() > 0 for g in grads[:2])  # the conv taps get a gradient (the backbone trains)


def test_the_conv_branches_see_channels_last_maps_and_the_taps_are_untouched() -> None:
    head = MintHead([(8, 7, 7), (10,)], HeadConfig(widths=(16, 32), hidden=8))
    seen: list[bool] = []
    head.branches[0][0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last))
    )
    tap = torch.randn(3, 8, 7, 7)
    before = tap.clone()
    head([tap, torch.randn(3, 10)])
    assert seen == [True]
    assert tap.is_contiguous() and torch.equal(tap, before)

"""The aMINT loop helpers refuse what does not fit in one line (hostile cases C103, C106, C107, C108)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mintaudit.active import AmintLoss, make_auditable, paired_batches
from mintaudit.errors import ConfigError, DataError
from mintaudit.models import TinyCNN


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and "--" not in text, text  # one line, no command-line advice
    return text


@pytest.mark.parametrize(
    "example, needle",
    [
        (torch.rand(1, 8, 8), "without the batch axis: give example[None]"),  # C103: 3 dims
        ((torch.rand(2, 1, 8, 8) * 255).to(torch.uint8), "uint8 (raw pixels)"),  # C103: uint8
        (torch.rand(2, 3, 8, 8), "fails on example of shape (2, 3, 8, 8) float32"),
        (torch.zeros(0, 1, 8, 8), "holds no sample"),
        ([[0.0]], "must be a tensor batch"),
    ],
)
def test_make_auditable_refuses_an_example_the_model_cannot_take(example, needle):
    with pytest.raises(ConfigError) as e:
        make_auditable(TinyCNN(1, 3), ["relu1"], example=example)
    assert needle in _one_line(e)


def test_paired_batches_refuses_an_empty_member_batch():  # C106
    external = DataLoader(TensorDataset(torch.rand(6, 1), torch.zeros(6)), batch_size=2)
    x, y = torch.rand(4, 1), torch.zeros(4, dtype=torch.long)
    with pytest.raises(DataError) as e:
        list(paired_batches([(x, y), (x[:0], y[:0])], external))
    assert "members batch 1 holds 0 inputs" in _one_line(e)
    with pytest.raises(DataError, match="2 inputs and 3 labels"):
        list(paired_batches([(x[:2], y[:3])], external))


def test_amint_loss_reads_b1_membership_as_b_and_gives_the_same_value():  # C107: (B, 1) accepted
    logits, y, membership = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.randn(8)
    flat = AmintLoss(normalisation="none")(logits, y, membership, 4)
    column = AmintLoss(normalisation="none")(logits, y, membership.reshape(-1, 1), 4)
    assert torch.equal(flat, column)
    target = torch.tensor([1.0] * 4 + [0.0] * 4)
    want = torch.nn.functional.cross_entropy(logits, y) + torch.nn.functional.binary_cross_entropy_with_logits(
        membership, target
    )
    assert flat.item() == pytest.approx(want.item())


@pytest.mark.parametrize(
    "args, needle",
    [
        ((torch.randn(4, 3), torch.zeros(4), torch.randn(8), 4), "labels must be integer class indices"),  # C107
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(8, 2), 4), "membership must be float"),
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(8), 9), "n_members=9 for 8"),  # C108
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(8), 0), "n_members=0 for 8"),  # C108
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(8), 3), "4 logits and 4 labels"),
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(4), 4), "at least one external"),
        ((torch.randn(4), torch.zeros(4, dtype=torch.long), torch.randn(8), 4), "logits must be float (B_m, K)"),
        ((torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(8), 4.0), "whole number"),
    ],
)
def test_amint_loss_refuses_shapes_that_do_not_fit(args, needle):
    loss_fn = AmintLoss()
    with pytest.raises(DataError) as e:
        loss_fn(*args)
    assert needle in _one_line(e)
    assert loss_fn.last is None  # nothing was normalised on a refused call

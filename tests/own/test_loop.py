"""aMINT in the user's own loop: pairing, the published loss, and an export with no zoo model."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mintaudit.active import AmintLoss, export_auditable, load_active, make_auditable, paired_batches
from mintaudit.errors import DataError, ModelError
from mintaudit.models import TinyCNN
from mintaudit.preprocess import Preprocess


def test_paired_batches_gives_as_many_external_samples_and_cycles_them():
    members = DataLoader(TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10) % 2), batch_size=4)
    external = DataLoader(TensorDataset(torch.arange(100.0, 103.0).view(3, 1), torch.zeros(3)), batch_size=2)
    pairs = list(paired_batches(members, external))
    assert [len(xm) for xm, _, _ in pairs] == [4, 4, 2] and all(len(xe) == len(xm) for xm, _, xe in pairs)
    seen = torch.cat([xe for _, _, xe in pairs]).view(-1).tolist()
    assert seen == [100, 101, 102, 100, 101, 102, 100, 101, 102, 100]  # cycled, in order
    with pytest.raises(DataError, match="need their labels|needs their labels"):
        list(paired_batches([torch.zeros(2, 1)], external))
    with pytest.raises(DataError, match="yields no batches"):
        list(paired_batches(members, []))


def test_the_loss_is_the_published_first_batch_normalised_sum():
    torch.manual_seed(0)
    loss_fn = AmintLoss(lambda_task=2.0, lambda_mint=1.0)
    logits, y, membership = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.randn(8)
    first = loss_fn(logits, y, membership, 4)
    assert first.item() == pytest.approx(3.0)  # each term divided by its own first value
    l_task = torch.nn.functional.cross_entropy(logits * 2, y)
    target = torch.tensor([1.0] * 4 + [0.0] * 4)
    l_mint = torch.nn.functional.binary_cross_entropy_with_logits(membership * 2, target)
    c_task, c_mint = loss_fn.scales[0].value, loss_fn.scales[1].value
    second = loss_fn(logits * 2, y, membership * 2, 4)
    assert second.item() == pytest.approx(2 * l_task.item() / c_task + l_mint.item() / c_mint)


def test_export_from_the_module_itself_needs_a_fresh_instance_to_load(tmp_path):
    torch.manual_seed(0)
    auditable = make_auditable(TinyCNN(1, 3), ["relu1", "relu2"], example=torch.zeros(2, 1, 8, 8))
    auditable.eval()
    x = torch.rand(3, 1, 8, 8)
    want = auditable(x)
    export_auditable(
        auditable, tmp_path / "d", input_shape=(1, 8, 8), num_classes=3, preprocess=Preprocess(mean=(0.2,), std=(0.3,))
    )
    with pytest.raises(ModelError, match="pass backbone="):
        load_active(tmp_path / "d")
    model, meta = load_active(tmp_path / "d", backbone=TinyCNN(1, 3))
    got = model(x)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert meta["input"]["mean"] == [0.2] and meta["input"]["std"] == [0.3]
    with pytest.raises(Exception, match="nn.Module"):
        make_auditable("not a model", ["relu1"], example=x)  # type: ignore[arg-type]

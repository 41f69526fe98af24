import numpy as np
import torch

from mintaudit.models import ModelSpec, build_model
from mintaudit.training import TrainConfig, train_classifier


def _learnable(toy_dataset):
    # make the label readable from the image: class k has bright row k
    from mintaudit.data import ImageDataset

    imgs = toy_dataset.images.copy() // 4
    for i, y in enumerate(toy_dataset.labels):
        imgs[i, y * 2, :, 0] = 255
    return ImageDataset("toy-learnable", imgs, toy_dataset.labels, 3)


def test_training_learns(toy_dataset):
    ds = _learnable(toy_dataset)
    m = build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8)))
    res = train_classifier(
        m, ds, np.arange(80), TrainConfig(epochs=30, batch_size=16, lr=1e-2), test_indices=np.arange(80, 120)
    )
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.train_accuracy > 0.9
    assert not m.training


def test_resume_equals_uninterrupted_run(toy_dataset, tmp_path):
    ds = _learnable(toy_dataset)
    idx = np.arange(80)
    torch.manual_seed(0)
    full = build_model(ModelSpec("objcls-cnn", 1, 3, (8, 8)))
    train_classifier(full, ds, idx, TrainConfig(epochs=4, batch_size=16), checkpoint_dir=tmp_path / "a")

    torch.manual_seed(0)
    part = build_model(ModelSpec("objcls-cnn", 1, 3, (8, 8)))
    train_classifier(part, ds, idx, TrainConfig(epochs=2, batch_size=16), checkpoint_dir=tmp_path / "b")
    torch.manual_seed(123)  # a fresh process: other global RNG state, fresh weights
    resumed = build_model(ModelSpec("objcls-cnn", 1, 3, (8, 8)))
    res = train_classifier(
        resumed, ds, idx, TrainConfig(epochs=4, batch_size=16), checkpoint_dir=tmp_path / "b", resume=True
    )
    assert len(res.history) == 4
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k

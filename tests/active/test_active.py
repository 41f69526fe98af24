"""aMINT: the wrapper, the head, the multi-task trainer, export and query."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mintaudit._tensor import to_tensor
from mintaudit.active import (
    ActiveConfig,
    ActiveModel,
    HeadConfig,
    MintHead,
    export_active,
    load_active,
    membership_scores,
    query_images,
    train_active,
)
from mintaudit.errors import ConfigError, ModelError, WeightsError
from mintaudit.models import ModelSpec, TinyCNN, build_model


def _active(taps=("relu1", "relu2"), head=None, seed=0):
    torch.manual_seed(seed)
    return ActiveModel(TinyCNN(1, 3, 8), list(taps), example=torch.zeros(2, 1, 8, 8), head=head)


def _roles():
    """members 0-39, external 40-69, held-out external 70-79 (pool of the toy data set)."""
    return np.arange(40), np.arange(40, 70), np.arange(0, 40, 4), np.arange(70, 80)


def test_task_output_is_the_backbones_and_no_hook_is_left():
    model = _active().eval()
    for p in model.head.parameters():
        p.requires_grad_(False)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        logits, membership = model(x)
        plain = model.backbone(x)
    assert torch.equal(logits, plain)
    assert membership.shape == (5,)
    assert all(not m._forward_hooks for m in model.backbone.modules())


def test_hooks_removed_when_forward_raises():
    model = _active()
    with pytest.raises(RuntimeError):
        model(torch.zeros(2, 3, 8, 8))  # wrong channel count: conv1 raises inside the hooked forward
    assert all(not m._forward_hooks for m in model.backbone.modules())


def test_mint_gradients_reach_tapped_layers_and_not_later_ones():
    model = _active(taps=("relu1",))
    _, membership = model(torch.randn(4, 1, 8, 8))
    torch.nn.functional.binary_cross_entropy_with_logits(membership, torch.ones(4)).backward()
    bb = model.backbone
    assert bb.conv1.weight.grad is not None and bb.conv1.weight.grad.abs().sum() > 0
    assert bb.conv2.weight.grad is None and bb.fc.weight.grad is None


def _mint_grads(scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = _active(taps=("relu1", "relu2"))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    logits, membership = model(x, mint_grad_scale=scale)
    assert torch.equal(logits, model.backbone(x))  # the scale changes gradients only, never values
    torch.nn.functional.binary_cross_entropy_with_logits(membership, torch.ones(4)).backward()
    grad = model.backbone.conv1.weight.grad
    head = torch.cat([p.grad.flatten() for p in model.head.parameters()])
    return (torch.zeros_like(model.backbone.conv1.weight) if grad is None else grad), head, membership.detach()


def test_mint_grad_scale_scales_what_reaches_the_backbone_only():
    full, head_full, m_full = _mint_grads(1.0)
    half, head_half, m_half = _mint_grads(0.5)
    none, head_none, m_none = _mint_grads(0.0)
    assert torch.equal(m_full, m_half) and torch.equal(m_full, m_none)  # same membership output
    assert full.abs().sum() > 0
    torch.testing.assert_close(half, 0.5 * full)
    assert none.abs().sum() == 0  # scale 0: the backbone learns the task alone
    torch.testing.assert_close(head_half, head_full)  # the head's own gradient is untouched
    torch.testing.assert_close(head_none, head_full)
    with pytest.raises(ConfigError, match="mint_grad_scale"):
        ActiveConfig(mint_grad_scale=1.5)


def test_augmented_training_is_seeded(toy_dataset):
    members, external, val_m, val_e = _roles()
    cfg = ActiveConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, augment=True, mint_grad_scale=0.0)
    runs = []
    for _ in range(2):
        model = _active()
        train_active(model, toy_dataset, members, external, val_members=val_m, val_external=val_e, config=cfg)
        runs.append(model.state_dict())
    plain = _active()
    train_active(
        plain,
        toy_dataset,
        members,
        external,
        val_members=val_m,
        val_external=val_e,
        config=ActiveConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, mint_grad_scale=0.0),
    )
    assert all(torch.equal(a, b) for a, b in zip(runs[0].values(), runs[1].values()))
    assert not torch.equal(runs[0]["backbone.conv1.weight"], plain.state_dict()["backbone.conv1.weight"])


def test_head_shapes_and_presets():
    shapes = [(8, 6, 6), (5, 16), (12,)]
    for preset in ("default", "paper"):
        head = MintHead(shapes, HeadConfig(preset=preset, widths=(4, 6)))
        out = head([torch.randn(3, 8, 6, 6), torch.randn(3, 5, 16), torch.randn(3, 12)])
        assert out.shape == (3,)
    paper = MintHead([(8, 6, 6)], HeadConfig(preset="paper"))
    assert [m.out_channels for m in paper.modules() if isinstance(m, torch.nn.Conv2d)] == [1024, 2048]
    with pytest.raises(ConfigError, match="head was built for"):
        paper([torch.randn(2, 8, 5, 5)])
    with pytest.raises(ConfigError, match="preset"):
        HeadConfig(preset="huge")  # type: ignore[arg-type]


def test_training_separates_members_and_switches_modes(toy_dataset):
    model = _active()
    modes: list[bool] = []
    hook = model.backbone.conv1.register_forward_pre_hook(lambda m, i: modes.append(m.training))
    try:
        members, external, val_m, val_e = _roles()
        res = train_active(
            model,
            toy_dataset,
            members,
            external,
            val_members=val_m,
            val_external=val_e,
            config=ActiveConfig(epochs=3, batch_size=8, lr=3e-3, patience=0),
        )
    finally:
        hook.remove()
    assert len(res.history) == 3 and 1 <= res.best_epoch <= 3
    # each epoch: 5 training steps in train mode, then validation in eval mode; never stuck in eval
    steps_per_epoch = 5
    assert modes.count(True) == 3 * steps_per_epoch
    assert not model.training
    pos = membership_scores(model, toy_dataset, members)
    neg = membership_scores(model, toy_dataset, np.arange(80, 120))
    assert pos.mean() > neg.mean()  # members (seen as positives) score higher than unseen samples
    assert 0.0 < res.threshold < 1.0


def test_resume_equals_uninterrupted_run(toy_dataset, tmp_path):
    members, external, val_m, val_e = _roles()
    cfg = ActiveConfig(epochs=3, batch_size=8, lr=1e-3, patience=0)
    full = _active()
    train_active(
        full,
        toy_dataset,
        members,
        external,
        val_members=val_m,
        val_external=val_e,
        config=cfg,
        checkpoint_dir=tmp_path / "a",
    )
    part = _active()
    train_active(
        part,
        toy_dataset,
        members,
        external,
        val_members=val_m,
        val_external=val_e,
        config=ActiveConfig(epochs=2, batch_size=8, lr=1e-3, patience=0),
        checkpoint_dir=tmp_path / "b",
    )
    torch.manual_seed(123)  # a fresh process: other RNG state and other initial weights
    resumed = _active(seed=7)
    res = train_active(
        resumed,
        toy_dataset,
        members,
        external,
        val_members=val_m,
        val_external=val_e,
        config=cfg,
        checkpoint_dir=tmp_path / "b",
        resume=True,
    )
    assert len(res.history) == 3
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_early_stopping_keeps_the_best_epoch(toy_dataset):
    members, external, val_m, val_e = _roles()
    model = _active()
    res = train_active(
        model,
        toy_dataset,
        members,
        external,
        val_members=val_m,
        val_external=val_e,
        config=ActiveConfig(epochs=30, batch_size=8, lr=1e-2, patience=2),
    )
    best = max(r["val_auc"] for r in res.history)
    assert res.best_value == best
    if res.stopped_early:
        assert len(res.history) == res.best_epoch + 2


def test_validation_external_must_be_held_out(toy_dataset):
    members, external, val_m, _ = _roles()
    with pytest.raises(ConfigError, match="also trained on"):
        train_active(
            _active(),
            toy_dataset,
            members,
            external,
            val_members=val_m,
            val_external=external[:5],
            config=ActiveConfig(epochs=1),
        )


def test_export_load_query_round_trip(toy_dataset, tmp_path):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    torch.manual_seed(0)
    model = ActiveModel(build_model(spec), ["relu2"], example=torch.zeros(2, 1, 8, 8)).eval()
    export_active(model, spec, tmp_path / "m", threshold=0.4, class_names=["a", "b", "c"])
    loaded, meta = load_active(tmp_path / "m")
    x = to_tensor(toy_dataset.images[:6])
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    paths = []
    for i in range(6):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(toy_dataset.images[i, :, :, 0]).save(p)
        paths.append(p)
    answers = query_images(loaded, meta, paths)
    probs = torch.sigmoid(a[1].double()).tolist()
    assert [ans.label for ans in answers] == a[0].argmax(1).tolist()
    assert [ans.class_name for ans in answers] == [["a", "b", "c"][k] for k in a[0].argmax(1).tolist()]
    np.testing.assert_allclose([ans.membership for ans in answers], probs, rtol=0, atol=1e-6)
    assert [ans.member for ans in answers] == [p >= 0.4 for p in probs]


def test_loading_refuses_weights_that_disagree_with_the_config(tmp_path):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    model = ActiveModel(build_model(spec), ["relu2"], example=torch.zeros(2, 1, 8, 8))
    folder = export_active(model, spec, tmp_path / "m")
    meta = json.loads((folder / "amint.json").read_text())
    meta["head"]["widths"] = [16, 32]
    (folder / "amint.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="do not fit"):
        load_active(folder)
    with pytest.raises(ModelError, match="amint.json"):
        load_active(tmp_path / "nowhere")

"""aMINT's learning-rate schedule (ActiveConfig.lr_schedule): the rates, their use in training, resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mintaudit.active import ActiveConfig, ActiveModel
from mintaudit.active.train import scheduled_lr, train_active
from mintaudit.errors import ConfigError
from mintaudit.models import TinyCNN

MEMBERS, EXTERNAL, VAL_M, VAL_E = np.arange(40), np.arange(40, 70), np.arange(0, 40, 4), np.arange(70, 80)


def _active(seed=0):
    torch.manual_seed(seed)
    return ActiveModel(TinyCNN(1, 3, 8), ["relu1", "relu2"], example=torch.zeros(2, 1, 8, 8))


def _train(model, ds, cfg, **kw):
    return train_active(model, ds, MEMBERS, EXTERNAL, val_members=VAL_M, val_external=VAL_E, config=cfg, **kw)


def test_cosine_falls_from_lr_to_zero_and_constant_stays():
    cfg = ActiveConfig(epochs=4, lr=1e-3, lr_schedule="cosine")
    rates = [scheduled_lr(cfg, e, s, 5) for e in range(4) for s in range(5)]
    assert rates[0] == 1e-3
    assert rates[10] == pytest.approx(5e-4)  # half way: half the rate
    assert all(a > b for a, b in zip(rates, rates[1:])) and 0 < rates[-1] < 1e-5
    assert rates[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))
    flat = ActiveConfig(epochs=4, lr=1e-3)
    assert flat.lr_schedule == "constant"
    assert {scheduled_lr(flat, e, s, 5) for e in range(4) for s in range(5)} == {1e-3}


def test_unknown_schedule_is_refused():
    with pytest.raises(ConfigError, match="lr_schedule must be constant or cosine"):
        ActiveConfig(lr_schedule="step")  # type: ignore[arg-type]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_training_steps_use_the_scheduled_rate(toy_dataset, schedule):
    cfg = ActiveConfig(epochs=2, batch_size=8, lr=1e-2, patience=0, lr_schedule=schedule)
    seen: list[float] = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        _train(_active(), toy_dataset, cfg)
    finally:
        handle.remove()
    assert seen == pytest.approx([scheduled_lr(cfg, e, s, 5) for e in range(2) for s in range(5)])
    assert (seen[-1] < seen[0]) == (schedule == "cosine")


def test_cosine_resume_equals_uninterrupted_run_and_refuses_another_length(toy_dataset, tmp_path):
    cfg = ActiveConfig(epochs=3, batch_size=8, lr=1e-2, patience=0, lr_schedule="cosine")
    full = _active()
    _train(full, toy_dataset, cfg)

    def stop_at_third(row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt  # killed after epoch 3's steps, before its checkpoint: epoch 2's is on disk

    with pytest.raises(KeyboardInterrupt):
        _train(_active(), toy_dataset, cfg, checkpoint_dir=tmp_path, on_epoch=stop_at_third)
    resumed = _active(seed=7)
    res = _train(resumed, toy_dataset, cfg, checkpoint_dir=tmp_path, resume=True)
    assert len(res.history) == 3
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # a cosine over 4 epochs takes other rates from the first step on: that checkpoint cannot continue it
    with pytest.raises(ConfigError, match="schedule_epochs"):
        _train(
            _active(),
            toy_dataset,
            ActiveConfig(epochs=4, batch_size=8, lr=1e-2, patience=0, lr_schedule="cosine"),
            checkpoint_dir=tmp_path,
            resume=True,
        )


@pytest.mark.parametrize("given, expected", [([], "constant"), (["--lr-schedule", "cosine"], "cosine")])
def test_the_cli_passes_the_schedule(given, expected, tmp_path, monkeypatch):
    """`mintaudit active train --lr-schedule` reaches ActiveConfig (the run itself is stopped at the call)."""
    import mintaudit.workdir as workflow
    from mintaudit.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def spy(out, ds, splits, config, **kwargs):
        seen["schedule"] = config.train.lr_schedule
        raise Stop

    monkeypatch.setattr(workflow, "active_train", spy)
    with pytest.raises(Stop):
        main(
            [
                "active",
                "train",
                "--out",
                str(tmp_path / "run"),
                "--dataset",
                "digits",
                "--members",
                "300",
                "--external",
                "400",
                "--test",
                "300",
                "--quiet",
                "--epochs",
                "1",
                *given,
            ]
        )
    assert seen["schedule"] == expected

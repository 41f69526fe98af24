"""The multi-task trainer of active MINT: task cross-entropy on members, BCE on membership."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
from mintaudit._progress import progress
from mintaudit._tensor import autocast, device_of, iter_batches, to_device
from mintaudit.active.checks import loss_inputs
from mintaudit.active.model import ActiveModel
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, WeightsError
from mintaudit.evaluation.metrics import auc_score, best_threshold
from mintaudit.training import (
    augment,
    augment_generator,
    check_schedule,
    checkpoint_history,
    correct_per_sample,
    read_checkpoint,
    run_signature,
    start_training,
    write_checkpoint,
)

__all__ = [
    "ActiveConfig",
    "ActiveResult",
    "AmintLoss",
    "scheduled_lr",
    "train_active",
    "membership_scores",
    "task_accuracy",
    "task_correct",
]

CHECKPOINT = "checkpoint.pt"
Normalisation = Literal["first-batch", "none", "ema"]


@dataclass(frozen=True)
class ActiveConfig:
    """Options of :func:`train_active`.

    Args:
        epochs: passes over the members (each step pairs ``batch_size`` members with as many
            external samples, drawn afresh every epoch).
        batch_size: members per step (64 as published); the same number of external samples.
        lr: Adam learning rate (1e-4 as published).
        lr_schedule: ``constant`` (as published) or ``cosine``: the learning rate of every
            parameter falls from ``lr`` to 0 along a half cosine over the ``epochs`` (step by
            step), so the head settles on the members it memorises instead of wandering.
        weight_decay: Adam's L2 term.
        lambda_task, lambda_mint: weights of the two losses.
        normalisation: divide each loss by its value on the first batch (``first-batch``, as in
            the authors' code), by a running mean of itself (``ema``), or not at all (``none``).
        ema_decay: decay of the ``ema`` normalisation.
        patience: stop after this many epochs without a better validation ``monitor`` (0: never);
            the best epoch's weights are the ones kept.
        monitor: ``auc`` or ``accuracy`` (at 0.5) of the MINT head on the validation sets.
        joint_forward: members and external samples go through one forward of 2B images
            (True) or two forwards of B (False).
        mint_grad_scale: how much of the membership loss's gradient reaches the backbone
            (1, as published: the backbone learns to make its members recognisable; 0: only
            the head learns membership, the backbone the task alone). Between them it trades
            membership signal for task accuracy.
        augment: the plain trainer's augmentation (random flip and 2-px crop) on members and
            external samples alike.
        seed: seeds sampling, dropout, augmentation and the initial loss scale.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0
    lambda_task: float = 1.0
    lambda_mint: float = 1.0
    normalisation: Normalisation = "first-batch"
    ema_decay: float = 0.98
    patience: int = 10
    monitor: Literal["auc", "accuracy"] = "auc"
    joint_forward: bool = True
    mint_grad_scale: float = 1.0
    augment: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_schedule(self.epochs, self.batch_size, self.lr)
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0 (0 disables early stopping), got {self.patience}")
        if self.normalisation not in ("first-batch", "none", "ema"):
            raise ConfigError(f"normalisation must be first-batch, none or ema, got {self.normalisation!r}")
        if self.monitor not in ("auc", "accuracy"):
            raise ConfigError(f"monitor must be auc or accuracy, got {self.monitor!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in (0, 1), got {self.ema_decay}")
        if self.lambda_task < 0 or self.lambda_mint <= 0:
            raise ConfigError("lambda_task must be >= 0 and lambda_mint > 0")
        if not 0.0 <= self.mint_grad_scale <= 1.0:
            raise ConfigError(f"mint_grad_scale must lie in [0, 1], got {self.mint_grad_scale}")


def scheduled_lr(config: ActiveConfig, epoch: int, step: int, n_steps: int) -> float:
    """The learning rate of step ``step`` (of ``n_steps``) in epoch ``epoch`` (0-based) under ``config.lr_schedule``.

    Example:
        >>> scheduled_lr(ActiveConfig(epochs=2, lr=1e-3, lr_schedule="cosine"), 1, 0, 10)
        0.0005
    """
    if config.lr_schedule == "constant":
        return config.lr
    done = (epoch * n_steps + step) / max(config.epochs * n_steps, 1)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * done))


@dataclass
class ActiveResult:
    """What aMINT training produced."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = float("nan")
    stopped_early: bool = False
    threshold: float = 0.5
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def membership_scores(
    model: ActiveModel, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Membership probabilities, float64 (N,), of ``indices`` (model in eval mode, mode restored)."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = []
    try:
        for x, _, _ in iter_batches(dataset, indices, batch_size, device=device):
            out.append(torch.sigmoid(model(to_device(x, device))[1].double()).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def _task_correct(model: ActiveModel, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """bool (N,): whether the class output is right on each of ``indices`` (eval mode, mode restored)."""
    return correct_per_sample(model, dataset, indices, batch_size, logits_of=lambda out: out[0])


def task_correct(model: ActiveModel, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """bool (N,): whether the class output is right on each of ``indices`` (eval mode, mode restored)."""
    return _task_correct(model, dataset, indices, batch_size)


def task_accuracy(model: ActiveModel, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the class output on ``indices`` (eval mode, mode restored)."""
    return int(_task_correct(model, dataset, indices, batch_size).sum()) / max(len(indices), 1)


def _validate(
    model: ActiveModel, dataset: ImageDataset, val_members: np.ndarray, val_external: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    # under torchrun every rank scores its shard and gets all scores back, in order
    pos = distributed.map_shards(lambda part: membership_scores(model, dataset, part), val_members)
    neg = distributed.map_shards(lambda part: membership_scores(model, dataset, part), val_external)
    y = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    auc = auc_score(y, np.r_[pos, neg])
    acc = 0.5 * (float(np.mean(pos >= 0.5)) + float(np.mean(neg < 0.5)))
    return auc, acc, pos, neg


class _Scale:
    """The divisor of one loss: fixed at its first value, a running mean, or 1."""

    def __init__(self, mode: Normalisation, decay: float, value: float | None = None) -> None:
        self.mode, self.decay, self.value = mode, decay, value

    def __call__(self, loss: torch.Tensor) -> float:
        v = max(float(loss.detach()), 1e-8)
        if self.mode == "none":
            return 1.0
        if self.value is None:
            self.value = v
        elif self.mode == "ema":
            self.value = self.decay * self.value + (1 - self.decay) * v
        return self.value


class AmintLoss:
    """The aMINT loss: ``lambda_task * L_task / c_task + lambda_mint * L_mint / c_mint`` (the published form).

    ``L_task`` is the cross-entropy of the members' class logits, ``L_mint`` the binary
    cross-entropy of the membership logits of members (target 1) and external samples
    (target 0); ``c`` is each loss's first-batch value (``first-batch``, as in the authors'
    code), a running mean (``ema``) or 1 (``none``). One instance per training run: it keeps
    the normalisation state. :func:`train_active` uses this very class.

    Example:
        >>> loss_fn = AmintLoss()
        >>> logits, membership = auditable(torch.cat([x_members, x_external]))  # doctest: +SKIP
        >>> loss = loss_fn(logits[:len(y)], y, membership, len(y))  # doctest: +SKIP
    """

    def __init__(
        self,
        lambda_task: float = 1.0,
        lambda_mint: float = 1.0,
        normalisation: Normalisation = "first-batch",
        ema_decay: float = 0.98,
    ) -> None:
        if normalisation not in ("first-batch", "none", "ema"):
            raise ConfigError(f"normalisation must be first-batch, none or ema, got {normalisation!r}")
        if lambda_task < 0 or lambda_mint <= 0:
            raise ConfigError("lambda_task must be >= 0 and lambda_mint > 0")
        self.lambda_task, self.lambda_mint = float(lambda_task), float(lambda_mint)
        self.scales = [_Scale(normalisation, ema_decay), _Scale(normalisation, ema_decay)]
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(
        self, logits: torch.Tensor, labels: torch.Tensor, membership: torch.Tensor, n_members: int
    ) -> torch.Tensor:
        """The combined loss of one step.

        Args:
            logits: float (B_m, K) class logits of the members.
            labels: int64 (B_m,) their labels.
            membership: float (B_m + B_e,) membership logits, members first, then the external samples.
            n_members: B_m.

        Membership logits of shape (B, 1) are read as (B,); other shapes, float labels, and ``n_members`` that
        does not match the logits (or leaves no external sample) are refused in one line (:class:`DataError`).
        """
        logits, labels, membership, n_members = loss_inputs(logits, labels, membership, n_members)
        target = torch.zeros(len(membership), device=membership.device)
        target[:n_members] = 1.0
        l_task = nn.functional.cross_entropy(logits, labels)
        l_mint = nn.functional.binary_cross_entropy_with_logits(membership, target)
        return self.combine(l_task, l_mint)

    def combine(self, l_task: torch.Tensor, l_mint: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
        """Weight and normalise two computed losses; ``seen`` (2,) sets the normalisation instead (torchrun: the ranks' mean)."""
        self.last = (l_task.detach(), l_mint.detach())
        s_task, s_mint = (l_task, l_mint) if seen is None else (seen[0], seen[1])
        return self.lambda_task * l_task / self.scales[0](s_task) + self.lambda_mint * l_mint / self.scales[1](s_mint)


def train_active(
    model: ActiveModel,
    dataset: ImageDataset,
    members: np.ndarray,
    external: np.ndarray,
    *,
    val_members: np.ndarray,
    val_external: np.ndarray,
    config: ActiveConfig | None = None,
    test_indices: np.ndarray | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    device: str | torch.device | None = None,
) -> ActiveResult:
    """Train backbone and MINT head together, in place, and keep the best validation epoch.

    Each step takes a batch of members (task cross-entropy and BCE towards 1) and a batch of
    external samples (BCE towards 0 only); the loss is
    ``lambda_task * L_task / c_task + lambda_mint * L_mint / c_mint`` with ``c`` from the
    normalisation mode. Every epoch starts in train mode and is validated in eval mode on
    ``val_members`` (a sample of the members) against ``val_external`` (external samples no
    step trains on); the decision threshold is then calibrated on those two sets.
    A checkpoint is written after every epoch when ``checkpoint_dir`` is given;
    ``resume=True`` continues from it to the same weights as an uninterrupted run.

    Under ``torchrun`` the model trains in DistributedDataParallel: each rank takes its shard
    (padded like ``DistributedSampler``) of every epoch's seeded order of member / external
    pairs, so ``batch_size`` is per rank; the loss normalisation uses the mean of the ranks'
    losses; validation scores and logged metrics are gathered over all samples, each counted
    once; rank 0 writes the checkpoint and calls ``on_epoch``; every rank ends with the same
    weights and threshold.

    Args:
        model: the :class:`ActiveModel` (backbone + head).
        dataset: the pool.
        members, external: int arrays of pool indices to train on.
        val_members, val_external: int arrays for validation and threshold calibration;
            ``val_external`` must not overlap ``external`` or ``members``.
        config: the options.
        test_indices: optional; the task accuracy on them is logged each epoch (never used
            for any decision).
        checkpoint_dir: where ``checkpoint.pt`` goes.
        resume: continue from that checkpoint when there is one.
        show_progress: progress bar with live losses; None = only on a terminal.
        on_epoch: called with each epoch's history row (e.g. to log), on rank 0 only.
        device: where to train (``cpu``, ``cuda``, ``cuda:N``; default: the one set by
            :func:`mintaudit._tensor.use_device`, else the model's). On CUDA the steps run in
            bfloat16 autocast with channels-last images. The model is handed back on the device
            it came on.

    Returns:
        ActiveResult: history, best epoch, calibrated threshold, seconds.
    """
    config = config or ActiveConfig()
    members, external = np.asarray(members, np.int64), np.asarray(external, np.int64)
    val_members, val_external = np.asarray(val_members, np.int64), np.asarray(val_external, np.int64)
    for name, arr in (
        ("members", members),
        ("external", external),
        ("val_members", val_members),
        ("val_external", val_external),
    ):
        if arr.size == 0:
            raise ConfigError(f"aMINT training needs {name}; the split gave none")
    clash = np.intersect1d(val_external, np.r_[members, external])
    if clash.size:
        raise ConfigError(
            f"{clash.size} validation external samples are also trained on; hold them out of members and external"
        )
    home, dev, gen, opt = start_training(model, device, config.seed, config.lr, config.weight_decay)
    ce, bce = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss()
    loss_fn = AmintLoss(config.lambda_task, config.lambda_mint, config.normalisation, config.ema_decay)
    scales = loss_fn.scales
    result = ActiveResult()
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, start_epoch = 0, 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    run = run_signature(config, members=members, external=external, val_members=val_members, val_external=val_external)
    if config.lr_schedule != "constant":  # the schedule's length is part of the run: a longer resume would change it
        run["schedule_epochs"] = config.epochs
    state = read_checkpoint(ckpt_path, model, opt, gen, run, config.epochs) if resume else None
    if state is not None:
        try:
            best_state = state["best_model"]
            scales[0].value, scales[1].value = state["scales"]
            start_epoch, result.history = int(state["epoch"]), checkpoint_history(state)
            result.best_epoch, result.best_value = int(state["best_epoch"]), float(state["best_value"])
            bad_epochs, result.stopped_early = int(state["bad_epochs"]), bool(state["stopped"])
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"checkpoint {str(ckpt_path)!r} is not an aMINT checkpoint ({e}); drop --resume") from e
    net = distributed.wrap(model, dev)  # the model itself outside torchrun
    show = show_progress if distributed.is_main() else False
    t0 = time.perf_counter()
    b = config.batch_size
    n_steps = math.ceil(distributed.shard(len(members)).positions.size / b)
    for epoch in range(start_epoch, config.epochs):
        if result.stopped_early:
            break
        net.train()  # every epoch: validation below switched to eval mode
        order_m = members[torch.randperm(len(members), generator=gen).numpy()]
        reps = math.ceil(len(members) / len(external))
        order_e = np.concatenate([external[torch.randperm(len(external), generator=gen).numpy()] for _ in range(reps)])
        # the same pairs on every rank (same generator); each rank takes its shard of them
        part = distributed.shard(len(order_m))
        mine_m, mine_e = order_m[part.positions], order_e[: len(order_m)][part.positions]
        sums = np.zeros(5)
        bar = progress(
            range(n_steps), total=n_steps, desc=f"aMINT epoch {epoch + 1}/{config.epochs}", enabled=show, unit="step"
        )
        for step in bar:
            if config.lr_schedule != "constant":  # from (epoch, step) alone: a resumed run gets the same rates
                for group in opt.param_groups:
                    group["lr"] = scheduled_lr(config, epoch, step, n_steps)
            m_idx = mine_m[step * b : (step + 1) * b]
            e_idx = mine_e[step * b : step * b + len(m_idx)]
            xm, xe = dataset.batch(m_idx, dev), dataset.batch(e_idx, dev)
            if config.augment:  # after sharding: each rank augments its own pairs
                both = augment(torch.cat([xm, xe]), augment_generator(config.seed, epoch, step))
                xm, xe = both[: len(m_idx)], both[len(m_idx) :]
            s = config.mint_grad_scale
            y = torch.from_numpy(dataset.labels[m_idx]).to(dev)
            target = torch.cat([torch.ones(len(m_idx)), torch.zeros(len(e_idx))]).to(dev)
            with autocast(dev):
                if config.joint_forward:
                    logits, mint = net(to_device(torch.cat([xm, xe]), dev), s)
                    logits = logits[: len(m_idx)]
                else:
                    logits, mint_m = net(to_device(xm, dev), s)
                    mint = torch.cat([mint_m, net(to_device(xe, dev), s)[1]])
                l_task, l_mint = ce(logits, y), bce(mint, target)
            # one normalisation for all ranks under torchrun: the mean of their losses
            seen = (
                distributed.average(torch.stack([l_task.detach(), l_mint.detach()]).float())
                if distributed.is_active()
                else None
            )
            loss = loss_fn.combine(l_task, l_mint, seen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = len(m_idx)
            keep = part.valid[step * b : step * b + n]
            if keep.all():
                sums += [
                    l_task.item() * n,
                    l_mint.item() * n,
                    int((logits.argmax(1) == y).sum()),
                    int(((mint >= 0) == (target > 0.5)).sum()) / 2,
                    n,
                ]
            else:  # padding of the last ranks' shards: trained on, not counted twice
                k = torch.from_numpy(keep).to(y.device)
                k2 = torch.cat([k, k])
                sums += [
                    float(nn.functional.cross_entropy(logits.detach()[k].float(), y[k], reduction="sum")),
                    float(
                        nn.functional.binary_cross_entropy_with_logits(
                            mint.detach()[k2].float(), target[k2], reduction="sum"
                        )
                    )
                    / 2,
                    int(((logits.argmax(1) == y) & k).sum()),
                    int((((mint >= 0) == (target > 0.5)) & k2).sum()) / 2,
                    int(k.sum()),
                ]
            if hasattr(bar, "set_postfix") and step % 5 == 0:
                bar.set_postfix(
                    task=f"{sums[0] / sums[4]:.3f}",
                    mint=f"{sums[1] / sums[4]:.3f}",
                    acc=f"{sums[2] / sums[4]:.3f}",
                    mint_acc=f"{sums[3] / sums[4]:.3f}",
                )
        if distributed.is_active():
            sums = distributed.all_reduce_sum(sums)
            distributed.broadcast_module(model, buffers_only=True)  # BatchNorm statistics: rank 0's
        val_auc, val_acc, _, _ = _validate(model, dataset, val_members, val_external)
        row = {
            "epoch": float(epoch + 1),
            "task_loss": float(sums[0] / sums[4]),
            "mint_loss": float(sums[1] / sums[4]),
            "train_accuracy": float(sums[2] / sums[4]),
            "mint_train_accuracy": float(sums[3] / sums[4]),
            "val_auc": float(val_auc),
            "val_accuracy": float(val_acc),
        }
        if test_indices is not None and len(test_indices):
            correct = distributed.map_shards(lambda part: _task_correct(model, dataset, part), test_indices)
            row["test_accuracy"] = int(correct.sum()) / max(len(correct), 1)
        result.history.append(row)
        value = val_auc if config.monitor == "auc" else val_acc
        if best_state is None or value > result.best_value:
            result.best_value, result.best_epoch, bad_epochs = value, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            result.stopped_early = config.patience > 0 and bad_epochs >= config.patience
        if on_epoch is not None and distributed.is_main():
            on_epoch(row)
        write_checkpoint(
            ckpt_path,
            model,
            opt,
            gen,
            epoch + 1,
            result.history,
            run,
            best_model=best_state,
            scales=[scales[0].value, scales[1].value],
            best_epoch=result.best_epoch,
            best_value=result.best_value,
            bad_epochs=bad_epochs,
            stopped=result.stopped_early,
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    distributed.broadcast_module(model)  # the same final weights on every rank, whatever rounding did
    _, _, pos, neg = _validate(model, dataset, val_members, val_external)
    y = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    result.threshold = float(best_threshold(y, np.r_[pos, neg]))
    if dev.type == "cuda":
        model.to(memory_format=torch.contiguous_format)
    if dev != home:
        model.to(home)
    return result

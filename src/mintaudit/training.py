"""The one plain training loop, for audited models (and later reference / shadow models)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
from mintaudit._io import atomic_path
from mintaudit._logits import logits_of as read_logits
from mintaudit._progress import progress
from mintaudit._tensor import autocast, device_of, iter_batches, resolve_device, to_device
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, WeightsError

__all__ = [
    "PackageTrainer",
    "TrainConfig",
    "TrainResult",
    "train_classifier",
    "accuracy",
    "augment",
    "augment_generator",
    "correct_per_sample",
]

CHECKPOINT = "checkpoint.pt"


def check_schedule(epochs: int, batch_size: int, lr: float) -> None:
    """Refuse a training schedule that cannot run (shared by the plain and the aMINT trainer)."""
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if lr <= 0:
        raise ConfigError(f"lr must be > 0, got {lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_classifier` (Adam on cross-entropy).

    Args:
        epochs, batch_size, lr, weight_decay: Adam's schedule (``weight_decay`` is its L2 term).
        seed: seeds the epoch orders, dropout and the augmentation draws; the pipeline (and
            the reference models) also seed the initial weights with it, building the model
            right after ``torch.manual_seed(seed)``.
        augment: random horizontal flip and random crop after 2-px zero padding (black
            pixels), drawn per batch from a generator seeded by (seed, epoch, step, rank), so
            ``resume`` stays exact; off by default.
        label_smoothing: cross-entropy towards ``1 - s`` on the true class and ``s / K``
            spread over all K classes (0: plain cross-entropy, the default).
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    augment: bool = False
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_schedule(self.epochs, self.batch_size, self.lr)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}; e.g. 0.1")

    def to_dict(self) -> dict[str, Any]:
        """The options as a dict; options added later appear only when set, so the descriptions
        (and cache keys) of models trained before they existed stay valid."""
        d = asdict(self)
        for key, default in _LATER_OPTIONS.items():
            if d[key] == default:
                del d[key]
        return d


_LATER_OPTIONS: dict[str, Any] = {"augment": False, "label_smoothing": 0.0}


def start_training(
    model: nn.Module, device: str | torch.device | None, seed: int, lr: float, weight_decay: float
) -> tuple[torch.device, torch.device, torch.Generator, torch.optim.Adam]:
    """Move the model to its device (channels-last on CUDA), seed, and make the sampling generator and Adam
    (distributed where the run was asked to be: :mod:`mintaudit.distributed`). Returns (the model's original
    device, its device, generator, optimiser)."""
    home, dev = device_of(model), resolve_device(device, model)
    if dev != home:
        model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return home, dev, gen, torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def run_signature(config: Any, **indices: np.ndarray) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the options of ``config`` (a dataclass) but
    ``epochs``, and a digest of each array of training ``indices`` (members, external...)."""
    d = {k: v for k, v in asdict(config).items() if k != "epochs"}  # every option, set or not
    for name, idx in indices.items():
        arr = np.ascontiguousarray(np.asarray(idx, dtype=np.int64))
        d[name] = f"{len(arr)} samples, sha256 {hashlib.sha256(arr.data).hexdigest()[:16]}"
    return d


def _check_resume(path: Path, state: dict[str, Any], run: dict[str, Any] | None, epochs: int | None) -> None:
    """ConfigError naming the first differences between the checkpoint's run and this one."""
    if run is None:
        return
    if "run" not in state:
        raise ConfigError(
            f"checkpoint {str(path)!r} records no training options (an older mintaudit wrote it), so "
            "resuming it cannot be checked; drop --resume to train anew"
        )
    saved = json.loads(state["run"])
    now = json.loads(json.dumps(run, sort_keys=True))
    diff = [
        f"{k} {saved.get(k)!r} (now {now.get(k)!r})"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    ]
    if diff:
        raise ConfigError(
            f"checkpoint {str(path)!r} was trained with other options: {'; '.join(diff[:4])}; resume with "
            "the checkpoint's options, or drop --resume to train anew"
        )
    done = int(state["epoch"])
    if epochs is not None and epochs < done:
        raise ConfigError(
            f"checkpoint {str(path)!r} has already trained {done} epochs, more than the {epochs} asked; "
            f"give --epochs {done} or more, or drop --resume to train anew"
        )


def read_checkpoint(
    path: Path | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    run: dict[str, Any] | None = None,
    epochs: int | None = None,
) -> dict[str, Any] | None:
    """Resume from ``path`` (when it exists): rank 0 reads it (``weights_only``), every rank restores
    the model, the optimiser and both random states from it. Returns the checkpoint, or None.

    With ``run`` (see :func:`run_signature`), a checkpoint written with other options or
    training samples is refused (ConfigError naming the differences), and so is one that has
    trained more than ``epochs`` epochs: a resume ends exactly where an uninterrupted run would.
    """
    if path is None:
        return None
    state = None
    try:
        if distributed.is_main() and path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = distributed.broadcast_object(state)
        if state is not None:
            _check_resume(path, state, run, epochs)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            gen.set_state(state["sampler_rng"])
    except ConfigError:
        raise
    except (KeyError, RuntimeError, ValueError) as e:
        raise WeightsError(f"checkpoint {str(path)!r} does not fit this model/run ({e}); drop --resume") from e
    return state


def checkpoint_history(state: dict[str, Any]) -> list[dict[str, float]]:
    """The per-epoch history rows stored in a checkpoint."""
    return [dict(zip(state["history_keys"], row)) for row in state["history"].tolist()]


def write_checkpoint(
    path: Path | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    epoch: int,
    history: list[dict[str, float]],
    run: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Write the state after ``epoch`` (model, optimiser, random states, history, the ``run``
    signature that a resume must match, ``extra``) atomically, on rank 0."""
    if path is None or not distributed.is_main():
        return
    keys = list(history[-1])
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "sampler_rng": gen.get_state(),
        "epoch": epoch,
        "history_keys": keys,
        # float64: a resumed run's history is the uninterrupted run's, digit for digit
        "history": torch.tensor([[r.get(k, float("nan")) for k in keys] for r in history], dtype=torch.float64),
        **({"run": json.dumps(run, sort_keys=True)} if run is not None else {}),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@dataclass
class TrainResult:
    """What training produced: per-epoch history and final accuracies."""

    history: list[dict[str, float]] = field(default_factory=list)
    train_accuracy: float = float("nan")
    test_accuracy: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def correct_per_sample(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    batch_size: int = 256,
    logits_of: Callable[[Any], torch.Tensor] | None = None,
) -> np.ndarray:
    """bool (N,): whether ``model`` (eval mode, mode restored; on its own device) classifies each sample right.

    ``logits_of`` picks the class logits from the model's output when it returns more (aMINT)."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = [np.zeros(0, dtype=bool)]
    try:
        for x, y, _ in iter_batches(dataset, indices, batch_size, device=device):
            out_ = model(to_device(x, device))
            logits = read_logits(out_) if logits_of is None else logits_of(out_)
            out.append((logits.argmax(1) == y).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


def accuracy(model: nn.Module, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode, mode restored) on ``indices`` of ``dataset``."""
    return int(correct_per_sample(model, dataset, indices, batch_size).sum()) / max(len(indices), 1)


def _shared_accuracy(model: nn.Module, dataset: ImageDataset, indices: np.ndarray) -> float:
    """:func:`accuracy` computed by all ranks together, each on its shard, every sample counted once."""
    if not distributed.is_active():
        return accuracy(model, dataset, indices)
    correct = distributed.map_shards(
        lambda part: correct_per_sample(model, dataset, part), np.asarray(indices, np.int64)
    )
    return int(correct.sum()) / max(len(correct), 1)


_PAD = 2  # pixels of zero padding before the random crop


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random crop (2-px padding with black pixels) of a batch.

    Args:
        x: float (B, C, H, W), normalised (black = -1).
        gen: a CPU generator; every draw comes from it, none from the global RNG.

    Returns:
        A new float (B, C, H, W) tensor on ``x``'s device.
    """
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    dy = torch.randint(0, 2 * _PAD + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * _PAD + 1, (b,), generator=gen)
    flip, dy, dx = flip.to(x.device), dy.to(x.device), dx.to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = nn.functional.pad(x, (_PAD, _PAD, _PAD, _PAD), value=-1.0)  # -1 = a black pixel after normalisation
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def augment_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The augmentation generator of one step: a function of (seed, epoch, step, rank) alone."""
    key = hashlib.sha256(f"augment|{seed}|{epoch}|{step}|{distributed.rank()}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & (2**63 - 1))


def train_classifier(
    model: nn.Module,
    dataset: ImageDataset,
    train_indices: np.ndarray,
    config: TrainConfig,
    *,
    test_indices: np.ndarray | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_indices`` of ``dataset`` with Adam and cross-entropy.

    A checkpoint (model, optimiser, RNG states, history) is written atomically after every
    epoch when ``checkpoint_dir`` is given; ``resume=True`` continues from it and ends in the
    same weights as an uninterrupted run with the same seed.

    Under ``torchrun`` (see :mod:`mintaudit.distributed`) the model trains in
    DistributedDataParallel: every rank shuffles the members with the same seeded generator and
    takes its shard of the order (padded like ``DistributedSampler``), so ``batch_size`` is per
    rank; rank 0 writes the checkpoint; the logged metrics count every sample once; and every
    rank ends with the same weights.

    Args:
        model: the classifier, (B, C, H, W) float -> (B, num_classes) logits.
        dataset: the pool.
        train_indices: int array of pool indices to train on (the members).
        config: epochs, batch size, learning rate, weight decay, seed, augmentation, label
            smoothing (see :class:`TrainConfig`).
        test_indices: optional held-out indices whose accuracy is logged each epoch.
        checkpoint_dir: where ``checkpoint.pt`` goes.
        resume: continue from the checkpoint in ``checkpoint_dir`` (if there is one); one written
            with other options or members, or past ``config.epochs``, is refused (ConfigError).
        show_progress: progress bar; None = only on a terminal.
        device: where to train (``cpu``, ``cuda``, ``cuda:N``; default: the one set by
            :func:`mintaudit._tensor.use_device`, else the model's). On CUDA the steps run in
            bfloat16 autocast with channels-last images. The model is handed back on the device
            it came on.

    Returns:
        TrainResult with the history and the final train/test accuracy.
    """
    if len(train_indices) == 0:
        raise ConfigError("no training samples; check the member split")
    train_indices = np.asarray(train_indices, dtype=np.int64)
    home, dev, gen, opt = start_training(model, device, config.seed, config.lr, config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    result = TrainResult()
    start_epoch = 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    run = run_signature(config, train_indices=train_indices)
    state = read_checkpoint(ckpt_path, model, opt, gen, run, config.epochs) if resume else None
    if state is not None:
        start_epoch, result.history = int(state["epoch"]), checkpoint_history(state)
    net = distributed.wrap(model, dev)  # the model itself outside torchrun
    show = show_progress if distributed.is_main() else False
    t0 = time.perf_counter()
    n_batches = -(-distributed.shard(len(train_indices)).positions.size // config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        net.train()
        total, correct, loss_sum = 0, 0, 0.0
        # the epoch's order is the same on every rank (same generator); each rank takes its shard
        order = train_indices[torch.randperm(len(train_indices), generator=gen).numpy()]
        part = distributed.shard(len(order))
        bar = progress(
            iter_batches(dataset, order[part.positions], config.batch_size, device=dev),
            total=n_batches,
            desc=f"train epoch {epoch + 1}/{config.epochs}",
            enabled=show,
            unit="batch",
        )
        for step, (x, y, _) in enumerate(bar):
            opt.zero_grad(set_to_none=True)
            x = to_device(x, dev)
            if config.augment:  # after sharding: each rank augments its own batch
                x = to_device(augment(x, augment_generator(config.seed, epoch, step)), dev)
            with autocast(dev):
                logits = read_logits(net(x))
                loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            keep = part.valid[step * config.batch_size : step * config.batch_size + len(y)]
            if keep.all():
                total += len(y)
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
            else:  # padding of the last ranks' shards: trained on, not counted twice
                k = torch.from_numpy(keep).to(y.device)
                total += int(k.sum())
                loss_sum += float(
                    nn.functional.cross_entropy(
                        logits.detach()[k].float(), y[k], reduction="sum", label_smoothing=config.label_smoothing
                    )
                )
                correct += int(((logits.argmax(1) == y) & k).sum())
        if distributed.is_active():
            total, correct, loss_sum = distributed.all_reduce_sum([total, correct, loss_sum]).tolist()
            distributed.broadcast_module(model, buffers_only=True)  # BatchNorm statistics: rank 0's
        row = {"epoch": float(epoch + 1), "loss": loss_sum / total, "train_accuracy": correct / total}
        if test_indices is not None and len(test_indices):
            row["test_accuracy"] = _shared_accuracy(model, dataset, test_indices)
        result.history.append(row)
        write_checkpoint(ckpt_path, model, opt, gen, epoch + 1, result.history, run)
    model.eval()
    result.seconds = time.perf_counter() - t0
    distributed.broadcast_module(model)  # the same final weights on every rank, whatever rounding did
    result.train_accuracy = _shared_accuracy(model, dataset, train_indices)
    if test_indices is not None and len(test_indices):
        result.test_accuracy = _shared_accuracy(model, dataset, test_indices)
    if dev.type == "cuda":
        model.to(memory_format=torch.contiguous_format)
    if dev != home:
        model.to(home)
    return result


class PackageTrainer:
    """The package's recipe as a :class:`mintaudit.protocols.Trainer`: Adam on cross-entropy over a loader.

    ``trainer(model, loader)`` trains ``model`` in place for ``config.epochs`` passes over
    ``loader`` (batches of ``(x, y)``) with the config's learning rate, weight decay and label
    smoothing, after seeding torch with ``config.seed``, and returns it in eval mode. It is the
    loader-shaped twin of :func:`train_classifier` (which reads a pool by index, checkpoints and
    augments) for reference models trained from a user's loader.

    Example:
        >>> net = nn.Linear(4, 2)
        >>> loader = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
        >>> PackageTrainer(TrainConfig(epochs=1))(net, loader) is net
        True
    """

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()

    def __call__(self, model: nn.Module, loader: Any) -> nn.Module:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()
        for _ in range(cfg.epochs):
            for x, y in loader:
                loss = nn.functional.cross_entropy(read_logits(model(x)), y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        return model

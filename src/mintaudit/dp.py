"""DP-SGD training of the audited model through Opacus (the optional ``dp`` extra).

``mintaudit train --dp-epsilon E --dp-delta D --max-grad-norm C`` trains with Opacus'
``PrivacyEngine.make_private_with_epsilon``: per-sample gradients clipped to norm ``C``, Gaussian
noise whose multiplier the accountant (PRV by default) picks so that the whole run is
``(E, D)``-DP, and Poisson sampling of the batches (each member joins each step with probability
``batch_size / members``), as Opacus does it. The epsilon the accountant reports after the last
step is recorded beside the target.

Opacus cannot make BatchNorm private (its statistics mix samples), so the model goes through
``opacus.validators.ModuleValidator.fix`` first: every BatchNorm becomes a GroupNorm
(``gcd(32, channels)`` groups). The replacements are named in ``model.json`` (``dp.replaced``).
The saved model is rebuilt later by building the spec as usual and applying the same
``ModuleValidator.fix`` before loading the weights (:func:`rebuild_dp_model`): that works for
every model, the zoo's and a user's ``package.module:factory``, without a per-model option, and
the fix is a deterministic function of the architecture. A layer that ``fix`` cannot make
private (a trainable layer with buffers, say) is refused by name.

The plain training path (:func:`mintaudit.training.train_classifier`) is untouched: DP runs its
own short loop here. Not supported with DP: ``--resume`` (no checkpoints are written),
torchrun, augmentation.

Example:
    >>> cfg = DPConfig(epsilon=8.0, delta=1e-5, max_grad_norm=1.0)  # doctest: +SKIP
    >>> net, replaced = make_private_ready(build_model(spec))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
from mintaudit._progress import progress
from mintaudit._tensor import device_of, resolve_device
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, ModelError
from mintaudit.training import TrainConfig, TrainResult, accuracy

__all__ = [
    "DPConfig",
    "dp_config",
    "require_opacus",
    "make_private_ready",
    "rebuild_dp_model",
    "train_dp",
    "INSTALL_HINT",
]

INSTALL_HINT = "pip install 'mintaudit[dp]'"
ACCOUNTANTS = ("prv", "rdp")


@dataclass(frozen=True)
class DPConfig:
    """The DP-SGD target: ``(epsilon, delta)`` for the whole run, the per-sample clipping norm, the accountant."""

    epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    accountant: str = "prv"

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"--dp-epsilon must be a finite number > 0, got {self.epsilon!r}; e.g. --dp-epsilon 8")
        if not (isinstance(self.delta, (int, float)) and 0.0 < self.delta < 1.0):
            raise ConfigError(
                f"--dp-delta must lie in (0, 1), got {self.delta!r}; e.g. --dp-delta 1e-5 (below 1 / members)"
            )
        if not (
            isinstance(self.max_grad_norm, (int, float))
            and math.isfinite(self.max_grad_norm)
            and self.max_grad_norm > 0
        ):
            raise ConfigError(
                f"--max-grad-norm must be a finite number > 0, got {self.max_grad_norm!r}; e.g. --max-grad-norm 1"
            )
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(f"the DP accountant must be one of {', '.join(ACCOUNTANTS)}, got {self.accountant!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dp_config(epsilon: float | None, delta: float | None, max_grad_norm: float | None) -> DPConfig | None:
    """The DP target of the command-line options, or None when none is given; checks Opacus is installed.

    Raises:
        ConfigError: epsilon without delta (or the reverse), ``max_grad_norm`` without epsilon,
            values out of range, or Opacus missing.
    """
    if epsilon is None and delta is None:
        if max_grad_norm is not None:
            raise ConfigError(
                "--max-grad-norm applies to DP-SGD training only; add --dp-epsilon E --dp-delta D, or drop "
                "--max-grad-norm"
            )
        return None
    if delta is None:
        raise ConfigError(
            "--dp-epsilon needs --dp-delta: an epsilon means nothing without its delta; add e.g. "
            "--dp-delta 1e-5 (below 1 / members)"
        )
    if epsilon is None:
        raise ConfigError("--dp-delta needs --dp-epsilon (the privacy target); add e.g. --dp-epsilon 8")
    cfg = DPConfig(float(epsilon), float(delta), 1.0 if max_grad_norm is None else float(max_grad_norm))
    require_opacus()
    return cfg


def require_opacus() -> Any:
    """The ``opacus`` module, or a ConfigError with the install hint."""
    try:
        import opacus
    except ImportError as e:
        raise ConfigError(
            f"DP-SGD needs Opacus, which is not installed ({e}); install it with {INSTALL_HINT}"
        ) from None
    return opacus


def _unfixable(model: nn.Module) -> list[str]:
    """``layer (type): reason`` of every layer Opacus still cannot make private (model in training mode)."""
    from opacus.utils.module_utils import trainable_modules
    from opacus.validators import ModuleValidator

    problems: dict[str, str] = {}
    for name, sub in trainable_modules(model):
        label = f"{name or '(root)'} ({type(sub).__name__})"
        validator = ModuleValidator.VALIDATORS.get(type(sub))
        errors = [" ".join(str(e).split()) for e in validator(sub)] if validator is not None else []
        if errors:
            problems[label] = errors[0]
        elif any(True for _ in sub.buffers()):  # what GradSampleModule refuses: its buffers escape the DP guarantee
            buffers = ", ".join(n for n, _ in sub.named_buffers())
            problems[label] = f"a trainable layer with buffers ({buffers}), which would escape the DP guarantee"
    return [f"{label}: {why}" for label, why in problems.items()]


def make_private_ready(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``ModuleValidator.fix(model)`` and the list of replacements (``"block1.bn1: BatchNorm2d -> GroupNorm(32)"``).

    The fixed model is a new module (Opacus clones); ``model`` itself is not changed.

    Raises:
        ModelError: a layer Opacus cannot make private even after ``fix``, named.
    """
    require_opacus()
    from opacus.validators import ModuleValidator

    was_training = model.training
    model.train()
    try:
        fixed = ModuleValidator.fix(model)
    finally:
        model.train(was_training)
    fixed.train()
    before = dict(model.named_modules())
    replaced = []
    for name, sub in fixed.named_modules():
        old = before.get(name)
        if old is not None and type(old) is not type(sub):
            groups = f"({sub.num_groups} groups)" if isinstance(sub, nn.GroupNorm) else ""
            replaced.append(f"{name}: {type(old).__name__} -> {type(sub).__name__}{groups}")
    problems = _unfixable(fixed)
    if problems:
        raise ModelError(
            f"Opacus cannot make this model private: layer {problems[0]}"
            f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; ModuleValidator.fix "
            "cannot replace it: use a layer without buffers (GroupNorm instead of BatchNorm), or train "
            "without --dp-epsilon"
        )
    return fixed, replaced


def rebuild_dp_model(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """A freshly built model made into the architecture a DP run trained (``record``: ``model.json``'s ``dp``).

    With no replacement recorded the model is returned as it is; otherwise the same
    ``ModuleValidator.fix`` is applied, so the saved weights fit.
    """
    if not record.get("replaced"):
        return model
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise ModelError(
            f"this model was trained with DP-SGD (its BatchNorm layers replaced by Opacus), and rebuilding "
            f"it needs Opacus; install it with {INSTALL_HINT}"
        ) from None
    from opacus.validators import ModuleValidator

    was_training = model.training
    fixed = ModuleValidator.fix(model.train())
    fixed.train(was_training)
    return fixed


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Opacus' UserWarnings silenced (secure RNG off, the accountant's alpha range, hooks on the first layer): the
    record says what matters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"opacus(\.|$)")
        # torch's note on the first layer's hook (the images need no gradient): expected with per-sample gradients
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        yield


def _loader(dataset: ImageDataset, indices: np.ndarray, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    """A DataLoader of the training samples (the model's inputs, on the CPU) with a seeded generator."""
    from torch.utils.data import DataLoader, TensorDataset

    chunks = [dataset.batch(indices[s : s + 1024]) for s in range(0, len(indices), 1024)]
    x = torch.cat(chunks) if chunks else torch.zeros(0)
    y = torch.from_numpy(np.asarray(dataset.labels[indices], dtype=np.int64))
    return DataLoader(
        TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )


def train_dp(
    model: nn.Module,
    dataset: ImageDataset,
    train_indices: np.ndarray,
    config: TrainConfig,
    dp: DPConfig,
    *,
    test_indices: np.ndarray | None = None,
    show_progress: bool | None = None,
    device: str | torch.device | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train ``model`` (already :func:`make_private_ready`) in place with DP-SGD (Adam on clipped, noised gradients).

    The batches are Poisson samples with rate ``config.batch_size / len(train_indices)`` (the
    expected batch size is ``config.batch_size``); the noise multiplier is the smallest that keeps
    ``config.epochs`` epochs within ``(dp.epsilon, dp.delta)`` under ``dp.accountant``. The
    batches, the noise and the weights are seeded by ``config.seed``.

    Returns:
        (the training result, the DP record: target and spent epsilon, delta, clipping norm,
        accountant, noise multiplier, sample rate, steps).
    """
    require_opacus()
    from opacus import PrivacyEngine

    if distributed.is_active():
        raise ConfigError("DP-SGD training does not run under torchrun here; run it in one process")
    if config.augment:
        raise ConfigError("augmentation is not supported with DP-SGD training; turn it off")
    train_indices = np.asarray(train_indices, dtype=np.int64)
    if len(train_indices) < 2:
        raise ConfigError(f"DP-SGD needs at least 2 training samples, got {len(train_indices)}")
    if dp.delta >= 1.0 / len(train_indices):
        raise ConfigError(
            f"--dp-delta {dp.delta:g} is not below 1 / {len(train_indices)} training samples "
            f"({1.0 / len(train_indices):.3g}): such a delta allows releasing whole records; give e.g. "
            f"--dp-delta {10 ** math.floor(math.log10(0.1 / len(train_indices))):g}"
        )
    if config.batch_size > len(train_indices):
        raise ConfigError(
            f"--batch-size {config.batch_size} exceeds the {len(train_indices)} training samples; with "
            "Poisson sampling the expected batch must be smaller: give a smaller --batch-size"
        )
    home, dev = device_of(model), resolve_device(device, model)
    model.to(dev)
    torch.manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = _loader(dataset, train_indices, config.batch_size, config.seed)
    noise_gen = torch.Generator(device=dev).manual_seed(config.seed + 1)
    with _quiet_opacus():  # its notes on secure RNG and on the accountant's alpha range
        engine = PrivacyEngine(accountant=dp.accountant)
        dp_model, dp_opt, dp_loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=opt,
            data_loader=loader,
            target_epsilon=dp.epsilon,
            target_delta=dp.delta,
            epochs=config.epochs,
            max_grad_norm=dp.max_grad_norm,
            noise_generator=noise_gen,
            poisson_sampling=True,
        )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    result = TrainResult()
    steps = 0
    t0 = time.perf_counter()
    try:
        with _quiet_opacus():
            for epoch in range(config.epochs):
                dp_model.train()
                total, correct, loss_sum = 0, 0, 0.0
                bar = progress(
                    dp_loader,
                    total=len(dp_loader),
                    desc=f"DP-SGD epoch {epoch + 1}/{config.epochs}",
                    enabled=show_progress,
                    unit="batch",
                )
                for x, y in bar:
                    x, y = x.to(dev), y.to(dev)
                    dp_opt.zero_grad(set_to_none=True)
                    logits = dp_model(x)
                    loss = loss_fn(logits, y) if len(y) else logits.sum() * 0.0
                    loss.backward()
                    dp_opt.step()  # clipping, noise and the accountant's step, even on an empty Poisson batch
                    steps += 1
                    total += len(y)
                    loss_sum += float(loss.detach()) * len(y)
                    correct += int((logits.detach().argmax(1) == y).sum())
                row = {
                    "epoch": float(epoch + 1),
                    "loss": loss_sum / max(total, 1),
                    "train_accuracy": correct / max(total, 1),
                }
                if test_indices is not None and len(test_indices):
                    row["test_accuracy"] = accuracy(model, dataset, test_indices)
                result.history.append(row)
    finally:
        dp_model._close()  # hooks removed, per-sample gradients dropped: ``model`` is a plain module again
        for p in model.parameters():
            for attr in ("grad_sample", "_current_grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)
            p.grad = None
    model.eval()
    result.seconds = time.perf_counter() - t0
    result.train_accuracy = accuracy(model, dataset, train_indices)
    if test_indices is not None and len(test_indices):
        result.test_accuracy = accuracy(model, dataset, test_indices)
    if dev != home:
        model.to(home)
    with _quiet_opacus():
        spent = float(engine.get_epsilon(dp.delta))
    record = {
        "epsilon_target": dp.epsilon,
        "epsilon_spent": spent,
        "delta": dp.delta,
        "max_grad_norm": dp.max_grad_norm,
        "accountant": dp.accountant,
        "noise_multiplier": float(dp_opt.noise_multiplier),
        "sample_rate": 1.0 / len(dp_loader),
        "expected_batch_size": config.batch_size,
        "steps": steps,
        "optimizer": "adam",
        "sampling": "poisson (Opacus DPDataLoader)",
    }
    return result, record

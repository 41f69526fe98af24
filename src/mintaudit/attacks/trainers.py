"""Reference models trained by the user's recipe: ``trainer(model, loader) -> model``.

LiRA, RMIA and the other reference attacks are only sound when the reference models are trained
like the audited model. A :class:`ReferenceTrainer` carries the user's recipe (any callable
``trainer(model, loader) -> model``, :class:`mintaudit.protocols.Trainer`) and, from Python, how to
build a fresh untrained model. For reference model r the tool builds the loader from that model's
training ids (a map-style dataset over the pool, batch size ``batch_size``, shuffled by a generator
seeded with the model's seed), seeds torch with that seed, builds the model, seeds torch again and
calls the trainer once. The reference cache key holds :meth:`ReferenceTrainer.describe`: the
trainer's qualified name, a hash of its source (or the ``version`` given), its keyword arguments and
the batch size, so another recipe never reads a cached model of this one.

Example:
    >>> def my_recipe(model, loader, epochs=3):
    ...     opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ...     for _ in range(epochs):
    ...         for x, y in loader:
    ...             opt.zero_grad()
    ...             nn.functional.cross_entropy(model(x), y).backward()
    ...             opt.step()
    ...     return model
    >>> recipe = ReferenceTrainer.of(my_recipe, build=lambda: nn.Linear(4, 2), args={"epochs": 5})
    >>> recipe.describe()["name"], recipe.describe()["args"]
    ('mintaudit.attacks.trainers:my_recipe', {'epochs': 5})
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_path
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, ModelError

__all__ = ["ReferenceTrainer", "load_trainer", "pool_loader"]


def _qualname(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        return _qualname(obj.func)
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) else type(obj)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(obj).__name__)}"


def _identity(obj: Any) -> str:
    """The text that identifies a recipe: its source, and what it closes over or was bound to.

    A function: its source, defaults and closure values; a ``functools.partial``: its function's,
    with the bound arguments; a callable object: its class's source and its attributes (so
    ``PackageTrainer(TrainConfig(epochs=1))`` and ``epochs=5`` differ). Values are read by ``repr``.
    """
    if isinstance(obj, functools.partial):
        return f"{_identity(obj.func)}|{obj.args!r}|{sorted(obj.keywords.items())!r}"
    if inspect.ismethod(obj):
        return f"{_identity(obj.__func__)}|{_identity(obj.__self__)}"
    if inspect.isfunction(obj):
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):
            text = _qualname(obj)
        cells = [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
        return f"{text}|{obj.__defaults__!r}|{obj.__kwdefaults__!r}|{cells!r}"
    try:
        text = inspect.getsource(obj if inspect.isclass(obj) else type(obj))
    except (OSError, TypeError):
        text = _qualname(obj)
    state = sorted(vars(obj).items()) if not inspect.isclass(obj) and hasattr(obj, "__dict__") else []
    return f"{text}|{state!r}"


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _source_hash(obj: Any) -> str:
    """SHA-256 (16 hex) of :func:`_identity`: another source or bound value is another recipe."""
    return hashlib.sha256(_identity(obj).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ReferenceTrainer:
    """How reference models are built and trained, and what of it keys their cache.

    Attributes:
        fn: ``fn(model, loader, **args) -> model`` (the user's recipe); None: the package's loop
            (:func:`mintaudit.training.train_classifier`), e.g. with a user's ``build`` only.
        build: ``build() -> nn.Module``, a fresh untrained model (Python); None: the audited
            model's architecture (``mintaudit attack``: its zoo name or factory).
        name: the recipe's qualified name (``package.module:function``).
        version: a hash of the recipe's source, or the ``trainer_version`` the user gave.
        args: keyword arguments passed to ``fn`` (``--trainer-arg KEY=VALUE``).
        batch_size: the loader's batch size.
        build_name, build_version: the same two for ``build``.
    """

    fn: Callable[..., Any] | None = field(default=None, compare=False)
    build: Callable[[], nn.Module] | None = field(default=None, compare=False)
    name: str = "mintaudit.training:train_classifier"
    version: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    build_name: str = ""
    build_version: str = ""

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any] | None,
        *,
        build: Callable[[], nn.Module] | None = None,
        args: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        version: str | None = None,
        name: str | None = None,
    ) -> ReferenceTrainer:
        """A trainer for ``fn`` (None: the package's loop) and ``build``, its name and source hash read off them."""
        if fn is not None and not callable(fn):
            raise ConfigError(f"trainer must be a callable trainer(model, loader) -> model; given {type(fn).__name__}")
        if build is not None and not callable(build):
            raise ConfigError(f"build must be a callable returning a fresh model; given {type(build).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"trainer_batch_size must be a whole number >= 1, got {batch_size!r}; e.g. 64")
        if version is not None and (not isinstance(version, str) or not version):
            raise ConfigError(f"trainer_version must be a non-empty string, got {version!r}; e.g. 'recipe-v2'")
        return cls(
            fn,
            build,
            name or (_qualname(fn) if fn is not None else cls.name),
            version or (_source_hash(fn) if fn is not None else ""),
            dict(args or {}),
            int(batch_size),
            _qualname(build) if build is not None else "",
            _source_hash(build) if build is not None else "",
        )

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> ReferenceTrainer:
        """The trainer :meth:`describe` recorded (no callables: enough to find its cached models, not to train)."""
        keys = ("name", "version", "args", "batch_size", "build_name", "build_version")
        return cls(None, None, **{k: d[k] for k in keys if k in d})

    def describe(self) -> dict[str, Any]:
        """What keys the reference cache and the report: names, versions, args, batch size (plain JSON)."""
        return {
            "name": self.name,
            "version": self.version,
            "args": dict(self.args),
            "batch_size": self.batch_size,
            "build_name": self.build_name,
            "build_version": self.build_version,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.describe()

    def fresh(self, seed: int, default: Callable[[], nn.Module]) -> nn.Module:
        """A new untrained model, built right after ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        try:
            model = (self.build or default)()
        except Exception as e:  # user code
            raise ModelError(f"build() failed: {type(e).__name__}: {e}; build must return a fresh model") from e
        if not isinstance(model, nn.Module):
            raise ModelError(f"build() must return a torch.nn.Module, returned {type(model).__name__}")
        return model

    def train(
        self, model: nn.Module, dataset: ImageDataset, ids: np.ndarray, seed: int, package_train: Callable[..., Any]
    ) -> nn.Module:
        """Train ``model`` on pool ``ids``: the user's recipe over :func:`pool_loader`, or ``package_train(model)``."""
        if self.fn is None:
            if self.name != ReferenceTrainer.name:
                raise ConfigError(f"trainer {self.name!r} is recorded but not given; pass it to train reference models")
            package_train(model)
            return model
        loader = pool_loader(dataset, ids, self.batch_size, seed)
        torch.manual_seed(seed)
        try:
            got = self.fn(model, loader, **self.args)
        except (ConfigError, ModelError):
            raise
        except Exception as e:  # user code
            raise ModelError(f"trainer {self.name} failed: {type(e).__name__}: {e}") from e
        got = model if got is None else got
        if not isinstance(got, nn.Module):
            raise ModelError(f"trainer {self.name} must return the trained model, returned {type(got).__name__}")
        return got


class _PoolItems(torch.utils.data.Dataset):
    """Map-style view of pool ``ids``: item i is (float (C, H, W), int64 label) of ``ids[i]``."""

    def __init__(self, dataset: ImageDataset, ids: np.ndarray) -> None:
        self.dataset, self.ids = dataset, np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.ids[i : i + 1]
        return self.dataset.batch(j)[0], torch.as_tensor(self.dataset.labels[j][0], dtype=torch.int64)


def pool_loader(dataset: ImageDataset, ids: np.ndarray, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    """A DataLoader over pool ``ids`` (shuffled each pass by a generator seeded with ``seed``)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(_PoolItems(dataset, ids), batch_size=batch_size, shuffle=True, generator=gen)


def load_trainer(ref: str, args: Mapping[str, Any] | None = None, *, batch_size: int = 64) -> ReferenceTrainer:
    """``--trainer package.module:function`` (with ``--trainer-arg`` values) as a :class:`ReferenceTrainer`."""
    module_name, _, attr = str(ref).partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--trainer takes 'package.module:function', got {ref!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - user code, or not on the path
        raise ConfigError(
            f"cannot import module {module_name!r} for --trainer {ref!r}: {type(e).__name__}: {e}; is it on PYTHONPATH?"
        ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"module {module_name!r} has no callable {attr!r}; give --trainer 'package.module:function'")
    return ReferenceTrainer.of(fn, args=args, batch_size=batch_size, name=ref)


def save_weights(model: nn.Module, folder: Path, info: dict[str, Any]) -> None:
    """A reference model built by ``build()``: ``weights.safetensors`` and ``model.json`` (atomically)."""
    from safetensors.torch import save_file

    from mintaudit._io import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / "weights.safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_json(folder / "model.json", {"schema": "mintaudit/reference@1", **info})


def load_weights(model: nn.Module, folder: Path) -> nn.Module:
    """Weights :func:`save_weights` wrote, into a fresh ``model`` (safetensors: no code runs)."""
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(folder / "weights.safetensors")))
    except (RuntimeError, OSError) as e:
        raise ModelError(f"cached reference model {str(folder)!r} does not fit build()'s model ({e})") from e
    return model

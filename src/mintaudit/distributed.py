"""Scaling out on PyTorch's own distributed engine: torchrun, one process group, shards and gathers.

Every command runs unchanged under ``torchrun --nproc-per-node N``: each process (a *rank*)
runs the same code; the training loops wrap the model in DistributedDataParallel and take their
shard of every epoch, the extraction writes each rank's rows of the cache, and what the ranks
computed is gathered so that metrics count every sample exactly once. Outside torchrun (or with
one process) every helper here is a no-op and nothing changes.

mintaudit runs collectives only when asked: the command line under torchrun, an explicit
:func:`init`, or ``distributed=True`` (:func:`scope`, ``mintaudit.audit(distributed=True)``). A library
call in a script whose own process group is initialised (the user's torchrun) computes alone, on
every rank, and never joins a collective the other ranks did not ask for.

The process group uses gloo for CPU tensors and NCCL for CUDA tensors (``cpu:gloo,cuda:nccl``
when CUDA and NCCL are there, plain gloo otherwise); torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) is the rendezvous.

Example:
    >>> from mintaudit import distributed
    >>> distributed.init()  # False outside torchrun
    False
    >>> s = distributed.shard(5, rank=1, world_size=2)
    >>> s.positions.tolist(), s.valid.tolist()
    ([1, 3, 0], [True, True, False])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from mintaudit.errors import ConfigError

__all__ = [
    "launched",
    "init",
    "scope",
    "require_group",
    "is_active",
    "rank",
    "world_size",
    "local_rank",
    "is_main",
    "barrier",
    "Shard",
    "shard",
    "row_range",
    "all_gather",
    "gather",
    "map_shards",
    "all_reduce_sum",
    "average",
    "broadcast_object",
    "all_gather_object",
    "broadcast_module",
    "wrap",
    "shutdown",
    "alone",
    "own_tasks",
    "share_tasks",
]

T = TypeVar("T", np.ndarray, torch.Tensor)

_ASKED = [False]  # whether mintaudit's collectives may run (init(), the command line, distributed=True)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """True when this process was started by torchrun with more than one process in all."""
    return "RANK" in os.environ and _env_int("WORLD_SIZE", 1) > 1


def init() -> bool:
    """Join the process group torchrun set up (idempotent) and let mintaudit's collectives run over it;
    return whether this run is distributed.

    A process group the caller initialised is used as it is. Outside torchrun without one, or with
    ``WORLD_SIZE=1``, nothing happens and False is returned. On a machine with CUDA the process's
    GPU is set to ``LOCAL_RANK`` first.

    Raises:
        ConfigError: launched by torchrun but this PyTorch build has no ``torch.distributed``.
    """
    if is_active():
        return True
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # the caller's own group, given to mintaudit
        _ASKED[0] = True
        return is_active()
    if not launched():
        return False
    if not dist.is_available():
        raise ConfigError(
            "launched by torchrun, but this PyTorch build has no torch.distributed; "
            "install a build with it, or run without torchrun"
        )
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    backend = "cpu:gloo,cuda:nccl" if cuda and dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend=backend)
    _ASKED[0] = True
    return is_active()


def require_group() -> None:
    """Refuse ``distributed=True`` where there is no process group to run on (none initialised, no torchrun).

    Raises:
        ConfigError: neither torchrun's environment nor an initialised process group.
    """
    import torch.distributed as dist

    if not (launched() or (dist.is_available() and dist.is_initialized())):
        raise ConfigError(
            "distributed=True needs a process group: run the script under torchrun, or call "
            "torch.distributed.init_process_group first (or leave distributed=False)"
        )


@contextlib.contextmanager
def scope(enabled: bool) -> Iterator[None]:
    """Within the block, mintaudit's collectives run (``enabled``: joining torchrun's group or using the one
    already initialised) or not (a process group the caller initialised is left alone); restored on exit.

    Raises:
        ConfigError: ``enabled`` where there is no process group (:func:`require_group`).
    """
    previous = _ASKED[0]
    if enabled:
        require_group()
        init()
    else:
        _ASKED[0] = False
    try:
        yield
    finally:
        _ASKED[0] = previous


def is_active() -> bool:
    """True inside an initialised process group of more than one rank that mintaudit was asked to use
    (False inside :func:`alone`)."""
    import torch.distributed as dist

    return (
        _ASKED[0] and not _ALONE.get() and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    )


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if is_active() else 1


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True on rank 0 (the rank that writes outputs), and always outside a process group."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank reaches this point (no-op outside a process group)."""
    if is_active():
        import torch.distributed as dist

        dist.all_reduce(torch.zeros(1))  # a CPU all-reduce: gloo, whatever the CUDA backend


def _placement(rank_: int | None, world_size_: int | None) -> tuple[int, int]:
    """(rank, world size): the given ones, else this process's."""
    return (rank() if rank_ is None else int(rank_)), (world_size() if world_size_ is None else int(world_size_))


@dataclass(frozen=True)
class Shard:
    """One rank's share of ``n`` positions, padded like ``DistributedSampler``.

    Attributes:
        positions: int64 (L,), positions into the sharded array, ``L = ceil(n / world_size)``
            for every rank; the last ranks repeat positions from the start as padding.
        valid: bool (L,), False for the padding (so metrics count each sample once).
        n: the number of positions sharded.
        world_size: the number of ranks.
    """

    positions: np.ndarray
    valid: np.ndarray
    n: int
    world_size: int


def shard(n: int, *, rank: int | None = None, world_size: int | None = None) -> Shard:
    """Deterministic share of positions ``0..n-1`` for one rank: ``rank, rank + W, ...`` of the padded range.

    Every rank gets the same number of positions (so every rank runs the same number of
    steps); :func:`gather` puts the ranks' results back in the order ``0..n-1`` and drops the
    padding. With one rank this is ``0..n-1`` itself.

    Args:
        n: number of positions (e.g. the length of an epoch's shuffled order).
        rank, world_size: default: this process's.
    """
    r, w = _placement(rank, world_size)
    if w < 1 or not 0 <= r < w:
        raise ConfigError(f"rank must lie in [0, world_size), got rank {r} of {w}")
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    per_rank = -(-n // w)
    slots = np.arange(r, per_rank * w, w, dtype=np.int64)
    return Shard(slots % max(n, 1), slots < n, int(n), w)


def row_range(n: int, *, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """One rank's contiguous block ``[start, stop)`` of ``n`` rows; blocks differ in size by at most one."""
    r, w = _placement(rank, world_size)
    return n * r // w, n * (r + 1) // w


def _as_tensor(values: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """A tensor collectives accept, and the function turning a gathered tensor back into the input's kind."""
    if isinstance(values, torch.Tensor):
        dtype = values.dtype
        t = values.detach()
        if dtype == torch.bool:
            return t.to(torch.uint8), lambda g: g.to(torch.bool)
        return t, lambda g: g
    arr = np.asarray(values)
    if arr.dtype == np.bool_:
        return torch.from_numpy(arr.astype(np.uint8)), lambda g: g.cpu().numpy().astype(bool)
    return torch.from_numpy(np.ascontiguousarray(arr)), lambda g: g.cpu().numpy()


def all_gather(values: T) -> list[T]:
    """Every rank's ``values`` (numpy array or tensor, any length along axis 0), in rank order.

    The trailing shape and dtype must agree across ranks; lengths may differ.
    """
    if not is_active():
        return [values]
    import torch.distributed as dist

    t, back = _as_tensor(values)
    w = world_size()
    lengths = [torch.zeros(1, dtype=torch.int64, device=t.device) for _ in range(w)]
    dist.all_gather(lengths, torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device))
    sizes = [int(k) for k in lengths]
    longest = max(sizes)
    padded = t.new_zeros((longest, *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded.contiguous())
    return [back(p[:k]) for p, k in zip(parts, sizes)]


def gather(values: T, part: Shard) -> T:
    """Reassemble per-rank results of :func:`shard` into the full array, in position order, padding dropped.

    Args:
        values: this rank's results, one row per position of ``part`` (L, ...).
        part: the shard they were computed on.

    Returns:
        (n, ...): row ``i`` is the result for position ``i``, on every rank.
    """
    if part.world_size == 1 or not is_active():
        return values[: part.n]
    parts = all_gather(values)
    if isinstance(values, torch.Tensor):
        stacked = torch.stack(parts, 1)  # (L, W, ...): slot l * W + r is rank r's l-th
        return stacked.reshape(-1, *stacked.shape[2:])[: part.n]
    stacked_np = np.stack(parts, 1)
    return stacked_np.reshape(-1, *stacked_np.shape[2:])[: part.n]


def map_shards(fn: Callable[[np.ndarray], np.ndarray], items: np.ndarray) -> np.ndarray:
    """``fn(items)`` computed by all ranks together: each its shard, results gathered in order.

    ``fn`` maps an array of items (e.g. pool indices) to one result row per item. Outside a
    process group this is ``fn(items)``.
    """
    items = np.asarray(items)
    if not is_active():
        return np.asarray(fn(items))
    part = shard(len(items))
    return gather(np.asarray(fn(items[part.positions])), part)


def all_reduce_sum(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks of float64 ``values`` (the values themselves outside a process group)."""
    arr = np.asarray(values, dtype=np.float64)
    if not is_active():
        return arr
    import torch.distributed as dist

    t = torch.from_numpy(arr.copy())
    dist.all_reduce(t)
    return t.numpy()


def average(t: torch.Tensor) -> torch.Tensor:
    """Mean over ranks of a (detached) tensor, on its device (the tensor itself outside a process group)."""
    if not is_active():
        return t
    import torch.distributed as dist

    out = t.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled; only for our own objects, never a user's file)."""
    if not is_active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (pickled; only for our own small objects)."""
    if not is_active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module, *, buffers_only: bool = False, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers (or buffers only) into ``module`` on every rank."""
    if not is_active():
        return
    import torch.distributed as dist

    tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=src)


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel inside a process group (``module`` itself otherwise).

    The wrapper broadcasts rank 0's parameters and buffers when built and averages the
    gradients over ranks in every backward pass; train through it, read and save ``module``.
    Gradients live in the communication buckets themselves (no second copy of them).
    """
    if not is_active():
        return module
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # one-channel inputs give conv weight gradients whose size-1 dimension has another stride than
    # the bucket: the same memory layout, copied once, nothing to act on
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides", category=UserWarning)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=ids, output_device=ids[0] if ids else None, gradient_as_bucket_view=True
    )


def shutdown() -> None:
    """Leave the process group (no-op outside one)."""
    import torch.distributed as dist

    _ASKED[0] = False
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# task parallelism: independent tasks (e.g. reference models), each run whole by one rank

_ALONE: ContextVar[bool] = ContextVar("mintaudit_distributed_alone", default=False)


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside, this process acts as a run of its own: rank 0 of 1, every helper here a no-op.

    For work one rank does whole while the other ranks do other work (see :func:`share_tasks`):
    the training loop then trains without DistributedDataParallel, shards nothing and waits for
    no other rank. The process group itself stays as it was.
    """
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


def own_tasks(tasks: Sequence[int], *, rank: int | None = None, world_size: int | None = None) -> list[int]:
    """The tasks of ``tasks`` (task numbers) that one rank runs: task ``t`` goes to rank ``t % world_size``.

    Example:
        >>> own_tasks([0, 1, 2, 3, 5], rank=1, world_size=2)
        [1, 3, 5]
    """
    r, w = _placement(rank, world_size)
    if w < 1 or not 0 <= r < w:
        raise ConfigError(f"rank must lie in [0, world_size), got rank {r} of {w}")
    return [int(t) for t in tasks if int(t) % w == r]


def share_tasks(tasks: Sequence[int], run: Callable[[int], Any]) -> list[list[int]]:
    """Run independent tasks task-parallel: task ``t`` by rank ``t % world_size``, :func:`alone`, then wait for all.

    ``run(t)`` must not depend on which rank runs it (seed each task by ``t``), and must leave its
    result where every rank can read it (a shared cache). Every rank returns once every rank is
    done. An error on one rank is raised on every rank (the failing rank raises its own; the others a
    :class:`~mintaudit.errors.MintauditError` naming the rank and its message), so no rank waits for
    ever. Outside a process group the tasks simply run in order.

    Returns:
        For each rank, the tasks it ran, in order.
    """
    error: BaseException | None = None
    done: list[int] = []
    for t in own_tasks(tasks):
        try:
            with alone():
                run(t)
        except Exception as e:  # told to every rank below, then raised
            error = e
            break
        done.append(t)
    told = all_gather_object((done, None if error is None else f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    failed = [(k, msg) for k, (_, msg) in enumerate(told) if msg is not None]
    if failed:
        from mintaudit.errors import MintauditError

        k, msg = failed[0]
        raise MintauditError(f"rank {k} failed on its share of the tasks: {msg}")
    return [list(d) for d, _ in told]

"""The attacks of :func:`mintaudit.audit` (``methods=["rmia", "lira", ...]``) and ``result.verdict(query, method=...)``.

The attacks run on the audit's own sets as ``mintaudit attack`` runs them on a work directory's
(:func:`mintaudit.attacks.run.run_attacks`); the reference models are built by the user's
``build()`` and trained by the user's ``trainer(model, loader)`` (:mod:`mintaudit.attacks.trainers`).
A verdict is the statistics of ``mintaudit test --method M`` on the scores of one attack: the same
null reference (a seeded half of the test set), the same p-values and decision.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit.attacks.registry import ATTACKS, attack_spec
from mintaudit.attacks.run import AttackConfig, attack_scores, run_attacks
from mintaudit.attacks.trainers import ReferenceTrainer
from mintaudit.data import ImageDataset, Splits
from mintaudit.data.splits import passive_split
from mintaudit.errors import ConfigError
from mintaudit.results import Result
from mintaudit.training import TrainConfig

__all__ = ["AttackSession", "attack_methods", "python_verdict", "run_python_attacks"]

#: What the sweep of :func:`mintaudit.audit` always gives (passive MINT rows and the LOSS row).
SWEEP_METHODS = ("passive-mint", "loss")
QUERY_ROLES = ("heldout-members", "test")


def attack_methods(
    methods: Sequence[str] | None, build: Callable[[], nn.Module] | None, trainer: Any, references: Any
) -> list[str]:
    """The registry attacks among ``methods`` (checked before any work): the sweep's own methods left out.

    Raises:
        ConfigError: an unknown method, a reference attack without ``build``, a bad ``references``.
    """
    if methods is None:
        if trainer is not None or build is not None:
            raise ConfigError("audit(): build= and trainer= train reference models; name the attacks in methods=[...]")
        return []
    if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"audit(): methods must be a list of names, e.g. ['loss', 'rmia']; given {methods!r}")
    unknown = [m for m in methods if m not in SWEEP_METHODS and m not in ATTACKS]
    if unknown:
        raise ConfigError(
            f"audit(): unknown method(s) {', '.join(unknown)}; choose from {', '.join(dict.fromkeys([*SWEEP_METHODS, *ATTACKS]))}"
        )
    attacks = [m for m in dict.fromkeys(methods) if m not in SWEEP_METHODS]
    needs = [m for m in attacks if attack_spec(m).needs_references]
    if needs and build is None:
        raise ConfigError(
            f"audit(): {', '.join(needs)} train(s) reference models like yours; give build= (a callable returning "
            "a fresh untrained model of your architecture) and trainer= (your recipe, trainer(model, loader) -> model)"
        )
    if isinstance(references, bool) or not isinstance(references, int) or references < 1:
        raise ConfigError(f"audit(): references must be a whole number >= 1, got {references!r}; e.g. references=4")
    return attacks


@dataclass
class AttackSession:
    """What a verdict needs after :func:`mintaudit.audit`: the model, pool, splits, options and the cache."""

    model: nn.Module
    pool: ImageDataset
    splits: Splits
    config: AttackConfig
    known_fraction: float
    cache_root: Path
    methods: tuple[str, ...]
    tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)  # kept alive with the result


def attack_config(
    references: int,
    build: Callable[[], nn.Module] | None,
    trainer: Any,
    *,
    trainer_batch_size: int,
    trainer_version: str | None,
    n_bootstrap: int,
    batch_size: int,
    seed: int,
) -> AttackConfig:
    """The :class:`AttackConfig` of a Python audit (the user's recipe as a :class:`ReferenceTrainer`)."""
    recipe = (
        trainer
        if isinstance(trainer, ReferenceTrainer)
        else ReferenceTrainer.of(trainer, build=build, batch_size=trainer_batch_size, version=trainer_version)
    )
    return AttackConfig(
        n_reference=references,
        reference_train=TrainConfig(batch_size=trainer_batch_size, seed=seed),
        n_bootstrap=n_bootstrap,
        batch_size=batch_size,
        seed=seed,
        trainer=recipe,
    )


def run_python_attacks(session: AttackSession, show_progress: bool | None) -> list[Result]:
    """The attacks' report rows on the audit's sets (reference models cached under the session's cache)."""
    split = passive_split(session.splits, known_fraction=session.known_fraction, seed=session.config.seed)
    return run_attacks(
        session.model,
        None,
        session.pool,
        split,
        list(session.methods),
        session.cache_root / "attacks",
        session.config,
        signals_root=session.cache_root,
        show_progress=show_progress,
    )


def python_verdict(
    session: AttackSession,
    query: Any,
    method: str,
    *,
    fdr: float = 0.05,
    alpha: float = 0.05,
    decision: str = "mann-whitney",
    null_fraction: float = 0.5,
) -> dict[str, Any]:
    """``mintaudit test --method METHOD --query QUERY`` on the audit's own sets (see :meth:`AuditResult.verdict`)."""
    from mintaudit.evaluation.statistics import DECISIONS, dataset_test, sample_decisions
    from mintaudit.data import null_split

    if method not in ATTACKS or attack_spec(method).result is not None:
        raise ConfigError(
            f"verdict(): method must be an attack that scores samples ({', '.join(m for m in ATTACKS if m != 'loss')}); "
            f"given {method!r}"
        )
    if decision not in DECISIONS:
        raise ConfigError(f"verdict(): decision must be one of {', '.join(DECISIONS)}; given {decision!r}")
    if not (0.0 < fdr <= 1.0 and 0.0 < alpha < 1.0):
        raise ConfigError(f"verdict(): fdr must lie in (0, 1] and alpha in (0, 1); given {fdr} and {alpha}")
    cfg = session.config
    split = passive_split(session.splits, known_fraction=session.known_fraction, seed=cfg.seed)
    null_idx, test_pool = null_split(session.splits, fraction=null_fraction, seed=cfg.seed)
    pool = session.pool
    if _is_ids(query):
        q_ids, source = _query_ids(query, split, test_pool, len(pool))
    else:  # new samples: appended to the pool, scored beside the test samples (the references stay cached)
        pool, q_ids = _with_samples(pool, query, np.concatenate([null_idx, split.known_members, split.external]))
        source = "samples"
    for name, ids in (
        ("the null reference", null_idx),
        ("the known members and external samples", np.concatenate([split.known_members, split.external])),
    ):
        clash = np.intersect1d(q_ids, ids)
        if len(clash):
            raise ConfigError(
                f"verdict(): the query shares {len(clash)} samples with {name}; their scores say nothing about "
                "membership: query 'heldout-members', 'test' or other pool ids"
            )
    scored = np.concatenate([split.heldout_members, split.test])
    inside = bool(np.isin(q_ids, scored).all())
    was_training = session.model.training
    session.model.eval()
    try:
        scores = _scores(session, pool, split, method, None if inside else q_ids)
    finally:
        session.model.train(was_training)
    by_id = dict(zip(scored.tolist(), np.r_[scores.members, scores.nonmembers].tolist()))
    null_scores = np.array([by_id[i] for i in null_idx.tolist()], dtype=np.float64)
    q_scores = (
        np.array([by_id[i] for i in q_ids.tolist()], dtype=np.float64)
        if inside
        else np.asarray(scores.extra, dtype=np.float64)
    )
    per_sample = sample_decisions(q_scores, null_scores, fdr=fdr, alpha=alpha)
    test = dataset_test(q_scores, null_scores, alpha=alpha, decision=decision)  # type: ignore[arg-type]
    return {
        **test.to_dict(),
        "method": method,
        "detector": f"{method} attack ({scores.info.get('n_reference', 0)} reference models)",
        "query": {"source": source, "n": int(len(q_ids))},
        "null_reference": {"n": int(len(null_idx)), "fraction_of_test": null_fraction, "seed": cfg.seed},
        "per_sample": {**per_sample.to_dict(), "sample_id": q_ids.tolist(), "score": q_scores.tolist()},
    }


def _scores(session: AttackSession, pool: ImageDataset, split: Any, method: str, extra: np.ndarray | None) -> Any:
    return attack_scores(
        session.model,
        None,
        pool,
        split,
        [method],
        session.cache_root / "attacks",
        session.config,
        signals_root=session.cache_root,
        extra=extra,
    )[method]


def _is_ids(query: Any) -> bool:
    if isinstance(query, str):
        return True
    if isinstance(query, (np.ndarray, list)) or (isinstance(query, torch.Tensor) and query.dim() == 1):
        arr = np.asarray(query)
        return arr.ndim == 1 and arr.dtype.kind in "iu"
    return False


def _with_samples(pool: Any, query: Any, guarded: np.ndarray) -> tuple[Any, np.ndarray]:
    """The pool with the query's samples appended (read from their own source, as the roles are), and their ids."""
    from mintaudit.data.source import open_source, scan
    from mintaudit.data.sourcepool import SourcePool

    if not isinstance(pool, SourcePool):
        raise ConfigError(
            "verdict(): new samples are read as model inputs, but this audit read raw pixels through preprocess=; "
            "give the query as pool ids, or audit transformed inputs"
        )
    source = open_source(query, "query")
    st = scan(source, query, "query")
    if st.shape != pool.image_shape or int(st.labels.min()) < 0 or int(st.labels.max()) >= pool.num_classes:
        raise ConfigError(
            f"verdict(): the query holds inputs of shape {st.shape} with labels in [{int(st.labels.min())}, "
            f"{int(st.labels.max())}]; the audit's are {pool.image_shape} in [0, {pool.num_classes - 1}]"
        )
    seen = set()
    for x, _, _ in pool.stream(np.sort(guarded), 256):
        rows = np.ascontiguousarray(x.numpy()).reshape(len(x), -1)
        seen.update(hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows)
    clash = sum(h in seen for h in st.hashes)
    if clash:
        raise ConfigError(
            f"verdict(): {clash} query samples are copies of the null reference, the known members or the external "
            "samples; their scores say nothing about membership: query other samples"
        )
    grown = pool.grown(source, st.labels, f"{pool.name}+query")
    return grown, np.arange(len(pool), len(grown), dtype=np.int64)


def _query_ids(query: Any, split: Any, test_pool: np.ndarray, n_pool: int) -> tuple[np.ndarray, str]:
    """Pool ids of ``query``: a role name, or ids of the pool (members, then external, then test samples)."""
    if isinstance(query, str):
        if query == "heldout-members":
            return np.asarray(split.heldout_members, dtype=np.int64), query
        if query == "test":
            return np.asarray(test_pool, dtype=np.int64), query
        raise ConfigError(
            f"verdict(): query {query!r} is not one of {', '.join(QUERY_ROLES)}; or give pool ids (members, external, "
            "test in the order audit() read them)"
        )
    try:
        ids = np.asarray(query)
    except Exception:  # noqa: BLE001 - anything that is not an array of ids
        ids = np.zeros(0, dtype=object)
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or not len(ids):
        raise ConfigError(
            f"verdict(): query is {' or '.join(map(repr, QUERY_ROLES))}, a 1-d array of pool ids, or new samples "
            f"((x, y) or a DataLoader); given {type(query).__name__}"
        )
    if ids.min() < 0 or ids.max() >= n_pool:
        raise ConfigError(f"verdict(): pool ids lie in 0..{n_pool - 1}; given {int(ids.min())}..{int(ids.max())}")
    return np.unique(ids.astype(np.int64)), "ids"

"""One merge rule for the rows, verdicts and sections of ``report.json``, used by every verb that writes one.

* A result row is identified by :func:`row_key`: method (and the attack's own name), signal,
  layer, protocol, the aMINT / gMINT setup (setup, budget, reduction, audited model, backbone),
  detector, tap mode, fusion, the known fraction (or, in rows that do not state it, the sizes of
  both sides, which it sets), the reference count, and a hash of the method's other options
  (``options``). A rerun with the same key replaces its row in place; another key adds a row.
* Rows of another record never mix: :func:`same_record` compares the model (fingerprint and
  preprocessing) and the data (fingerprint, split sizes and seed) of two reports;
  :func:`merge_reports` refuses to merge reports of different records.
* Verdicts are kept per (query content, method, layer, signal) in ``report["verdicts"]``;
  ``report["verdict"]`` holds the latest one, as before.
* Every other part (``config``, the ``sections`` by name, ...) of the earlier report survives a merge.

Reports written before this rule (``mintaudit/report@1``, no ``verdicts``) are read as they are.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mintaudit.errors import ConfigError

__all__ = [
    "KEY_FIELDS",
    "row_key",
    "merge_rows",
    "same_record",
    "record_difference",
    "merge_reports",
    "verdict_key",
    "add_verdict",
    "query_digest",
    "merge_into",
    "check_record",
]

#: Row fields (top level) that identify a row, beside the reference count and the options hash.
KEY_FIELDS: tuple[str, ...] = (
    "method",
    "attack",
    "signal",
    "layer",
    "protocol",
    "setup",
    "budget",
    "reduction",
    "audited_model",
    "backbone",
    "detector",
    "tap_mode",
    "fusion",
)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The identity of a result row: rows with equal keys are the same measurement, recomputed.

    Example:
        >>> a = {"method": "passive-mint", "signal": "activations", "layer": "fc", "protocol": "heldout-members",
        ...      "n_members": 50, "n_nonmembers": 50}
        >>> row_key(a) == row_key({**a, "metrics": {"auc": 0.7}}), row_key(a) == row_key({**a, "layer": "conv"})
        (True, False)
    """
    fields = [row.get(k) for k in KEY_FIELDS]
    if row.get("tap_mode") is None and row.get("method") == "passive-mint":
        fields[KEY_FIELDS.index("tap_mode")] = "full"  # rows of full maps carry no tap_mode
    fit = row.get("fit") if isinstance(row.get("fit"), Mapping) else {}
    known = row.get("known_fraction")
    sizes = (row.get("n_members"), row.get("n_nonmembers")) if known is None else None
    options = row.get("options")
    return (*fields, known, sizes, fit.get("n_reference"), None if options is None else _digest(options))


def merge_rows(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with each row of ``new`` replacing the old row of its key (in place), or appended after them.

    Rows of ``new`` that share a key with each other: the last one counts. Old rows sharing a key
    (reports written before this rule) are all replaced by a new row of that key, at the first one's place.
    """
    latest = {row_key(r): copy.deepcopy(dict(r)) for r in new}
    out, placed = [], set()
    for r in old:
        k = row_key(r)
        if k not in latest:
            out.append(copy.deepcopy(dict(r)))
        elif k not in placed:
            out.append(latest[k])
            placed.add(k)
    out.extend(row for k, row in latest.items() if k not in placed)
    return out


def record_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """What makes two reports belong to different records (a phrase), or None when they are about the same.

    Compared where both reports state it: the model's fingerprint and preprocessing, the data
    set's fingerprint, the sizes of members, external and test, and the split seed.
    """
    pairs = [
        ("the model", ("model", "fingerprint")),
        ("the preprocessing", ("model", "preprocess")),
        ("the data set", ("dataset", "fingerprint")),
        ("the members", ("dataset", "members")),
        ("the external set", ("dataset", "external")),
        ("the test set", ("dataset", "test")),
        ("the split seed", ("dataset", "seed")),
    ]
    for what, (section, key) in pairs:
        a, b = (old.get(section) or {}).get(key), (new.get(section) or {}).get(key)
        if a is not None and b is not None and a != b:
            return what
    return None


def same_record(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two reports are about the same model, preprocessing, data and splits (see :func:`record_difference`)."""
    return record_difference(old, new) is None


def check_record(out_dir: str | os.PathLike[str], new: Mapping[str, Any]) -> None:
    """Refuse (before any work) a run whose model or data (``new``: a partial report) contradicts ``out_dir/report.json``."""
    from mintaudit.report.schema import load_report

    path = Path(out_dir) / "report.json"
    if path.is_file():
        merge_reports(load_report(path), {**new, "results": []}, where=out_dir)


def merge_reports(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, where: str | os.PathLike[str] = "OUT"
) -> dict[str, Any]:
    """The report to write when ``new`` (this run's report) joins ``old`` (the one on disk, or None).

    The rows merge by :func:`merge_rows`; ``new``'s metadata (dataset, model, command) is kept,
    its ``config`` entries and ``sections`` (by name) update the old ones; every other part of ``old``
    (``verdict``, ``verdicts``, report@1's ``dp_audit``, ...) survives unless ``new`` sets it.

    Raises:
        ConfigError: ``old`` belongs to another record (another model, preprocessing, data or
            splits); nothing is written then.
    """
    if old is None:
        return copy.deepcopy(dict(new))
    diff = record_difference(old, new)
    if diff is not None:
        raise ConfigError(
            f"{str(Path(where) / 'report.json')!r} holds results for another record ({diff} differs from this "
            "run's); its results are kept: use another --out for this one"
        )
    merged = copy.deepcopy(dict(old))
    for key, value in new.items():
        if key == "results":
            continue
        if key in ("config", "sections") and isinstance(merged.get(key), dict) and isinstance(value, Mapping):
            merged[key].update(copy.deepcopy(dict(value)))  # sections by name: new's replace old's of the same name
        elif value is not None or key not in merged:
            merged[key] = copy.deepcopy(value)
    merged["results"] = merge_rows(old.get("results") or [], new.get("results") or [])
    return merged


def query_digest(source: str, ids: Sequence[int] | Any) -> str:
    """A short hash of a query's content: its sample ids and, when ``source`` is a file or folder, its bytes."""
    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(np.asarray(ids, dtype=np.int64)).data)
    path = Path(source.split(":", 1)[1] if source.lower().startswith(("npz:", "folder:")) else source)
    try:
        if path.is_file():
            h.update(path.read_bytes())
        elif path.is_dir():
            for p in sorted(q for q in path.rglob("*") if q.is_file()):
                h.update(p.relative_to(path).as_posix().encode())
                h.update(str(p.stat().st_size).encode())
    except OSError:
        pass
    h.update(source.encode())
    return h.hexdigest()[:16]


def verdict_key(verdict: Mapping[str, Any]) -> tuple[Any, ...]:
    """The identity of a verdict: the query's content hash (else its source), the method, layer and signal."""
    query = verdict.get("query") if isinstance(verdict.get("query"), Mapping) else {}
    return (
        query.get("sha256") or query.get("source"),
        verdict.get("method"),
        verdict.get("layer"),
        verdict.get("signal"),
    )


def add_verdict(report: dict[str, Any], verdict: Mapping[str, Any]) -> None:
    """Keep ``verdict`` in ``report["verdicts"]`` (replacing the one of its key) and as ``report["verdict"]``.

    A report of the earlier layout (one ``verdict``, no list) keeps that verdict in the list too.
    """
    kept = list(report.get("verdicts") or [])
    if not kept and isinstance(report.get("verdict"), Mapping):
        kept = [report["verdict"]]
    key = verdict_key(verdict)
    kept = [v for v in kept if verdict_key(v) != key] + [copy.deepcopy(dict(verdict))]
    report["verdicts"] = kept
    report["verdict"] = copy.deepcopy(dict(verdict))


def merge_into(out_dir: str | os.PathLike[str], new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``out_dir/report.json`` (:func:`merge_reports`), write both report files, return it."""
    from mintaudit.report.schema import load_report, write_report

    path = Path(out_dir) / "report.json"
    report = merge_reports(load_report(path) if path.is_file() else None, new, where=out_dir)
    write_report(report, out_dir)
    return report

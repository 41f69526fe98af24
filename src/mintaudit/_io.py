"""Atomic file writing: a killed run never leaves a half-written file under the final name.

A temporary is named ``.<target name>.<pid>@<host>.<random>.tmp`` beside its target, so a later
writer of the same target recognises the leftovers of a writer that was killed (its process is
gone on this host) and removes them before it writes (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_dir",
    "check_replaceable",
    "MARKER",
    "atomic_path",
    "remove_stale_temporaries",
]

_STALE = re.compile(r"(?P<pid>[0-9]+)@(?P<host>[A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.tmp")
"""What follows ``.<target name>.`` in a temporary's name."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}@{_host()}."


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (unsure counts as alive)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries (files or folders) of earlier writers of ``path`` whose process is gone.

    Only names of the atomic helpers' pattern (``.<name>.<pid>@<host>.<random>.tmp`` beside
    ``path``) written on this host by a process that no longer exists are removed; a running
    writer's, another host's and any other file are left alone. Returns what was removed.
    """
    path = Path(path)
    prefix, host, removed = f".{path.name}.", _host(), []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _STALE.fullmatch(entry.name[len(prefix) :]) if entry.name.startswith(prefix) else None
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Example:
        >>> with atomic_path("out.bin") as tmp:
        ...     _ = tmp.write_bytes(b"...")
        >>> Path("out.bin").read_bytes()
        b'...'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 files; outputs are meant to be shared
            os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically and return the path.

    NaN and infinities (not valid JSON) are written as ``null``.
    """
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _finite(obj: Any) -> Any:
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


MARKER = ".mintaudit-made"
"""The file every folder written by :func:`atomic_dir` carries: the names the tool wrote in it."""


def _refuse(path: Path, why: str) -> None:
    from mintaudit.errors import ConfigError

    raise ConfigError(
        f"{str(path)!r} {why}; mintaudit only replaces a folder it made itself: give a new or empty folder"
    )


def check_replaceable(
    path: str | os.PathLike[str], schema_file: str | None = None, new_names: list[str] | None = None
) -> None:
    """Refuse (ConfigError) to replace ``path`` unless it is missing, an empty folder, or a folder this tool made.

    Ours: a real folder (no symlink) holding :data:`MARKER` and nothing the marker does not list,
    or (folders made before the marker) holding ``schema_file`` and only names of the new folder
    (``new_names``, when known). Never the current folder or one of its parents.
    """
    path = Path(os.path.abspath(path))
    cwd = Path.cwd()
    if path == cwd or path in cwd.parents:
        _refuse(path, "is the current folder (or holds it)")
    if path.is_symlink():
        _refuse(path, "is a symbolic link")
    if not path.exists():
        return
    if not path.is_dir():
        _refuse(path, "is a file, not a folder")
    try:
        entries = {p.name for p in path.iterdir()}
    except OSError as e:
        _refuse(path, f"cannot be read ({e.strerror})")
    if not entries:
        return
    listed: set[str] | None = None
    if MARKER in entries:
        try:
            doc = json.loads((path / MARKER).read_text(encoding="utf-8"))
            listed = {str(n) for n in doc["entries"]} | {MARKER}
        except (OSError, ValueError, KeyError, TypeError):
            listed = None
    elif schema_file is not None and schema_file in entries:
        listed = set(new_names) if new_names is not None else set(entries)
    if listed is None:
        _refuse(path, "is a folder holding files mintaudit did not write")
    others = sorted(entries - listed)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        _refuse(path, f"holds files mintaudit did not write ({shown})")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, schema_file: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only on success.

    An existing ``path`` is replaced only when :func:`check_replaceable` finds it is ours (checked
    before anything is written and again before the rename); the old folder is moved aside under a
    temporary name, then removed. A symlink, a file, the current folder or a folder holding
    anything else is refused (ConfigError) and left as it was. The new folder carries
    :data:`MARKER`, listing what was written in it.
    """
    path = Path(os.path.abspath(path))
    check_replaceable(path, schema_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir() if p.name != MARKER)
        (tmp / MARKER).write_text(json.dumps({"made_by": "mintaudit", "entries": names}) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        check_replaceable(path, schema_file, names)
        aside = None
        if path.exists():
            aside = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, aside)  # onto the empty folder just made: nothing of the user's is touched
        try:
            os.replace(tmp, path)
        except BaseException:
            if aside is not None:
                os.replace(aside, path)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)  # ours: checked above
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

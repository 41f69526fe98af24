"""One command at a time per work directory: ``OUT/.mintaudit.lock``, held for the whole command.

A second command on the same OUT is refused at once (ConfigError naming the holder's pid and
command), never queued. The lock is an ``flock`` on the lock file, so the kernel releases it when
its holder dies: the lock file a killed command leaves behind is taken over by the next one.
Under ``torchrun`` only rank 0 (environment ``RANK`` unset or 0) takes it; the other ranks work
in their own folders. The lock file is removed when the command ends; a work directory the lock
itself had to create is removed again when it is still empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

from mintaudit.errors import ConfigError

__all__ = ["LOCK_FILE", "out_lock", "command_lock", "lock_holder"]

LOCK_FILE = ".mintaudit.lock"


def lock_holder(folder: str | os.PathLike[str]) -> dict[str, object]:
    """What the lock file of ``folder`` says about its holder (``pid``, ``host``, ``command``); {} if unreadable."""
    try:
        doc = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _refuse(folder: Path, name: str) -> None:
    holder = lock_holder(folder)
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        who += f" on {holder['host']}"
    if holder.get("command"):
        who += f": {holder['command']}"
    raise ConfigError(
        f"{name} {str(folder)!r} is in use by another mintaudit command ({who}); wait until it ends, "
        f"or give another {name}"
    )


@contextlib.contextmanager
def out_lock(folder: str | os.PathLike[str], *, command: Sequence[str] = (), name: str = "--out") -> Iterator[None]:
    """Hold the lock of work directory ``folder`` (made if missing) for the ``with`` block, or refuse at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _refuse(folder, name)
        try:  # the holder we waited on may have removed the file: lock the one that is there now
            st, now = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
            break
        os.close(fd)
    try:
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(command)}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(doc) + "\n").encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held: a waiting process then finds no file or a new one
        os.close(fd)
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a refused command leaves no folder behind


def command_lock(
    folder: str | os.PathLike[str] | None, command: Sequence[str] = ()
) -> contextlib.AbstractContextManager:
    """:func:`out_lock` for a command's ``--out`` (None: no lock); under torchrun only rank 0 locks."""
    if not folder or os.environ.get("RANK", "0") not in ("", "0"):
        return contextlib.nullcontext()
    return out_lock(folder, command=command)

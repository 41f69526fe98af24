"""Where the tool may write: one check for work directories and output files, before anything is written.

* ``--out`` is never the file system's root, a shared top-level folder (``/tmp``, ``/home``, the
  home folder) or a system folder (``/proc``, ``/etc``, ``/usr`` ...) or anything under one.
* An output file (``--csv``, ``--json``) is never an input of the command (a queried image, the
  delivered model's files, a member list, the weights), never named like an image, and never an
  existing file that is not an answers file this tool wrote.

Both raise :class:`~mintaudit.errors.ConfigError` with the option, the path and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mintaudit.errors import ConfigError

__all__ = ["SYSTEM_FOLDERS", "check_out_dir", "check_output_file", "check_outputs", "ANSWERS_CSV_HEADER"]

#: Folders refused as a work directory, themselves and everything under them.
SYSTEM_FOLDERS: tuple[str, ...] = (
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/etc",
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/run",
)
#: Folders refused as a work directory themselves (what lies under them is fine).
_SHARED_FOLDERS: tuple[str, ...] = ("/", "/home", "/tmp", "/var", "/mnt", "/media", "/opt", "/srv", "/root")

#: The first line of the CSV that ``mintaudit active query --csv`` writes.
ANSWERS_CSV_HEADER = "path,label,class_name,membership,member"

#: dests whose values are input files (or lists of them) of some verb.
_INPUT_FILES = ("splits", "members_file", "external_file", "test_file", "weights", "config", "images")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _real(p: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.expanduser(p)))


def check_out_dir(path: str | os.PathLike[str], name: str = "--out") -> None:
    """Refuse the root, a system folder (or anything under one) and a shared top-level folder as a work directory."""
    p = _real(path)
    if p == Path(p.anchor):
        raise ConfigError(f"{name} {str(path)!r} is the root of the file system; give a folder, e.g. {name} runs/audit")
    for folder in SYSTEM_FOLDERS:
        if p == Path(folder) or Path(folder) in p.parents:
            raise ConfigError(
                f"{name} {str(path)!r} is a system folder ({folder}); give a folder of your own, e.g. {name} runs/audit"
            )
    if str(p) in _SHARED_FOLDERS or p == Path.home():
        raise ConfigError(
            f"{name} {str(path)!r} is a shared top-level folder; give a folder for this audit, "
            f"e.g. {name} {os.path.join(str(path), 'audit')}"
        )


def _is_ours(p: Path, kind: str) -> bool:
    """Whether the existing file ``p`` is an answers file of ``active query`` (kind ``csv`` or ``json``)."""
    try:
        if kind == "csv":
            with open(p, encoding="utf-8") as f:
                return f.readline().strip() == ANSWERS_CSV_HEADER
        doc = json.loads(p.read_text(encoding="utf-8"))
        return isinstance(doc, dict) and set(doc) == {"model", "threshold", "answers"}
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def check_output_file(
    path: str | os.PathLike[str], name: str, kind: str, inputs: Iterable[str | os.PathLike[str]] = ()
) -> None:
    """Refuse an output file that is an input, looks like an image, or is an existing file this tool did not write.

    Args:
        path: the output file given.
        name: the option, for the message (``--csv``).
        kind: ``csv`` or ``json``: what the tool writes there.
        inputs: the command's input files and folders; a folder covers every file in it.
    """
    p = _real(path)
    for given in inputs:
        q = _real(given)
        if p == q or (q.is_dir() and q in p.parents):
            raise ConfigError(
                f"{name} {str(path)!r} is an input of this command ({given}); writing there would destroy it: "
                f"give a new file name, e.g. {name} answers.{kind}"
            )
    if p.suffix.lower() in _IMAGE_SUFFIXES:
        raise ConfigError(
            f"{name} {str(path)!r} is named like an image (did you forget the {kind.upper()} name?); "
            f"give a .{kind} file, e.g. {name} answers.{kind}"
        )
    if p.is_file() and not _is_ours(p, kind):
        raise ConfigError(
            f"{name} {str(path)!r} exists and is not a {kind.upper()} answers file mintaudit wrote; it is left "
            f"alone: give a new file name, or remove it yourself"
        )


def check_outputs(values: Mapping[str, Any], label: Any = None) -> None:
    """The checks above for every output option in ``values`` (a verb's parsed options)."""
    label = label or (lambda dest: "--" + dest.replace("_", "-"))
    if values.get("out"):
        check_out_dir(values["out"], label("out"))
    inputs: list[Any] = []
    for dest in _INPUT_FILES:
        v = values.get(dest)
        if v:
            inputs.extend(v if isinstance(v, (list, tuple)) else [v])
    if values.get("model_dir"):
        inputs.append(values["model_dir"])
    outputs = [(dest, values[dest]) for dest in ("csv", "json") if values.get(dest)]
    for dest, v in outputs:
        check_output_file(v, label(dest), dest, inputs)
    if len(outputs) == 2 and _real(outputs[0][1]) == _real(outputs[1][1]):
        raise ConfigError(f"--csv and --json name the same file {outputs[0][1]!r}; give two file names")

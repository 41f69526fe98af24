"""The one way a benchmark ends: a ``RESULT key=value ...`` line and a small JSON result.

Every script in ``benchmarks/`` calls :func:`emit_result` last. It prints the line that the README,
the docs and the notes quote, and writes ``benchmarks/results/<name>.json`` with the same figures
and where they came from (commit, date, machine, torch and Python versions, the command), so the
docs' benchmark pages are generated from files anyone can regenerate by rerunning the script.

Example:
    >>> emit_result("demo", {"auc": 0.61234, "layer": "L7"}, write=False)
    RESULT auc=0.6123 layer=L7
    'RESULT auc=0.6123 layer=L7'
    >>> _ = emit_result("demo", {"ratio": 1.2571, "minutes": 56.71}, digits={"ratio": 3, "minutes": 1}, write=False)
    RESULT ratio=1.257 minutes=56.7
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "emit_result", "format_value", "provenance"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def format_value(value: Any, digits: int = 4) -> str:
    """One value of the RESULT line: floats with ``digits`` decimals, spaces in text replaced by ``_``."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace(" ", "_")


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance() -> dict[str, Any]:
    """Where a figure came from: commit, UTC date, machine, thread count, torch and Python versions, argv."""
    try:
        import torch

        torch_version, threads = torch.__version__, torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version, threads = None, None
    return {
        "commit": _git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "torch": torch_version,
        "torch_threads": threads,
        "python": platform.python_version(),
        "command": _command(),
    }


def _command() -> str | None:
    """The command as run from the repository's root (``python benchmarks/x.py ...``), wherever it was run from."""
    if not sys.argv or not sys.argv[0]:
        return None
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parents[1]
    shown = script.relative_to(root).as_posix() if script.is_relative_to(root) else sys.argv[0]
    return " ".join(["python", shown, *sys.argv[1:]])


def run_child(cmd: list[str]) -> dict[str, Any]:
    """Run a measuring process and return the JSON object on its last line of output (exit on its failure)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"the measuring process failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit_result(
    name: str,
    figures: Mapping[str, Any],
    *,
    details: Mapping[str, Any] | None = None,
    digits: int | Mapping[str, int] = 4,
    write: bool = True,
    results_dir: str | Path | None = None,
) -> str:
    """Print ``RESULT k=v ...`` (the benchmark's last line) and write ``results/<name>.json``.

    Args:
        name: the benchmark's name (its file stem, or stem plus profile: ``amint_grid-cpu``).
        figures: the RESULT line's keys and values, in order.
        details: anything else worth keeping beside the figures (tables, intervals, sizes).
        digits: decimals of floats on the line (the JSON keeps full precision): one number for every
            key, or a mapping of key to decimals (keys it does not name get 4).
        write: False to print only (a ``--quick`` run, a doctest).
        results_dir: where the JSON goes (default ``benchmarks/results``).

    Returns:
        The RESULT line.
    """
    places = (lambda k: digits.get(k, 4)) if isinstance(digits, Mapping) else (lambda k: digits)
    line = "RESULT " + " ".join(f"{k}={format_value(v, places(k))}" for k, v in figures.items())
    if write:
        folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "schema": "mintaudit/benchmark@1",
            "benchmark": name,
            "figures": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()},
            "details": dict(details or {}),
            **provenance(),
        }
        path = folder / f"{name}.json"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    print(line, flush=True)
    return line

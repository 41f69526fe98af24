"""Small data files the CLI tests read (imported by test modules in this folder)."""

from __future__ import annotations

import numpy as np


def learnable_npz(tmp_path, n: int, size: int = 8) -> str:  # noqa: ANN001 - a pytest tmp_path
    """A learnable size x size grey pool of n images in 3 classes (the class sets the mean brightness), as ``npz:PATH``.

    Written once per folder: later calls reuse the file.
    """
    path = tmp_path / "data.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        y = np.arange(n) % 3
        x = np.clip(rng.normal(60 + 70 * y[:, None, None], 30, (n, size, size)), 0, 255).astype(np.uint8)
        np.savez(path, x=x, y=y)
    return f"npz:{path}"

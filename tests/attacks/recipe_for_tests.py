"""A user's training recipe, as ``--trainer tests.attacks.recipe_for_tests:sgd`` and ``audit(trainer=sgd)`` take it."""

from __future__ import annotations

import torch
from torch import nn

CALLS: list[dict] = []  # one entry per call: what the recipe was handed


def sgd(model: nn.Module, loader, epochs: int = 1, lr: float = 0.1) -> nn.Module:
    """Plain SGD on cross-entropy: not the package's Adam loop."""
    sizes = [len(y) for _, y in loader]
    CALLS.append({"n": sum(sizes), "batch": sizes[0], "epochs": epochs, "seed_draw": torch.rand(1).item()})
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(int(epochs)):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()

"""The owner's training recipe as a function, for reference models trained the way the audited model was.

``train.py`` runs this loop on its own tensors; mintaudit calls it on a DataLoader of each
reference model's samples (``mintaudit attack --trainer recipe:fit --trainer-arg epochs=40``):
Adam at 1e-3, cross-entropy, batches of 64 (the loader's), ``epochs`` passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit(model: torch.nn.Module, loader, epochs: int = 40, lr: float = 1e-3) -> torch.nn.Module:
    """Train ``model`` on ``loader``'s (x, y) batches; returns it."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(int(epochs)):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model

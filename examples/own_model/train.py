"""Train the user's model the way its owner would: plain PyTorch, its own preprocessing (x / 255, no mean/std).

Reading the image files is the only thing it takes from mintaudit (``mintaudit.data.load_dataset``
reads the IDX files into a uint8 pool); everything else is an ordinary training script. It writes
into OUT:

- ``model.safetensors`` (``safetensors.torch.save_file``), the weights;
- ``members.txt``: the pool indices it trained on, one per line (Fashion-MNIST's pool: the
  60,000 training images, then the 10,000 test images);
- ``test.txt``: the pool indices of the images it measured its test accuracy on;
- ``metrics.json``: train and test accuracy, as measured here.

Example:
    python examples/own_model/train.py --dataset fashion-mnist --members 3000 --epochs 40 --out runs/own
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import build  # noqa: E402

from mintaudit.data import load_dataset  # noqa: E402  (only to read the files)


def to_input(images: np.ndarray) -> torch.Tensor:
    """The owner's preprocessing: uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((pred == y).float().mean())


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--members", type=int, default=3000)
    p.add_argument(
        "--test", type=int, default=2000, help="test images (from the official test part where there is one)"
    )
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/own")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    ds = load_dataset(args.dataset)
    rng = np.random.default_rng(args.seed)
    official = ds.official_test if ds.official_test is not None else np.zeros(len(ds), bool)
    train_pool, test_pool = np.flatnonzero(~official), np.flatnonzero(official)
    order = rng.permutation(train_pool)
    members = np.sort(order[: args.members])
    test = (
        np.sort(rng.permutation(test_pool)[: args.test])
        if len(test_pool)
        else np.sort(order[args.members : args.members + args.test])
    )
    x, y = to_input(ds.images[members]), torch.from_numpy(ds.labels[members])
    xt, yt = to_input(ds.images[test]), torch.from_numpy(ds.labels[test])

    model = build(ds.image_shape[0], ds.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            b = perm[i : i + 64]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}", file=sys.stderr)
    metrics = {"train_accuracy": accuracy(model, x, y), "test_accuracy": accuracy(model, xt, yt)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "members.txt").write_text("".join(f"{i}\n" for i in members))
    (out / "test.txt").write_text("".join(f"{i}\n" for i in test))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()

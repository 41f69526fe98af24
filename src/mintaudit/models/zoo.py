"""The audited-model zoo: the published object-classification CNN and a tiny test CNN, registered with their taps."""

from __future__ import annotations

import torch
from torch import nn

from mintaudit.models.catalog import register_model

__all__ = ["ObjClsCNN", "TinyCNN"]


class _Block(nn.Module):
    """Two 3x3 conv + BatchNorm + ReLU, then 2x2 max-pool and dropout."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.drop(self.pool(x))


def _pooled(size: int) -> int:
    for _ in range(3):
        size = (size + 1) // 2
    return size


class ObjClsCNN(nn.Module):
    """The audited CNN of the object-classification MINT study.

    Three blocks of two 3x3 convolutions (32, 64, 128 filters) with BatchNorm and ReLU, each
    block closed by 2x2 max-pooling and dropout; then dense 128 + ReLU and the class logits.
    Taps L1..L6 are the six conv layers after BN+ReLU (``blockK.reluJ``), L7 the dense layer
    after its ReLU (``fc_relu``). Works for any input size >= 5 px and any channel count.

    Args:
        in_channels: input channels (1 grey, 3 colour).
        num_classes: number of classes.
        image_size: input height/width in pixels (square or (H, W)).
        dropout: dropout probability after each block (0 disables it).

    Example:
        >>> m = ObjClsCNN(1, 10, 28)
        >>> m(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int | tuple[int, int], dropout: float = 0.25
    ) -> None:
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        if min(h, w) < 5:
            raise ValueError(f"ObjClsCNN needs inputs of at least 5x5 pixels, got {h}x{w}")
        self.block1 = _Block(in_channels, 32, dropout)
        self.block2 = _Block(32, 64, dropout)
        self.block3 = _Block(64, 128, dropout)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128 * _pooled(h) * _pooled(w), 128)
        self.fc_relu = nn.ReLU()
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.head(self.fc_relu(self.fc(self.flatten(x))))


class TinyCNN(nn.Module):
    """A two-conv CNN for tests: conv(8) ReLU pool, conv(16) ReLU, global average, linear."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int | tuple[int, int] = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.conv1(x)))
        return self.fc(self.flatten(self.gap(self.relu2(self.conv2(x)))))


# The taps of the object-classification study (published): L1..L6 the conv layers after BN+ReLU, L7 dense.
# aMINT: ``blockK.pool`` is a block's output *before* its dropout, what the next block sees at evaluation.
register_model(
    "objcls-cnn",
    ObjClsCNN,
    taps={
        "published": [
            ("L1", "block1.relu1"),
            ("L2", "block1.relu2"),
            ("L3", "block2.relu1"),
            ("L4", "block2.relu2"),
            ("L5", "block3.relu1"),
            ("L6", "block3.relu2"),
            ("L7", "fc_relu"),
        ],
        "entry": ["block1.pool", "block2.pool"],
        "middle": ["block2.pool", "block3.pool"],
        "output": ["block3.pool", "fc_relu"],
    },
)
register_model(
    "tiny-cnn",
    TinyCNN,
    taps={
        "published": [("L1", "relu1"), ("L2", "relu2")],
        "entry": ["relu1"],
        "middle": ["relu1", "relu2"],
        "output": ["relu2"],
    },
)

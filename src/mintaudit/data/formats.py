"""Readers for the on-disk formats of the public image data sets, and for generic ones.

Array readers return ``images`` uint8 (N, H, W, C) with C in {1, 3} and ``labels`` int64 (N,);
tree readers (GTSRB, Tiny ImageNet, image folders, ``.npz``) return an :class:`ImageDataset`.
Untrusted files are parsed, never executed: pickles go through a restricted unpickler and
``.npz`` files are loaded with ``allow_pickle=False``.

Each format lives in its own module (``idx``, ``cifar``, ``svhn``, ``images``, ``npz``; the shared
pieces in ``pool``); this module gathers their public readers so ``mintaudit.data.formats`` keeps
working as an import path.
"""

from __future__ import annotations

from mintaudit.data.cifar import read_cifar_binary, read_cifar_python
from mintaudit.data.idx import read_idx
from mintaudit.data.images import IMAGE_EXTENSIONS, read_gtsrb, read_image_folder, read_tiny_imagenet, resize_images
from mintaudit.data.npz import read_npz
from mintaudit.data.svhn import read_svhn_mat

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_idx",
    "read_cifar_binary",
    "read_cifar_python",
    "read_svhn_mat",
    "read_gtsrb",
    "read_image_folder",
    "read_tiny_imagenet",
    "read_npz",
    "resize_images",
]

"""Data sets: on-disk format readers, the name registry, and member / external / test splits."""

from mintaudit.data._base import ImageDataset
from mintaudit.data.formats import (
    read_cifar_binary,
    read_cifar_python,
    read_gtsrb,
    read_idx,
    read_image_folder,
    read_npz,
    read_svhn_mat,
    read_tiny_imagenet,
    resize_images,
)
from mintaudit.data.registry import (
    DATASET_NAMES,
    DATASET_PREFIXES,
    dataset_help,
    load_dataset,
    register_dataset,
    unregister_dataset,
)
from mintaudit.data.source import PoolSource
from mintaudit.data.splits import Splits, make_splits, null_split
from mintaudit.data.store import PoolStore
from mintaudit.data.member_lists import read_sample_list, splits_with


__all__ = [
    "ImageDataset",
    "PoolSource",
    "PoolStore",
    "load_dataset",
    "DATASET_NAMES",
    "DATASET_PREFIXES",
    "dataset_help",
    "register_dataset",
    "unregister_dataset",
    "Splits",
    "make_splits",
    "null_split",
    "read_idx",
    "read_cifar_binary",
    "read_cifar_python",
    "read_svhn_mat",
    "read_gtsrb",
    "read_image_folder",
    "read_tiny_imagenet",
    "read_npz",
    "resize_images",
    "read_sample_list",
    "splits_with",
]

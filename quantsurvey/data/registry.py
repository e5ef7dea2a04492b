"""Data set registry: `create_datamodule(name, ...)`, `list_datasets()`."""

from __future__ import annotations

from typing import Any

from quantsurvey.data.cifar10 import CIFAR10DataModule
from quantsurvey.data.imagenet import ImageNetDataModule, ImagewoofDataModule
from quantsurvey.data.mnist import MNISTDataModule
from quantsurvey.data.svhn import SVHNDataModule
from quantsurvey.data.synthetic import SyntheticDataModule
from quantsurvey.registry import Registry

DATASETS = Registry("data set", "data.name")
DATASETS.register("mnist")(MNISTDataModule)
DATASETS.register("cifar10")(CIFAR10DataModule)
DATASETS.register("svhn")(SVHNDataModule)
DATASETS.register("imagenet")(ImageNetDataModule)
DATASETS.register("imagewoof")(ImagewoofDataModule)
DATASETS.register("synthetic")(SyntheticDataModule)


def list_datasets() -> list[str]:
    return DATASETS.names()


def create_datamodule(name: str, **kwargs: Any):
    return DATASETS.create(name, "data", **kwargs)

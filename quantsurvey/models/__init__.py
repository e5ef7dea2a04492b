"""Plain nn.Module architectures behind a registry; importing this package registers them all."""

from quantsurvey.models import (  # noqa: F401  (registers)
    binary_nets,
    cifar_resnet,
    imagenet,
    lenet,
    xnor_alexnet,
    xnor_resnet,
)
from quantsurvey.models.registry import create_model, list_models

__all__ = ["create_model", "list_models"]

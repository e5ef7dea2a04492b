"""Plain nn.Module architectures behind a registry; importing this package registers them all."""

from quantsurvey.models import cifar_resnet, imagenet, lenet  # noqa: F401  (registers)
from quantsurvey.models.registry import create_model, list_models

__all__ = ["create_model", "list_models"]

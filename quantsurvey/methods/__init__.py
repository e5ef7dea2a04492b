"""Compression methods: each module here registers one (see `base.py`). Importing the package
imports every module in it, so adding a method is adding a file."""

import importlib
import pkgutil

from quantsurvey.methods.base import (
    METHODS,
    Method,
    StageContext,
    build_config,
    build_methods,
    canonical_compress,
    list_methods,
    register_method,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Method", "StageContext", "build_config", "build_methods",
           "canonical_compress", "list_methods", "register_method"]

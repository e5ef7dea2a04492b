"""The package's one compiled part: the fused XNOR-popcount kernel
(quantsurvey/compress/_popcount.c). Optional: where no C compiler exists the install still
succeeds and quantsurvey.compress.xnor_popcount falls back to numpy (same integers, slower).
Everything else about the package is in pyproject.toml."""

import os

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "quantsurvey.compress._popcount", ["quantsurvey/compress/_popcount.c"], optional=True,
    extra_compile_args=["/O2"] if os.name == "nt" else ["-O3"])])

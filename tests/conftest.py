"""Shared fixtures: compose configs the way the `quantsurvey` command does, find the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from quantsurvey.cli import CONF_DIR
from quantsurvey.compress import xnor_popcount

# the compiled XNOR-popcount kernel is built at install where a C compiler exists;
# tests/compress/test_xnor_popcount.py fails if a compiler exists but the kernel was not built,
# so this skip cannot hide a broken build
needs_compiled = pytest.mark.skipif(xnor_popcount._popcount is None,
                                    reason="compiled popcount kernel not built (no C compiler)")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QUANTSURVEY_DATA", REPO.parent / "shared" / "data")).resolve()
EXPERIMENTS = sorted(
    str(p.relative_to(Path(CONF_DIR) / "experiment").with_suffix(""))
    for p in (Path(CONF_DIR) / "experiment").rglob("*.yaml"))


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def smoke_cfg(tmp_path):
    """Compose an experiment on the synthetic set for a couple of batches, writing under tmp."""

    def make(*overrides: str):
        return compose_cfg(["data=synthetic", "trainer=smoke", "trainer.max_epochs=1",
                            f"paths.output_dir={tmp_path}",
                            f"paths.cache_dir={tmp_path / 'cache'}", *overrides])

    return make


def need_shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not here: {path}")
    return SHARED_DATA

"""What one stage hands to the next: `model.pt`, the dense effective weights plus the kept
masks, written after training; and how a run starts from a finished stage, a stage's `model.pt`,
a finished plain run (its last checkpoint) or an encoded file (`.qsdc`)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsurvey.atomic_io import write_bytes_atomic
from quantsurvey.errors import CheckpointError
from quantsurvey.export import load_model
from quantsurvey.nn.layers import weight_layers
from quantsurvey.nn.masking import apply_masks
from quantsurvey.nn.quant import kept_mask, plain_state_dict

STAGE_MODEL = "model.pt"


def stage_state(model: nn.Module) -> dict[str, Any]:
    """Dense effective weights plus masks: what the next stage starts from."""
    state = {k: v.detach().cpu().clone() for k, v in plain_state_dict(model).items()}
    masks = {n: m.cpu() for n, layer in weight_layers(model).items()
             if (m := kept_mask(layer)) is not None}
    return {"state_dict": state, "masks": masks}


def _saved_file(source: Path) -> Path | None:
    """The file `_read_saved(source)` reads: the .qsdc or model.pt named, the stage's model.pt,
    or a finished plain run's last checkpoint (None: nothing there to start from)."""
    path = source if source.is_file() else source / STAGE_MODEL
    if path.is_file():
        return path
    ckpt = source / "checkpoints" / "last.ckpt"
    return ckpt if (source / "summary.json").is_file() and ckpt.is_file() else None


def start_identity(source: str | Path) -> dict[str, Any]:
    """Which model a run started from, beyond its path: the sha256 of the file read and, where
    the source run's summary.json is beside it, that run's commit, dirty flag and test error (a
    path is reused by later runs; these are not)."""
    source = Path(source)
    path = _saved_file(source)
    if path is None:
        return {}
    identity: dict[str, Any] = {"file": str(path),
                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    run_dir = source if source.is_dir() else source.parent
    # a collected .qsdc has its summary beside it as <name>.json; otherwise the run's own
    summary = next((f for f in (source.with_suffix(".json"), run_dir / "summary.json")
                    if source.suffix == ".qsdc" and f.is_file()), run_dir / "summary.json")
    if summary.is_file():
        try:
            record = json.loads(summary.read_text())
        except (OSError, ValueError):
            return identity
        identity |= {"commit": record.get("git", {}).get("commit"),
                     "dirty": record.get("git", {}).get("dirty"),
                     "test_err": record.get("metrics", {}).get("test/err")}
    return identity


def _read_saved(source: Path) -> dict[str, Any]:
    if source.suffix == ".qsdc":  # the weights alone: the config's methods quantize again
        return {"state_dict": plain_state_dict(load_model(source)), "masks": {}}
    path = source if source.is_file() else source / STAGE_MODEL
    ckpt = source / "checkpoints" / "last.ckpt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    if (source / "summary.json").is_file() and ckpt.is_file():
        # a finished plain run: its final Lightning checkpoint holds the model
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        return {"state_dict": {k.removeprefix("model."): v for k, v in state.items()
                               if k.startswith("model.")}, "masks": {}}
    raise CheckpointError(f"init_from: {path} does not exist. Run (or finish) the stage that "
                          f"writes it first, or name a model.pt, a finished run's directory or "
                          f"an encoded .qsdc file.")


def load_stage(model: nn.Module, source: Path) -> None:
    """Load a finished stage's weights and masks (see the module docstring) into `model`."""
    source = Path(source)
    try:
        saved = _read_saved(source)
        model.load_state_dict(saved["state_dict"])
    except CheckpointError:
        raise
    except (RuntimeError, KeyError, EOFError, OSError) as err:
        raise CheckpointError(f"init_from: {source} does not fit this model "
                              f"({type(err).__name__}: {str(err).splitlines()[0]}).") from None
    apply_masks(model, saved["masks"])


def load_encoded(path: Path, like: nn.Module) -> nn.Module:
    """The model an encoded file decodes to, its activation quantizers included (a binary or
    fixed-point network is tested as written), after checking that its plain weights have the
    names and shapes of `like` (the configured architecture)."""
    decoded = load_model(Path(path))
    got = {k: tuple(v.shape) for k, v in plain_state_dict(decoded).items()}
    want = {k: tuple(v.shape) for k, v in like.state_dict().items()}
    if got != want:
        differ = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
        raise CheckpointError(
            f"init_from: {path} does not fit this model: {len(differ)} tensor(s) differ in name or "
            f"shape ({', '.join(differ[:3])}{', …' if len(differ) > 3 else ''}). Give the model "
            f"and its parameters that the file was written from.")
    return decoded


def save_stage(model: nn.Module, run_dir: Path) -> None:
    """Write `model.pt` atomically (serialised in memory, then written and renamed)."""
    buffer = io.BytesIO()
    torch.save(stage_state(model), buffer)
    write_bytes_atomic(Path(run_dir) / STAGE_MODEL, buffer.getvalue())

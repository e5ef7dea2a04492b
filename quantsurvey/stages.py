"""What a compression stage does around training: start from the previous stage's model, apply
this stage's prune / share step before training, and after it write the model for the next
stage (`model.pt`) and, when asked, the encoded file (`model.qsdc`) with its size accounting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsurvey.compress.kmeans import SharingConfig
from quantsurvey.config import EncodeConfig, RunConfig
from quantsurvey.errors import CheckpointError
from quantsurvey.export import export_model, load_model
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.masking import adjust_dropout, apply_masks, current_masks, prune_by_magnitude
from quantsurvey.nn.weight_sharing import effective_weight, is_shared, share_weights

STAGE_MODEL = "model.pt"
ENCODED = "model.qsdc"


def stage_state(model: nn.Module) -> dict[str, Any]:
    """Dense effective weights plus masks: what the next stage starts from."""
    layers = weight_layers(model)
    latent = {"weight_orig", "weight_mask", "weight_centroids", "weight_assignment"}
    state = {}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in layers and leaf in latent:
            continue
        state[key] = value.detach().cpu().clone()
    for name, module in layers.items():
        state[f"{name}.weight"] = effective_weight(module).detach().cpu().clone()
    masks = {n: m.cpu() for n, m in current_masks(model).items()}
    for name, module in layers.items():
        if is_shared(module):
            masks[name] = (module.weight_assignment != 0).cpu()
    return {"state_dict": state, "masks": masks}


def load_stage(model: nn.Module, init_dir: Path) -> None:
    """Load the previous stage's weights and masks into a fresh `model`."""
    path = Path(init_dir) / STAGE_MODEL
    ckpt = Path(init_dir) / "checkpoints" / "last.ckpt"
    if not path.is_file() and not ((Path(init_dir) / "summary.json").is_file() and ckpt.is_file()):
        raise CheckpointError(f"init_from: {path} does not exist. Run (or finish) the stage that "
                              f"writes it first.")
    try:
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
        else:  # a finished plain run: its final Lightning checkpoint holds the model
            state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
            saved = {"state_dict": {k.removeprefix("model."): v for k, v in state.items()
                                    if k.startswith("model.")}, "masks": {}}
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, EOFError, OSError) as err:
        raise CheckpointError(f"init_from: {path} does not fit this model "
                              f"({type(err).__name__}: {str(err).splitlines()[0]}).") from None
    apply_masks(model, saved["masks"])


def compress_before_training(model: nn.Module, rc: RunConfig) -> dict[str, Any]:
    """This stage's prune step (with Han's dropout rule) or weight-sharing step."""
    info: dict[str, Any] = {}
    c = rc.compress
    if c.prune is not None:
        masks = prune_by_magnitude(model, c.prune.get("quality"), c.prune.get("kept"))
        info["prune_kept_pct"] = {n: 100.0 * m.float().mean().item() for n, m in masks.items()}
        info["dropout"] = adjust_dropout(model)
    if c.share is not None:
        gen = torch.Generator().manual_seed(rc.seed)
        info["share_bits"] = share_weights(model, SharingConfig(**c.share), gen)
    return info


def save_stage(model: nn.Module, run_dir: Path) -> None:
    torch.save(stage_state(model), Path(run_dir) / STAGE_MODEL)


def encode_after_training(model: nn.Module, rc: RunConfig, run_dir: Path,
                          model_info: dict[str, Any], probe: torch.Tensor
                          ) -> tuple[nn.Module, dict[str, Any]]:
    """Export the encoded file, load it back, and check that it computes what `model` does."""
    index_bits = resolve_per_layer(model, EncodeConfig(**rc.compress.encode).index_bits,
                                   "compress.encode.index_bits")
    missing = [n for n, m in weight_layers(model).items() if is_shared(m) and n not in index_bits]
    if missing:
        raise CheckpointError(f"compress.encode.index_bits has no value for {missing}.")
    report = export_model(model, Path(run_dir) / ENCODED, model_info, index_bits)
    decoded = load_model(Path(run_dir) / ENCODED)
    model.eval(), decoded.eval()
    with torch.no_grad():
        same = torch.equal(model.cpu()(probe), decoded(probe))
    if not same:
        raise RuntimeError("the decoded model's outputs differ from the trained model's")
    original = 4 * sum(p.numel() for p in decoded.parameters())
    report.update({"original_bytes": original, "identical_outputs": same})
    return decoded, report

#!/usr/bin/env python
"""Re-encode the committed Deep Compression files with today's encoder and index bits.

For every encode-stage summary under results/runs/ that has its file beside it (`seed=<n>.qsdc`):
decode the committed file, rebuild each shared layer's codebook and assignment from the decoded
weights (the distinct non-zero values are the used centroids), encode it again with the index
bits of today's experiment config, decode the new file and check that every weight equals the
old file's bit for bit and that a probe batch gives identical outputs. The trained model is
therefore unchanged, so the run's test metrics stand; only the file, its size and ratio, the
per-layer table and `compress.encode` in the summary's config change. The summary records what
was re-encoded (`reencoded`: old size and sha256, old and new index bits, commit, command).

    python scripts/reencode_results.py                 # all of them
    python scripts/reencode_results.py --check         # say what would change, write nothing
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from quantsurvey.atomic_io import write_json_atomic
from quantsurvey.cli import CONF_DIR
from quantsurvey.compress.container import read_container
from quantsurvey.export import export_model, load_model
from quantsurvey.methods import build_config
from quantsurvey.nn.layers import resolve_per_layer
from quantsurvey.nn.quant import add_weight_transform
from quantsurvey.nn.weight_sharing import SharedCodebook
from quantsurvey.pipeline import stage_configs
from quantsurvey.provenance import REPO_ROOT, git_state


def _stage_rc(experiment: str, stage: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"])
    return {name: rc for name, _, rc in stage_configs(cfg)}[stage]


def reshare(model: torch.nn.Module, bits: dict[str, int]) -> None:
    """Put a SharedCodebook on each layer in `bits` that reproduces its decoded weight."""
    for name, b in bits.items():
        layer = getattr(model, name) if "." not in name else model.get_submodule(name)
        w = layer.weight.detach()
        values, inverse = torch.unique(w[w != 0], return_inverse=True)
        k = (1 << b) - 1
        if len(values) > k:
            raise ValueError(f"{name}: {len(values)} distinct values do not fit {b} bits")
        centroids = torch.cat([values, values[-1:].repeat(k - len(values))]) if len(values) \
            else torch.zeros(k)
        assignment = torch.zeros(w.shape, dtype=torch.long)
        assignment[w != 0] = inverse + 1
        add_weight_transform(layer, SharedCodebook(centroids, assignment, b))


def reencode(summary_path: Path, write: bool, git: dict) -> str:
    summary = json.loads(summary_path.read_text())
    old_file = summary_path.with_suffix(".qsdc")
    header, _ = read_container(old_file)
    experiment = summary.get("config", {}).get("experiment") or \
        f"{summary['paper']}/{summary['setting']}"
    rc = _stage_rc(experiment, summary["stage"])
    old_model = load_model(old_file).eval()
    model = copy.deepcopy(old_model)
    reshare(model, {n: m["bits"] for n, m in header["layers"].items()})
    index_bits = resolve_per_layer(model, build_config("encode", rc.compress["encode"])
                                   .index_bits, "compress.encode.index_bits")
    with tempfile.TemporaryDirectory() as tmp:
        new_file = Path(tmp) / "model.qsdc"
        report = export_model(model, new_file, header["model"], index_bits)
        decoded = load_model(new_file).eval()
        for name in header["layers"]:
            if not torch.equal(decoded.get_submodule(name).weight,
                               old_model.get_submodule(name).weight):
                raise RuntimeError(f"{summary_path}: {name} differs after re-encoding")
        probe = torch.randn(64, *header["model"]["input_shape"],
                            generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not torch.equal(decoded(probe), old_model(probe)):
                raise RuntimeError(f"{summary_path}: outputs differ after re-encoding")
        data = new_file.read_bytes()
    old_bytes = old_file.read_bytes()
    old_index = {n: m["index_bits"] for n, m in header["layers"].items()}
    line = (f"{summary_path.relative_to(REPO_ROOT)}: {len(old_bytes)} → {len(data)} bytes, "
            f"index bits {old_index} → {index_bits}")
    if not write or data == old_bytes:
        return line + ("" if data != old_bytes else " (unchanged)")
    original = summary["compression"]["encoded"]["original_bytes"]
    summary["reencoded"] = {
        "from_bytes": len(old_bytes), "from_sha256": hashlib.sha256(old_bytes).hexdigest(),
        "from_index_bits": old_index, "index_bits": index_bits,
        "reason": "used codebook entries only; index bits as the paper's tables print them",
        "git": git, "command": "python scripts/reencode_results.py",
        "identical_weights": True}
    summary["compression"]["encoded"] = {**report, "original_bytes": original,
                                         "identical_outputs": True}
    summary["metrics"]["compress/size_bytes"] = float(len(data))
    summary["metrics"]["compress/ratio"] = original / len(data)
    summary["config"]["compress"]["encode"] = dict(rc.compress["encode"])
    tmp = old_file.with_suffix(".qsdc.tmp")
    tmp.write_bytes(data)
    tmp.replace(old_file)
    write_json_atomic(summary_path, summary)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--check", action="store_true", help="report only, write nothing")
    args = parser.parse_args()
    git = git_state()  # before this script changes any file
    for path in sorted((args.results / "runs").rglob("seed=*.json")):
        if path.with_suffix(".qsdc").is_file():
            print(reencode(path, write=not args.check, git=git))


if __name__ == "__main__":
    main()

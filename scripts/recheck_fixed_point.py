"""Re-check the collected fixed-point results (Lin et al. 2016, Anwar et al. 2015) from their files.

    python scripts/recheck_fixed_point.py [mnist cifar10] [--data ../shared/data]

For every `results/runs/{lin2016_fixed_point,anwar2015_fixed_point}/<setting>_<data set>/<stage>/
seed=*.qsdc`: read the container's header, unpack each fixed-point layer's codes with a decoder of
its own (b-bit offset-binary numbers, most significant bit first, back to back: the format that
quantsurvey/compress/bit_pack.py documents), check that every code lies in [−2^(b−1), 2^(b−1) − 1]
and that the blob holds exactly ceil(n·b/8) bytes, and that the framework's decoded model
(`quantsurvey.export.load_model`, which also restores the activation quantizers) holds exactly
code × step in that layer. Then count the test errors of the decoded model on the data set's
test images read straight from their files (numpy for MNIST's IDX files, PIL for CIFAR-10's PNGs:
the readers of scripts/recheck_binary.py, not the project's data modules). Each count is
compared with the `test/err` of the run's summary beside the file, the file's size with the
summary's, the bits per layer with the stage's configured weight bits (an equal-bit stage; a
float-weight stage must have no fixed-point layer), and the code and step bytes with the
summary's `compress/weight_bytes`. Every layer-input quantizer of the decoded model is watched
while the test images pass: its outputs must be levels of its code range, and it must be
signed or unsigned as the stage's `act_signed` says (`auto`: unsigned exactly where the raw
input never goes below zero on the test images). Writes one JSON record per
data set (results/rechecks/fixed_point_<data set>.json); exits 1 when any figure disagrees.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from recheck_binary import read_cifar10, read_mnist, recheck_main  # noqa: E402

from quantsurvey.compress.container import read_container  # noqa: E402
from quantsurvey.export import load_model  # noqa: E402
from quantsurvey.nn.layers import weight_layers  # noqa: E402

PAPERS = ("lin2016_fixed_point", "anwar2015_fixed_point")
DATA_SETS = {"mnist": (read_mnist, 10_000), "cifar10": (read_cifar10, 10_000)}


def unpack(blob: bytes, bits: int, count: int) -> np.ndarray:
    """`count` signed b-bit codes from an MSB-first offset-binary bit stream (own decoder)."""
    stream = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[: count * bits]
    powers = 2 ** np.arange(bits - 1, -1, -1, dtype=np.int64)
    return stream.reshape(count, bits).astype(np.int64) @ powers - 2 ** (bits - 1)


def fixed_point_section(summary: dict) -> dict:
    """The stage's configured `fixed_point` section, else its `fixed_point_allocated` one."""
    compress = (summary.get("config") or {}).get("compress") or {}
    return compress.get("fixed_point") or compress.get("fixed_point_allocated") or {}


def check_layers(qsdc: Path, model: torch.nn.Module, summary: dict) -> dict:
    header, blobs = read_container(qsdc)
    layers = weight_layers(model)
    configured = fixed_point_section(summary)
    want_bits = configured.get("weight_bits")
    out = {"fixed_point_layers": 0, "fixed_point_weights": 0, "bits": {}, "weight_bytes": 0,
           "codes_in_range": True, "blob_sizes_exact": True, "decoded_equals_code_x_step": True,
           "bits_as_configured": True}
    for name, meta in header["layers"].items():
        if meta.get("kind") != "fixed_point":
            continue
        bits, n = meta["bits"], math.prod(meta["shape"])
        codes_blob, step_blob = blobs[f"{name}/codes"], blobs[f"{name}/step"]
        out["blob_sizes_exact"] &= len(codes_blob) == -(-n * bits // 8) and len(step_blob) == 4
        codes = unpack(codes_blob, bits, n)
        out["codes_in_range"] &= bool(codes.min() >= -2 ** (bits - 1)
                                      and codes.max() <= 2 ** (bits - 1) - 1)
        step = float(np.frombuffer(step_blob, dtype=np.float32)[0])
        level = codes if meta["zero_level"] else codes + 0.5
        expected = torch.from_numpy((level * np.float32(step)).astype(np.float32))
        actual = layers[name].weight.detach().flatten()
        out["decoded_equals_code_x_step"] &= bool(torch.equal(actual, expected))
        if isinstance(want_bits, int):
            out["bits_as_configured"] &= bits == want_bits
        out["fixed_point_layers"] += 1
        out["fixed_point_weights"] += n
        out["bits"][name] = bits
        out["weight_bytes"] += len(codes_blob) + len(step_blob)
    # float weights (weight_bits: float) leave no fixed-point layer; every other stage has some
    out["bits_as_configured"] &= (out["fixed_point_layers"] > 0) == (want_bits != "float")
    return out


class InputWatch:
    """Forward hooks on every layer's input quantizer: the smallest raw input seen, and whether
    every quantized value is a level of the quantizer's code range (step × an integer code in
    [−2^(b−1), 2^(b−1) − 1] signed, [0, 2^b − 1] unsigned; + 0.5 without a zero level)."""

    def __init__(self, model: torch.nn.Module):
        self.minimum: dict[str, float] = {}
        self.levels_ok: dict[str, bool] = {}
        self.quantizers = {name: layer._modules["input_quantizer"]
                           for name, layer in weight_layers(model).items()
                           if layer._modules.get("input_quantizer") is not None}
        self.handles = [q.register_forward_hook(self._hook(name))
                        for name, q in self.quantizers.items()]

    def _hook(self, name: str):
        def hook(quantizer, inputs, output):
            raw, bits = inputs[0], quantizer.bits
            self.minimum[name] = min(self.minimum.get(name, math.inf), float(raw.min()))
            level = output.double() / float(quantizer.step) - (0 if quantizer.zero_level else 0.5)
            low, high = ((-2 ** (bits - 1), 2 ** (bits - 1) - 1) if quantizer.signed
                         else (0, 2 ** bits - 1))
            ok = bool((level - level.round()).abs().max() < 1e-3
                      and level.min() >= low - 1e-3 and level.max() <= high + 1e-3)
            self.levels_ok[name] = self.levels_ok.get(name, True) and ok
        return hook

    def report(self, configured: dict) -> dict:
        """Signedness against the config: `true` (default) all signed, `false` all unsigned,
        `auto` unsigned exactly where the test images' raw input never goes below 0."""
        for handle in self.handles:
            handle.remove()
        want = configured.get("act_signed", True)
        signed = {name: bool(q.signed) for name, q in self.quantizers.items()}
        expected = {name: (want if isinstance(want, bool) else self.minimum[name] < 0)
                    for name in signed}
        return {"input_quantizers": len(signed),
                "unsigned_inputs": sorted(n for n, s in signed.items() if not s),
                "signedness_as_configured": signed == expected,
                "input_levels_in_range": all(self.levels_ok.values())}


def recheck_file(qsdc: Path, x: torch.Tensor, labels: torch.Tensor, batch: int) -> dict:
    summary = json.loads(qsdc.with_suffix(".json").read_text())
    model = load_model(qsdc).eval()
    watch = InputWatch(model)
    wrong = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(x[start:start + batch])
            wrong += int((logits.argmax(1) != labels[start:start + batch]).sum())
    metrics = summary["metrics"]
    row = {"file": str(qsdc.relative_to(REPO)), "method": summary["method"],
           "file_bytes": qsdc.stat().st_size, "test_images": len(x),
           "test_err_pct": 100 * wrong / len(x), "summary_test_err_pct": metrics["test/err"],
           "summary_size_bytes": metrics.get("compress/size_bytes"),
           "summary_weight_bytes": metrics.get("compress/weight_bytes"),
           **check_layers(qsdc, model, summary), **watch.report(fixed_point_section(summary))}
    row["agrees"] = (abs(row["test_err_pct"] - row["summary_test_err_pct"]) < 1e-3
                     and row["summary_size_bytes"] == row["file_bytes"]
                     and row["codes_in_range"] and row["blob_sizes_exact"]
                     and row["signedness_as_configured"] and row["input_levels_in_range"]
                     and row["decoded_equals_code_x_step"] and row["bits_as_configured"]
                     and row["summary_weight_bytes"] in (None, row["weight_bytes"]))
    return row


def main() -> None:
    recheck_main(__doc__, PAPERS, DATA_SETS, recheck_file, "fixed_point")


if __name__ == "__main__":
    main()

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
summary's `compress/weight_bytes`. Writes one JSON record per
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


def check_layers(qsdc: Path, model: torch.nn.Module, summary: dict) -> dict:
    header, blobs = read_container(qsdc)
    layers = weight_layers(model)
    configured = ((summary.get("config") or {}).get("compress") or {}).get("fixed_point") or {}
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


def recheck_file(qsdc: Path, x: torch.Tensor, labels: torch.Tensor, batch: int) -> dict:
    summary = json.loads(qsdc.with_suffix(".json").read_text())
    model = load_model(qsdc).eval()
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
           **check_layers(qsdc, model, summary)}
    row["agrees"] = (abs(row["test_err_pct"] - row["summary_test_err_pct"]) < 1e-3
                     and row["summary_size_bytes"] == row["file_bytes"]
                     and row["codes_in_range"] and row["blob_sizes_exact"]
                     and row["decoded_equals_code_x_step"] and row["bits_as_configured"]
                     and row["summary_weight_bytes"] in (None, row["weight_bytes"]))
    return row


def main() -> None:
    recheck_main(__doc__, PAPERS, DATA_SETS, recheck_file, "fixed_point")


if __name__ == "__main__":
    main()

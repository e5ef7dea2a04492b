"""Re-check the collected BinaryNet MNIST MLP results from their files alone.

    python scripts/recheck_bnn_mnist.py [--data ../shared/data] [--out FILE.json]

For every `results/runs/courbariaux2016_bnn/bnn_mlp_mnist/bnn/seed=*.qsdc`: decode the file
(`quantsurvey.export.load_model`), read the MNIST test set straight from its IDX files (numpy, not
the project's data module; normalised by the project's mean 0.1307 and std 0.3081), and count the
test errors twice: with the decoded torch model, and with packed XNOR-popcount inference
(`PackedBNNMLP`, 1 bit per weight and per hidden activation). Both counts are compared with the
`test/err` of the run's summary beside the file; the file's size and its binary weights are
recounted. Writes one JSON record and exits 1 when any figure disagrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.export import load_model  # noqa: E402
from quantsurvey.nn.packed_inference import PackedBNNMLP  # noqa: E402

RUNS = REPO / "results" / "runs" / "courbariaux2016_bnn" / "bnn_mlp_mnist" / "bnn"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic (0, 0, dtype 0x08, ndim), big-endian sizes, uint8."""
    raw = path.read_bytes()
    if raw[:3] != b"\x00\x00\x08":
        sys.exit(f"recheck: {path} is not an unsigned-byte IDX file.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "rechecks" / "bnn_mlp_mnist.json")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    raw = args.data / "MNIST" / "raw"
    images = read_idx(raw / "t10k-images-idx3-ubyte")
    labels = torch.from_numpy(read_idx(raw / "t10k-labels-idx1-ubyte").astype(np.int64))
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.1307) / 0.3081
    x = x.unsqueeze(1)
    torch.set_num_threads(2)
    rows, bad = [], []
    for qsdc in sorted(RUNS.glob("seed=*.qsdc")):
        summary = json.loads(qsdc.with_suffix(".json").read_text())
        model = load_model(qsdc).eval()
        packed = PackedBNNMLP.from_model(model)
        wrong_torch = wrong_packed = disagree = 0
        with torch.no_grad():
            for start in range(0, len(x), args.batch):
                xb, yb = x[start:start + args.batch], labels[start:start + args.batch]
                a, b = model(xb), packed(xb)
                wrong_torch += int((a.argmax(1) != yb).sum())
                wrong_packed += int((b.argmax(1) != yb).sum())
                disagree += int((a != b).any(1).sum())
        binary = sum(fc.weight.numel() for fc in model.fcs)
        assert all(bool((fc.weight.abs() == 1).all()) for fc in model.fcs)
        row = {"file": str(qsdc.relative_to(REPO)), "file_bytes": qsdc.stat().st_size,
               "binary_weights": binary, "binary_weight_bytes": binary / 8,
               "test_images": len(x), "test_err_torch_pct": 100 * wrong_torch / len(x),
               "test_err_packed_pct": 100 * wrong_packed / len(x),
               "samples_whose_logits_differ": disagree,
               "summary_test_err_pct": summary["metrics"]["test/err"],
               "summary_size_bytes": summary["metrics"].get("compress/size_bytes")}
        ok = (abs(row["test_err_torch_pct"] - row["summary_test_err_pct"]) < 1e-3
              and row["test_err_packed_pct"] == row["test_err_torch_pct"]
              and row["summary_size_bytes"] == row["file_bytes"])
        row["agrees"] = ok
        bad += [] if ok else [qsdc.name]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if not rows:
        sys.exit(f"recheck: no seed=*.qsdc under {RUNS}.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "rows": rows}, indent=1)
                        + "\n")
    if bad:
        sys.exit(f"recheck: {', '.join(bad)} disagree with their summaries (see {args.out}).")


if __name__ == "__main__":
    main()

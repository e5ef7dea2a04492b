"""Re-check the collected binary CIFAR-10 results (BNN, BWN, XNOR-Net) from their files alone.

    python scripts/recheck_binary_cifar10.py [--data ../shared/data] [--out FILE.json]

For every `results/runs/{courbariaux2016_bnn,rastegari2016_xnor}/<setting>/<stage>/seed=*.qsdc`
of a CIFAR-10 setting: decode the file (`quantsurvey.export.load_model`), read the 10,000 CIFAR-10
test images straight from the ImageFolder PNGs with PIL (not the project's data module; classes
in torchvision's order, normalised by the project's per-channel mean and std), and count the test
errors with the decoded model; a `bnn` file is also run by packed XNOR-popcount inference
(`PackedBNNConvNet`, 1 bit per binary weight and activation), whose logits must equal the decoded
model's. Each count is compared with the `test/err` of the run's summary beside the file, the
file's size with the summary's, and the binary layers' weights recounted (±1, or ±α per output
filter for bwn / xnor). Writes one JSON record; exits 1 when any figure disagrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.export import load_model  # noqa: E402
from quantsurvey.nn.packed_inference import PackedBNNConvNet  # noqa: E402

PAPERS = ("courbariaux2016_bnn", "rastegari2016_xnor")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_test_set(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        for png in sorted((folder / name).glob("*.png")):
            images.append(np.asarray(Image.open(png).convert("RGB")))
            labels.append(label)
    if len(images) != 10_000:
        sys.exit(f"recheck: {folder} holds {len(images)} test images, not CIFAR-10's 10,000.")
    # contiguous NCHW as torchvision's ToTensor gives: XNOR-Net's signs are sensitive to the
    # summation order, and a channels-last tensor flips one test image of 10,000 (see README)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().float() / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x, torch.tensor(labels)


def binary_layers_are_binary(model: torch.nn.Module) -> tuple[int, bool]:
    """(binary weights, whether every conv / fc but a float first or last one holds two values
    ±α per output filter: α = 1 for bnn; bwn and xnor keep the first conv and last fc float)."""
    count, ok = 0, True
    for layer in [*model.convs, *model.fcs]:
        w = layer.weight.detach().flatten(1)
        alpha = w.abs().amax(1, keepdim=True)
        if not bool((w.abs() == alpha).all()):
            if layer is model.convs[0] or layer is model.fcs[-1]:
                continue  # a float first or last layer (bwn / xnor)
            ok = False
        count += w.numel()
    return count, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "rechecks" / "binary_cifar10.json")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    files = sorted(f for p in PAPERS
                   for f in (REPO / "results" / "runs" / p).glob("*cifar10/*/seed=*.qsdc"))
    if not files:
        sys.exit("recheck: no CIFAR-10 seed=*.qsdc under results/runs.")
    x, labels = read_test_set(args.data / "cifar10" / "test")
    torch.set_num_threads(1)  # beside other work on a 2-core machine
    rows, bad = [], []
    for qsdc in files:
        summary = json.loads(qsdc.with_suffix(".json").read_text())
        model = load_model(qsdc).eval()
        packed = PackedBNNConvNet.from_model(model) if summary["method"] == "bnn" else None
        wrong = wrong_packed = disagree = 0
        with torch.no_grad():
            for start in range(0, len(x), args.batch):
                xb, yb = x[start:start + args.batch], labels[start:start + args.batch]
                logits = model(xb)
                wrong += int((logits.argmax(1) != yb).sum())
                if packed is not None:
                    other = packed(xb)
                    wrong_packed += int((other.argmax(1) != yb).sum())
                    disagree += int((other != logits).any(1).sum())
        binary, binary_ok = binary_layers_are_binary(model)
        row = {"file": str(qsdc.relative_to(REPO)), "method": summary["method"],
               "file_bytes": qsdc.stat().st_size, "binary_weights": binary,
               "binary_layers_hold_two_values_per_filter": binary_ok,
               "test_images": len(x), "test_err_torch_pct": 100 * wrong / len(x),
               "summary_test_err_pct": summary["metrics"]["test/err"],
               "summary_size_bytes": summary["metrics"].get("compress/size_bytes")}
        if packed is not None:
            row |= {"test_err_packed_pct": 100 * wrong_packed / len(x),
                    "samples_whose_logits_differ": disagree}
        ok = (abs(row["test_err_torch_pct"] - row["summary_test_err_pct"]) < 1e-3
              and row["summary_size_bytes"] == row["file_bytes"] and binary_ok
              and (packed is None or (disagree == 0 and wrong_packed == wrong)))
        row["agrees"] = ok
        bad += [] if ok else [row["file"]]
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "rows": rows}, indent=1)
                        + "\n")
    if bad:
        sys.exit(f"recheck: {', '.join(bad)} disagree with their summaries (see {args.out}).")


if __name__ == "__main__":
    main()

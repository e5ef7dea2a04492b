"""Re-check the collected binary-network results (BNN, BWN, XNOR-Net) from their files alone.

    python scripts/recheck_binary.py [mnist cifar10 imagewoof] [--data ../shared/data]

For every `results/runs/{courbariaux2016_bnn,rastegari2016_xnor}/<setting>_<data set>/<stage>/
seed=*.qsdc`: decode the file (`quantsurvey.export.load_model`), read the data set's test images
straight from its files (numpy for MNIST's IDX files, PIL for CIFAR-10's PNGs and Imagewoof's
JPEGs: not the project's data modules; each normalised by its published per-channel mean and std,
Imagewoof centre-cropped to 112 px as the configs' test transform), and count the test errors with
the decoded model. A `bnn` file is also run by packed XNOR-popcount inference (`PackedBNNMLP` /
`PackedBNNConvNet`, 1 bit per binary weight and activation), whose logits must equal the decoded
model's. Each count is compared with the `test/err` of the run's summary beside the file, the
file's size with the summary's, and the binary layers' weights recounted: ±1 everywhere for bnn,
±α per output filter for bwn / xnor in every conv and fc but the float first and last ones.
Writes one JSON record per data set (results/rechecks/binary_<data set>.json); exits 1 when any
figure disagrees.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.export import load_model  # noqa: E402
from quantsurvey.nn.packed_inference import PackedBNNConvNet, PackedBNNMLP  # noqa: E402

PAPERS = ("courbariaux2016_bnn", "rastegari2016_xnor")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def _normalise(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 (N, H, W, C) → float (N, C, H, W), contiguous as torchvision's ToTensor gives:
    XNOR-Net's signs depend on the summation order, and a channels-last tensor flips one CIFAR-10
    test image of 10,000 (experiments/rastegari2016_xnor/README.md)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255.0
    c = x.shape[1]
    return (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic (0, 0, dtype 0x08, ndim), big-endian sizes, uint8."""
    raw = path.read_bytes()
    if raw[:3] != b"\x00\x00\x08":
        sys.exit(f"recheck: {path} is not an unsigned-byte IDX file.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()  # writable


def read_mnist(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = data / "MNIST" / "raw"
    images = read_idx(raw / "t10k-images-idx3-ubyte")[..., None]
    labels = read_idx(raw / "t10k-labels-idx1-ubyte").astype(np.int64)
    return _normalise(images, (0.1307,), (0.3081,)), torch.from_numpy(labels)


def read_cifar10(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for png in sorted((data / "cifar10" / "test" / name).glob("*.png")):
            images.append(np.asarray(Image.open(png).convert("RGB")))
            labels.append(label)
    x = _normalise(np.stack(images), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return x, torch.tensor(labels)


def read_imagewoof(data: Path, size: int = 128, crop: int = 112
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The official val split (the runs' test set), classes in sorted wnid order; shorter side
    scaled to `size` (bilinear; the stored images already have it, so they are left as they are),
    then the centre `crop`×`crop` (offsets rounded as torchvision's CenterCrop)."""
    folder = data / "imagewoof2-128" / "val"
    images, labels = [], []
    for label, wnid in enumerate(sorted(p.name for p in folder.iterdir() if p.is_dir())):
        for jpeg in sorted((folder / wnid).glob("*.JPEG")):
            img = Image.open(jpeg).convert("RGB")
            w, h = img.size
            if min(w, h) != size:
                short, long = (w, h) if w <= h else (h, w)
                new = (size, int(size * long / short))
                img = img.resize(new if w <= h else new[::-1], Image.BILINEAR)
                w, h = img.size
            top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
            images.append(np.asarray(img.crop((left, top, left + crop, top + crop))))
            labels.append(label)
    x = _normalise(np.stack(images), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return x, torch.tensor(labels)


DATA_SETS = {"mnist": (read_mnist, 10_000), "cifar10": (read_cifar10, 10_000),
             "imagewoof": (read_imagewoof, 3_929)}


def binary_weights(model: nn.Module, method: str) -> tuple[int, bool]:
    """(binary weights, whether the layers hold what the method promises): bnn ±1 in every conv
    and fc; bwn / xnor two values ±α per output filter in each but the first and the last."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    count, ok = 0, True
    for layer in layers:
        w = layer.weight.detach().flatten(1).abs()
        alpha = torch.ones_like(w[:, :1]) if method == "bnn" else w.amax(1, keepdim=True)
        if bool((w == alpha).all()):
            count += w.numel()
        elif method == "bnn" or layer not in (layers[0], layers[-1]):
            ok = False
    return count, ok


def packed_network(model: nn.Module, method: str):
    if method != "bnn":
        return None
    return PackedBNNConvNet.from_model(model) if hasattr(model, "convs") else \
        PackedBNNMLP.from_model(model)


def recheck_file(qsdc: Path, x: torch.Tensor, labels: torch.Tensor, batch: int) -> dict:
    summary = json.loads(qsdc.with_suffix(".json").read_text())
    model = load_model(qsdc).eval()
    method = summary["method"]
    packed = packed_network(model, method)
    wrong = wrong_packed = disagree = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb, yb = x[start:start + batch], labels[start:start + batch]
            logits = model(xb)
            wrong += int((logits.argmax(1) != yb).sum())
            if packed is not None:
                other = packed(xb)
                wrong_packed += int((other.argmax(1) != yb).sum())
                disagree += int((other != logits).any(1).sum())
    count, binary_ok = binary_weights(model, method)
    row = {"file": str(qsdc.relative_to(REPO)), "method": method,
           "file_bytes": qsdc.stat().st_size, "binary_weights": count,
           "binary_layers_as_the_method_promises": binary_ok, "test_images": len(x),
           "test_err_torch_pct": 100 * wrong / len(x),
           "summary_test_err_pct": summary["metrics"]["test/err"],
           "summary_size_bytes": summary["metrics"].get("compress/size_bytes")}
    if packed is not None:
        row |= {"test_err_packed_pct": 100 * wrong_packed / len(x),
                "samples_whose_logits_differ": disagree}
    row["agrees"] = (abs(row["test_err_torch_pct"] - row["summary_test_err_pct"]) < 1e-3
                     and row["summary_size_bytes"] == row["file_bytes"] and binary_ok
                     and (packed is None or (disagree == 0 and wrong_packed == wrong)))
    return row


def selected(files: list[Path], patterns: list[str] | None) -> list[Path]:
    """The files whose path under results/runs matches one of the glob `patterns` (all: None)."""
    runs = REPO / "results" / "runs"
    return [f for f in files if patterns is None or
            any(fnmatch.fnmatchcase(f.relative_to(runs).as_posix(), p) for p in patterns)]


def merged(old_rows: list[dict], new_rows: list[dict]) -> list[dict]:
    """The old record's rows with those of the files checked again replaced, sorted by file."""
    rows = {r["file"]: r for r in old_rows} | {r["file"]: r for r in new_rows}
    return [rows[f] for f in sorted(rows)]


def recheck_main(doc: str, papers: tuple[str, ...], data_sets: dict, check_one, prefix: str
                 ) -> None:
    """The command line shared by the re-check scripts: every `seed=*.qsdc` of `papers` under
    results/runs, per data set, through `check_one(qsdc, x, labels, batch) -> row` (each
    script's `recheck_file`); one record <prefix>_<data set>.json. With `--only GLOB …` only
    the matching files are checked and the record keeps its other rows."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("data_sets", nargs="*", help=f"of {', '.join(data_sets)} (default: all)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "rechecks",
                        help=f"folder of the {prefix}_<data set>.json records")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", metavar="GLOB",
                        help="check only these files (globs on their path under results/runs, "
                             "e.g. 'lin2016_fixed_point/*/finetune_w2_a4/*'); the record keeps "
                             "its rows for the others")
    args = parser.parse_args()
    unknown = sorted(set(args.data_sets) - set(data_sets))
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}: choose from "
                     f"{', '.join(data_sets)}")
    torch.set_num_threads(args.threads)
    bad, checked = [], 0
    for name in args.data_sets or data_sets:
        files = selected(sorted(f for p in papers for f in
                                (REPO / "results" / "runs" / p).glob(f"*_{name}/*/seed=*.qsdc")),
                         args.only)
        if not files:
            which = f" matches --only {' '.join(args.only)}" if args.only else ""
            print(f"recheck: no {name} seed=*.qsdc under results/runs{which}; skipped",
                  flush=True)
            continue
        checked += len(files)
        reader, expected = data_sets[name]
        x, labels = reader(args.data)
        if len(x) != expected:
            sys.exit(f"recheck: {args.data} holds {len(x)} {name} test images, not {expected}.")
        rows = []
        for qsdc in files:
            rows.append(check_one(qsdc, x, labels, args.batch))
            print(json.dumps(rows[-1]), flush=True)
            bad += [] if rows[-1]["agrees"] else [rows[-1]["file"]]
        out = args.out / f"{prefix}_{name}.json"
        if args.only and out.is_file():
            rows = merged(json.loads(out.read_text())["rows"], rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"what": doc.splitlines()[0], "data_set": name,
                                   "rows": rows}, indent=1) + "\n")
    if args.only and not checked:
        sys.exit(f"recheck: --only {' '.join(args.only)} matches no seed=*.qsdc file; the globs "
                 "are matched against the path under results/runs, e.g. "
                 "'lin2016_fixed_point/*/finetune_w2_a4/*'.")
    if bad:
        sys.exit(f"recheck: {', '.join(bad)} disagree with their summaries (see {args.out}).")


def main() -> None:
    recheck_main(__doc__, PAPERS, DATA_SETS, recheck_file, "binary")


if __name__ == "__main__":
    main()

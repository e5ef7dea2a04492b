"""Carry CIFAR-10 to a machine that has no copy of it, losslessly and in parts of a given size.

    python scripts/transfer_cifar10.py pack OUT_DIR [--parts 2]     # here, from the data set
    python scripts/transfer_cifar10.py unpack PART_DIR... --root R  # there, from every part

`pack` reads CIFAR-10 the way the framework does (the data module's decoded uint8 tensors, from
$QUANTSURVEY_DATA or ../shared/data) and writes mosaics of 1,000 images (20 × 50 tiles of 32 ×
32 px) as lossless WebP (about 3.8 bits per value against PNG's 6: 60,000 images in ≈ 88 MB),
the labels, and a manifest with the SHA-256 of the images and labels of each split, split into
`--parts` folders of about equal size. `unpack` decodes the mosaics, checks every hash (one
differing byte stops it) and writes torchvision's `cifar-10-batches-py/` (data_batch_1 … 5,
test_batch: pickled dicts of `data` (N, 3072) uint8 and `labels`, the images in the data
module's order), which the framework reads directly.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TILE_ROWS, TILE_COLS = 20, 50  # 1,000 images per mosaic


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _mosaic(images: np.ndarray) -> np.ndarray:
    """(n ≤ 1000, 3, 32, 32) uint8 → (640, 1600, 3), unused tiles black."""
    tiles = np.zeros((TILE_ROWS * TILE_COLS, 32, 32, 3), dtype=np.uint8)
    tiles[: len(images)] = images.transpose(0, 2, 3, 1)
    grid = tiles.reshape(TILE_ROWS, TILE_COLS, 32, 32, 3).transpose(0, 2, 1, 3, 4)
    return grid.reshape(TILE_ROWS * 32, TILE_COLS * 32, 3)


def _tiles(mosaic: np.ndarray, n: int) -> np.ndarray:
    grid = mosaic.reshape(TILE_ROWS, 32, TILE_COLS, 32, 3).transpose(0, 2, 1, 3, 4)
    return grid.reshape(-1, 32, 32, 3)[:n].transpose(0, 3, 1, 2)


def load_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from quantsurvey.data.cifar10 import CIFAR10DataModule

    root = os.environ.get("QUANTSURVEY_DATA", str(REPO.parent / "shared" / "data"))
    cache = os.environ.get("QUANTSURVEY_CACHE", str(REPO / "data" / "cache"))
    dm = CIFAR10DataModule(root, cache, download=False)
    return {split: tuple(t.numpy() for t in dm.load_split(train=split == "train"))
            for split in ("train", "test")}


def pack(out: Path, parts: int) -> None:
    splits = load_splits()
    chunks = [(split, start) for split, (images, _) in splits.items()
              for start in range(0, len(images), TILE_ROWS * TILE_COLS)]
    manifest = {"splits": {s: {"count": len(l), "images_sha256": _sha256(i),
                               "labels_sha256": _sha256(l.astype(np.int64))}
                           for s, (i, l) in splits.items()}, "chunks": []}
    for k, (split, start) in enumerate(chunks):
        part = out / f"part{k * parts // len(chunks)}"
        part.mkdir(parents=True, exist_ok=True)
        images = splits[split][0][start : start + TILE_ROWS * TILE_COLS]
        name = f"{split}-{start:05d}.webp"
        buffer = io.BytesIO()
        Image.fromarray(_mosaic(images)).save(buffer, "WEBP", lossless=True, quality=100,
                                              method=4)
        (part / name).write_bytes(buffer.getvalue())
        manifest["chunks"].append({"part": part.name, "file": name, "split": split,
                                   "start": start, "count": len(images)})
    labels = {s: zlib.compress(l.astype(np.uint8).tobytes(), 9).hex()
              for s, (_, l) in splits.items()}
    (out / "part0" / "manifest.json").write_text(json.dumps({**manifest, "labels": labels}))
    sizes = {p.name: sum(f.stat().st_size for f in p.iterdir()) for p in sorted(out.iterdir())}
    print(json.dumps(sizes))


def unpack(part_dirs: list[Path], root: Path) -> None:
    files = {f.name: f for d in part_dirs for f in Path(d).iterdir()}
    if "manifest.json" not in files:
        sys.exit("unpack: manifest.json is in part0; pass every part's folder")
    manifest = json.loads(files["manifest.json"].read_text())
    out = {}
    for split, meta in manifest["splits"].items():
        images = np.zeros((meta["count"], 3, 32, 32), dtype=np.uint8)
        for chunk in (c for c in manifest["chunks"] if c["split"] == split):
            if chunk["file"] not in files:
                sys.exit(f"unpack: {chunk['file']} (of {chunk['part']}) is missing")
            with Image.open(files[chunk["file"]]) as img:
                mosaic = np.asarray(img.convert("RGB"))
            images[chunk["start"] : chunk["start"] + chunk["count"]] = _tiles(mosaic,
                                                                              chunk["count"])
        labels = np.frombuffer(zlib.decompress(bytes.fromhex(manifest["labels"][split])),
                               dtype=np.uint8).astype(np.int64)
        if _sha256(images) != meta["images_sha256"] or _sha256(labels) != meta["labels_sha256"]:
            sys.exit(f"unpack: the decoded {split} split does not match its SHA-256")
        out[split] = (images, labels)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = out["train"]
    batches = {f"data_batch_{i + 1}": slice(10_000 * i, 10_000 * (i + 1)) for i in range(5)}
    for name, part in [*batches.items(), ("test_batch", slice(None))]:
        images, labels = out["train"] if name != "test_batch" else out["test"]
        entry = {"data": images[part].reshape(-1, 3072), "labels": labels[part].tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    print(f"CIFAR-10 written to {folder}: train {len(train_labels)}, test "
          f"{len(out['test'][1])}, SHA-256 checked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("out", type=Path)
    p.add_argument("--parts", type=int, default=2)
    u = sub.add_parser("unpack")
    u.add_argument("parts", type=Path, nargs="+")
    u.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    pack(args.out, args.parts) if args.cmd == "pack" else unpack(args.parts, args.root)


if __name__ == "__main__":
    main()

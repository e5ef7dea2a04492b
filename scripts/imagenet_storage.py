#!/usr/bin/env python
"""Storage at ImageNet scale (storage only: no ImageNet here, so no accuracy).

Takes the per-layer kept fractions, codebook bits and index bits of the experiment configs
(han2016_deep_compression/{alexnet,vgg16}_imagenet, iandola2016_squeezenet/squeezenet_imagenet),
applies them to the architecture's weights, writes the real encoded file, decodes it again, and
records the file's size and the encode / decode times. Weights are torchvision's random
initialisation (seeded) unless --pretrained, which downloads torchvision's trained weights where
the network allows; Huffman gains depend on the weight distribution, so sizes of trained weights
can differ somewhat.

    python scripts/imagenet_storage.py                      # all four settings, ≈ 5 min on 2 cores
    python scripts/imagenet_storage.py --only alexnet       # one of them

Writes results/runs/<paper>/<setting>/storage-<method>/seed=0.json: run summaries from which
`quantsurvey-report` builds the results rows and the per-layer tables (Deep Compression's
Tables 2–5 layout), with the encode / decode times (the benchmark: target ≤ 30 s each for AlexNet
on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from quantsurvey.atomic_io import write_json_atomic
from quantsurvey.cli import CONF_DIR
from quantsurvey.export import export_model, load_model
from quantsurvey.methods import build_config
from quantsurvey.models import create_model
from quantsurvey.nn.layers import resolve_per_layer
from quantsurvey.nn.masking import prune_by_magnitude
from quantsurvey.nn.weight_sharing import share_weights
from quantsurvey.pipeline import stage_configs
from quantsurvey.provenance import REPO_ROOT, git_state, hardware, package_versions

# (experiment, prune stage, quantize stage)
SETTINGS = {
    "alexnet": ("han2016_deep_compression/alexnet_imagenet", "prune1", "quantize"),
    "vgg16": ("han2016_deep_compression/vgg16_imagenet", "prune1", "quantize"),
    "squeezenet_8bit": ("iandola2016_squeezenet/squeezenet_imagenet", "prune1", "quantize8"),
    "squeezenet_6bit": ("iandola2016_squeezenet/squeezenet_imagenet", "prune1", "quantize6"),
}


def stage(experiment: str, name: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"])
    return {n: rc for n, _, rc in stage_configs(cfg)}[name]


def run(key: str, out: Path, pretrained: bool) -> dict:
    experiment, prune_name, quant_name = SETTINGS[key]
    prune_rc, quant_rc = stage(experiment, prune_name), stage(experiment, quant_name)
    torch.manual_seed(0)
    model = create_model(quant_rc.model.name, num_classes=1000, input_shape=(3, 224, 224),
                         **quant_rc.model.params)
    if pretrained:
        from torchvision import models as tvm

        weights = tvm.get_model_weights(quant_rc.model.name).DEFAULT
        model.load_state_dict(weights.get_state_dict(progress=True))
    model.eval()
    original = 4 * sum(p.numel() for p in model.parameters())
    start = time.time()
    prune = build_config("prune", prune_rc.compress["prune"])
    prune_by_magnitude(model, prune.quality, prune.kept)
    share_weights(model, build_config("share", quant_rc.compress["share"]),
                  torch.Generator().manual_seed(0))
    t_share = time.time() - start
    index_bits = resolve_per_layer(model, build_config("encode", quant_rc.compress["encode"])
                                   .index_bits, "compress.encode.index_bits")
    path = out / f"{quant_rc.setting}-{quant_rc.method}.qsdc"
    start = time.time()
    report = export_model(model, path, {"name": quant_rc.model.name, "num_classes": 1000,
                                        "input_shape": [3, 224, 224],
                                        "params": dict(quant_rc.model.params)}, index_bits)
    t_encode = time.time() - start
    start = time.time()
    decoded = load_model(path)
    t_decode = time.time() - start
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        identical = torch.equal(model(x), decoded.eval()(x))
    kept = sum(v["params"] * v["kept_pct"] / 100 for v in report["layers"].values())
    total = sum(v["params"] for v in report["layers"].values())
    return {"rc": quant_rc, "report": report, "original": original, "identical": identical,
            "kept_pct": 100 * kept / total, "kept_weights": kept,
            "timing_s": {"prune_and_kmeans": round(t_share, 2), "encode": round(t_encode, 2),
                         "decode": round(t_decode, 2)},
            "weights": "torchvision pretrained" if pretrained else "random init (seed 0)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(SETTINGS), nargs="*", default=sorted(SETTINGS))
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "outputs" / "storage")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    git = git_state()
    for key in args.only:
        start = time.time()
        res = run(key, args.workdir, args.pretrained)
        rc, rep = res["rc"], res["report"]
        budget = "storage-only-" + ("pretrained" if args.pretrained else "random-init")
        # an accounting check of the file format on random weights, not a reproduced ratio: its
        # own method name keeps it out of the rows beside the papers' figures
        summary = {
            "paper": rc.paper, "setting": rc.setting, "method": "storage_accounting",
            "scheme": rc.method, "stage": "storage",
            "name": f"storage-{rc.method}", "model": rc.model.name, "dataset": "imagenet",
            "seed": 0, "budget": budget, "report": True,
            "metrics": {"compress/size_bytes": float(rep["size_bytes"]),
                        "compress/ratio": res["original"] / rep["size_bytes"],
                        "compress/kept_pct": res["kept_pct"]},
            "compression": {"encoded": {**rep, "original_bytes": res["original"],
                                        "identical_outputs": res["identical"]},
                            "kept_weights": res["kept_weights"], "weights": res["weights"]},
            "timing_s": res["timing_s"],
            "config": {"experiment": SETTINGS[key][0], "stages": list(SETTINGS[key][1:])},
            "command": f"python scripts/imagenet_storage.py --only {key}"
            + (" --pretrained" if args.pretrained else ""),
            "git": git, "versions": package_versions(), "hardware": hardware(),
            "wall_time_s": round(time.time() - start, 2)}
        dest = args.results / "runs" / rc.paper / rc.setting / f"storage-{rc.method}"
        write_json_atomic(dest / "seed=0.json", summary)
        print(f"{key}: {res['original'] / 1e6:.1f} MB → {rep['size_bytes'] / 1e6:.3f} MB "
              f"({res['original'] / rep['size_bytes']:.1f}×), kept {res['kept_pct']:.1f}%, "
              f"identical={res['identical']}, {res['timing_s']}")


if __name__ == "__main__":
    main()

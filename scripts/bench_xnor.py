"""Packed XNOR-popcount inference against float torch (BinaryNet §5, XNOR-Net §3.2), on the CPU at
one thread: the binary fully connected layers at the papers' sizes, and BinaryNet's whole MNIST
MLP (784 → 3×width → 10) and CIFAR-10 / SVHN ConvNets at batch 1 and 64, medians of repeated
timings. The packed path runs with both popcount kernels (the compiled one, where it was built,
and numpy's); the packed networks' logits are checked equal to the simulated networks' first.

    python scripts/bench_xnor.py                     # → results/benchmarks/xnor.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.compress.binary import sign_binarize  # noqa: E402
from quantsurvey.compress.xnor_popcount import KERNEL, binary_matmul, pack_signs  # noqa: E402
from quantsurvey.methods import StageContext, build_methods  # noqa: E402
from quantsurvey.models import create_model  # noqa: E402
from quantsurvey.nn.packed_inference import PackedBNNConvNet, PackedBNNMLP  # noqa: E402
from quantsurvey.provenance import git_state, hardware, package_versions  # noqa: E402

# (name, fan-in, fan-out): BinaryNet's MNIST MLP hidden layers (Theano 4096, Torch7 2048) and
# the CIFAR-10 ConvNet's fully connected layers (512·4·4 → 1024 → 1024)
LAYERS = [("mlp4096_hidden", 4096, 4096), ("mlp2048_hidden", 2048, 2048),
          ("convnet_fc1", 8192, 1024), ("convnet_fc2", 1024, 1024)]


def median_ms(fn, repeats: int, inner: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(times)


def binary_pair(name: str, shape: tuple[int, int, int], width, seed: int = 0):
    """A float model and its binarized, exported-and-decoded twin (BN statistics from random
    data: timing and exactness do not depend on training)."""
    gen = torch.Generator().manual_seed(seed)
    model = create_model(name, num_classes=10, input_shape=shape, width=width)
    float_model = create_model(name, num_classes=10, input_shape=shape, width=width)
    float_model.load_state_dict(model.state_dict())
    (method,) = build_methods({"bnn": {}})
    tmp = REPO / "outputs" / "bench_xnor"
    tmp.mkdir(parents=True, exist_ok=True)
    probe = torch.randn(8, *shape, generator=gen)
    ctx = StageContext(seed=seed, run_dir=tmp, probe=lambda: probe,
                       model_info={"name": name, "num_classes": 10,
                                   "input_shape": list(shape), "params": {"width": width}})
    method.before_training(model, ctx)
    with torch.no_grad():
        model.train()(torch.randn(64, *shape, generator=gen))
        float_model.train()(torch.randn(64, *shape, generator=gen))
    model.eval(), float_model.eval()
    decoded, _, _ = method.after_training(model, ctx)
    return float_model, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "xnor.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    kernels = ("auto", "numpy")  # auto: the compiled kernel where it was built
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name, fan_in, fan_out in LAYERS:
        w = sign_binarize(torch.randn(fan_out, fan_in, generator=gen))
        words = pack_signs(w)
        for batch in (1, 64):
            x = sign_binarize(torch.randn(batch, fan_in, generator=gen))
            xw = pack_signs(x)
            want = F.linear(x, w).numpy().astype(np.int32)
            exact = all(np.array_equal(binary_matmul(xw, words, fan_in, kernel=k), want)
                        for k in kernels)
            inner = 50 if batch == 1 else 3
            f_ms = median_ms(lambda x=x, w=w: F.linear(x, w), args.repeats, inner)
            p_ms = {k: median_ms(lambda x=x, words=words, n=fan_in, k=k: binary_matmul(
                pack_signs(sign_binarize(x)), words, n, kernel=k), args.repeats, inner)
                for k in kernels}
            rows.append({"what": f"layer {name}", "fan_in": fan_in, "fan_out": fan_out,
                         "batch": batch, "float_ms": f_ms, "packed_ms": p_ms["auto"],
                         "packed_numpy_ms": p_ms["numpy"], "speedup": f_ms / p_ms["auto"],
                         "exact": bool(exact)})
            print(rows[-1], flush=True)
    nets = [("bnn_mlp", (1, 28, 28), 4096, PackedBNNMLP, "BNN MLP 784-3x4096-10"),
            ("bnn_mlp", (1, 28, 28), 2048, PackedBNNMLP, "BNN MLP 784-3x2048-10"),
            ("bnn_convnet", (3, 32, 32), 1.0, PackedBNNConvNet, "BNN ConvNet CIFAR-10"),
            ("bnn_convnet", (3, 32, 32), 0.5, PackedBNNConvNet, "BNN ConvNet SVHN (half)")]
    for name, shape, width, packer, label in nets:
        float_model, decoded = binary_pair(name, shape, width)
        packed = {k: packer.from_model(decoded, kernel=k) for k in kernels}
        for batch in (1, 64):
            x = torch.randn(batch, *shape, generator=gen)
            with torch.no_grad():
                want = decoded(x)
                exact = all(torch.equal(p(x), want) for p in packed.values())
                inner = (20 if batch == 1 else 2) if name == "bnn_mlp" else 1
                f_ms = median_ms(lambda x=x, m=float_model: m(x), args.repeats, inner)
                s_ms = median_ms(lambda x=x, m=decoded: m(x), args.repeats, inner)
            p_ms = {k: median_ms(lambda x=x, p=p: p(x), args.repeats, inner)
                    for k, p in packed.items()}
            rows.append({"what": label, "batch": batch, "float_ms": f_ms,
                         "simulated_binary_ms": s_ms, "packed_ms": p_ms["auto"],
                         "packed_numpy_ms": p_ms["numpy"], "speedup": f_ms / p_ms["auto"],
                         "exact": bool(exact)})
            print(rows[-1], flush=True)
    record = {
        "what": "packed XNOR-popcount against float torch (F.linear / the float model), CPU, 1 "
                "thread, median of repeats in ms; packed_ms: the default kernel (`kernel`), "
                "packed_numpy_ms: numpy's bitwise_count; 'exact': the packed output of every "
                "kernel equals the float computation of the same binary network bit for bit",
        "kernel": KERNEL,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "rows": rows,
        "git": git_state(), "hardware": hardware(), "versions": package_versions(),
        "numpy": np.__version__, "python": platform.python_version(),
        "wall_time_s": round(time.time() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

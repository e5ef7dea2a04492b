"""Statistics of a float network, gathered without changing it (Lin et al. 2016 §3: the steps
come from the σ of each layer's weights and activations over typical inputs).

`collect_statistics(model, batches)` runs the model in eval mode under `torch.no_grad` over the
given batches with forward hooks on every Conv2d / Linear, and returns per layer the mean, std,
max |x| and a histogram (over [−max|x|, max|x|]) of its weight, its input and its output. Two
passes over the same batches: the first for the moments and the range, the second for the
histogram. The hooks are removed and the model's mode restored afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from quantsurvey.nn.layers import weight_layers

BINS = 128


@dataclass
class TensorStats:
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    max_abs: float = 0.0
    minimum: float = float("inf")
    histogram: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def std(self) -> float:
        """Population standard deviation over every element seen."""
        var = self.total_sq / max(self.count, 1) - self.mean ** 2
        return max(var, 0.0) ** 0.5

    def add_moments(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        self.count += x.numel()
        self.total += float(x.sum())
        self.total_sq += float((x * x).sum())
        self.max_abs = max(self.max_abs, float(x.abs().max())) if x.numel() else self.max_abs
        self.minimum = min(self.minimum, float(x.min())) if x.numel() else self.minimum

    def add_histogram(self, x: torch.Tensor, bins: int) -> None:
        edge = self.max_abs if self.max_abs > 0 else 1.0
        h = torch.histc(x.detach().float().flatten().cpu(), bins=bins, min=-edge, max=edge)
        h = h.to(torch.int64).tolist()
        self.histogram = h if not self.histogram else \
            [a + b for a, b in zip(self.histogram, h, strict=True)]

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "max_abs": self.max_abs, "min": self.minimum,
                "count": self.count, "histogram": self.histogram}


def collect_statistics(model: nn.Module, batches: Sequence[torch.Tensor],
                       bins: int = BINS) -> dict[str, dict[str, TensorStats]]:
    """{layer: {'weight' | 'input' | 'output': TensorStats}} over `batches` (inputs only)."""
    if len(batches) == 0:
        raise ValueError("calibration needs at least one batch (calibration_batches ≥ 1)")
    layers = weight_layers(model)
    stats = {n: {k: TensorStats() for k in ("weight", "input", "output")} for n in layers}
    for name, layer in layers.items():
        stats[name]["weight"].add_moments(layer.weight)
        stats[name]["weight"].add_histogram(layer.weight, bins)
    was_training = model.training
    model.eval()
    for phase in ("moments", "histogram"):
        def hook(name, phase=phase):
            def record(module, inputs, output):
                for kind, x in (("input", inputs[0]), ("output", output)):
                    if phase == "moments":
                        stats[name][kind].add_moments(x)
                    else:
                        stats[name][kind].add_histogram(x, bins)
            return record
        handles = [layer.register_forward_hook(hook(n)) for n, layer in layers.items()]
        try:
            with torch.no_grad():
                for x in batches:
                    model(x)
        finally:
            for h in handles:
                h.remove()
    model.train(was_training)
    return stats

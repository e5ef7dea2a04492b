"""Per-layer weight bit-widths from a layer-wise sensitivity table (ours, built on Anwar, Hwang,
Sung 2015, whose layer-wise sensitivity quantizes one layer at a time with the others in float;
the paper does not say how bits follow from it).

The rule: pick one bit-width b_i per layer from the measured ones so that the sum of the
single-layer errors, Σ_i e_i(b_i), is smallest while the weight storage, Σ_i n_i·b_i (n_i the
layer's weight count), stays within a budget. Summing single-layer errors assumes their costs add;
they do not exactly (on ResNet-20 the joint cost is larger), so this is a ranking, not a
prediction. Solved exactly as a multiple-choice knapsack by dynamic programming over the budget in
units of gcd(n_i): time and memory grow with layers × budget / gcd (ResNet-20 at 3 bits per
weight: 20 × 50,313 units, about 8 MB).
"""

from __future__ import annotations

import math
import numbers
from functools import reduce

import numpy as np

TIE = 1e-9  # error sums this close (relative) count as equal: float sums depend on their order


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def sensitivity_bits(errors: dict[str, dict[int, float]], sizes: dict[str, int],
                     budget_bits: int) -> dict[str, int]:
    """{layer: bits} minimising Σ errors[layer][bits] subject to Σ sizes[layer]·bits ≤ budget_bits.

    `errors` gives each layer's error (any unit, smaller is better) at each measured bit-width;
    of equal error sums (within a relative 1e-9), the smaller storage wins.
    """
    if not _is_count(budget_bits) or budget_bits < 0:
        raise ValueError(f"budget_bits={budget_bits!r} must be a whole number of bits ≥ 0.")
    if set(errors) != set(sizes):
        missing, extra = sorted(set(sizes) - set(errors)), sorted(set(errors) - set(sizes))
        raise ValueError(f"the sensitivity table and the layer sizes name different layers "
                         f"(no errors for {missing or 'none'}; no size for {extra or 'none'}).")
    if not sizes:
        raise ValueError("no layers to allocate bits to.")
    for layer, n in sizes.items():
        if not _is_count(n) or n < 1:
            raise ValueError(f"layer {layer!r}: weight count {n!r} must be a positive integer.")
        if not errors[layer]:
            raise ValueError(f"layer {layer!r}: no measured bit-width.")
        for b, e in errors[layer].items():
            if not _is_count(b) or b < 1:
                raise ValueError(f"layer {layer!r}: bit-width {b!r} must be a positive integer.")
            if isinstance(e, bool) or not isinstance(e, numbers.Real) or not math.isfinite(e):
                raise ValueError(f"layer {layer!r}: error {e!r} at {b} bits is not a finite "
                                 f"number.")
    smallest = sum(int(n) * min(errors[layer]) for layer, n in sizes.items())
    if budget_bits < smallest:
        raise ValueError(f"a budget of {budget_bits} weight bits is below the smallest storage "
                         f"the table allows, {smallest} bits (every layer at its fewest bits).")
    layers = list(sizes)
    unit = reduce(math.gcd, sizes.values())
    capacity = min(budget_bits, sum(n * max(errors[layer]) for layer, n in sizes.items())) // unit
    # best[j]: the smallest error sum of the layers so far whose storage is exactly j units
    best = np.full(capacity + 1, np.inf)
    best[0] = 0.0
    picks = []
    for layer in layers:
        options = sorted(errors[layer].items())
        new, pick = np.full_like(best, np.inf), np.zeros(capacity + 1, dtype=np.int64)
        for bits, error in reversed(options):  # fewer bits last, so they win ties
            w = sizes[layer] * bits // unit
            if w > capacity:
                continue
            cand = np.full_like(best, np.inf)
            with np.errstate(over="ignore"):  # an overflowing sum is refused below
                cand[w:] = best[:capacity + 1 - w] + error
            better = cand <= new
            new[better], pick[better] = cand[better], bits
        best = new
        picks.append(pick)
    least = best.min()
    if not math.isfinite(least):
        raise ValueError("the error sums overflow; scale the errors down.")
    # the smallest storage whose error sum ties with the least
    j = int(np.flatnonzero(best <= least + TIE * max(1.0, abs(least)))[0])
    chosen = {}
    for layer, pick in zip(reversed(layers), reversed(picks), strict=True):
        chosen[layer] = int(pick[j])
        j -= sizes[layer] * chosen[layer] // unit
    assert j == 0, "the back-tracking must end at zero storage"
    return {layer: chosen[layer] for layer in layers}

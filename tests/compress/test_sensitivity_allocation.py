"""The sensitivity-guided bit allocation: exact against brute force, by hand, and its bad inputs."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from quantsurvey.compress.sensitivity_allocation import sensitivity_bits


def brute_force(errors, sizes, budget):
    """Every assignment: the least error sum within the budget (sums within a relative 1e-9 of
    it count as equal), then the least storage."""
    layers = list(sizes)
    feasible = []
    for combo in itertools.product(*(sorted(errors[name]) for name in layers)):
        storage = sum(sizes[name] * b for name, b in zip(layers, combo, strict=True))
        if storage <= budget:
            cost = sum(errors[name][b] for name, b in zip(layers, combo, strict=True))
            feasible.append((cost, storage, dict(zip(layers, combo, strict=True))))
    least = min(cost for cost, _, _ in feasible)
    return min((f for f in feasible if f[0] <= least + 1e-9 * max(1.0, abs(least))),
               key=lambda f: f[1])


def cost_and_storage(chosen, errors, sizes):
    return (sum(errors[name][b] for name, b in chosen.items()),
            sum(sizes[name] * b for name, b in chosen.items()))


def test_by_hand_the_small_sensitive_layer_gets_the_bits():
    errors = {"small": {2: 10.0, 4: 0.0}, "big": {2: 5.0, 4: 0.0}}
    sizes = {"small": 1, "big": 10}
    assert sensitivity_bits(errors, sizes, 24) == {"small": 4, "big": 2}  # 4 + 20 bits
    assert sensitivity_bits(errors, sizes, 23) == {"small": 2, "big": 2}  # no room for 4-bit small
    assert sensitivity_bits(errors, sizes, 44) == {"small": 4, "big": 4}
    assert sensitivity_bits(errors, sizes, 10 ** 6) == {"small": 4, "big": 4}


def test_of_equal_error_sums_the_smaller_storage_wins():
    errors = {"a": {2: 1.0, 3: 1.0, 8: 1.0}, "b": {2: 0.0, 4: 0.0}}
    assert sensitivity_bits(errors, {"a": 3, "b": 5}, 1000) == {"a": 2, "b": 2}


def test_sums_equal_but_for_float_rounding_are_a_tie():
    """0.1 + 0.2 is 0.30000000000000004 in floats: still a tie with 0.3, so the smaller
    storage wins (14 bits, not 41)."""
    errors = {"a": {1: 0.3, 4: 0.1}, "b": {1: 0.2, 4: 0.0}}
    assert sensitivity_bits(errors, {"a": 1, "b": 10}, 43) == {"a": 4, "b": 1}


def test_ties_are_relative_to_the_size_of_the_sums():
    """1000.1 + 2000.2 is 3000.3000000000002 in floats: at this size too a tie with 3000.3."""
    errors = {"a": {1: 3000.3, 4: 1000.1}, "b": {1: 2000.2, 4: 0.0}}
    assert sensitivity_bits(errors, {"a": 1, "b": 10}, 43) == {"a": 4, "b": 1}


def test_ties_at_large_sums_are_not_held_to_an_absolute_tolerance():
    """93535032.2 + 35229254.1 is 128764286.3 + 1.5e-8 in floats: more than 1e-9 apart in
    absolute terms, yet a tie (relative 1e-9), so the smaller storage wins."""
    errors = {"a": {1: 128764286.3, 4: 93535032.2}, "b": {1: 35229254.1, 4: 0.0}}
    assert sensitivity_bits(errors, {"a": 1, "b": 10}, 43) == {"a": 4, "b": 1}


def test_a_one_weight_layer_can_take_its_most_bits():
    """The storage cap (Σ weights × most bits) for layers of one weight: 1 × 3, not 1 ** 3."""
    assert sensitivity_bits({"a": {1: 5.0, 3: 0.0}}, {"a": 1}, 100) == {"a": 3}
    assert sensitivity_bits({"a": {1: 5.0, 3: 0.0}, "b": {1: 1.0, 3: 0.0}},
                            {"a": 1, "b": 1}, 6) == {"a": 3, "b": 3}


def test_the_message_names_the_missing_and_the_extra_layers():
    with pytest.raises(ValueError, match=r"no errors for \['b'\]; no size for none"):
        sensitivity_bits({"a": {2: 1.0}}, {"a": 4, "b": 3}, 100)
    with pytest.raises(ValueError, match=r"no errors for none; no size for \['c'\]"):
        sensitivity_bits({"a": {2: 1.0}, "c": {2: 1.0}}, {"a": 4}, 100)


def test_numpy_integers_are_counts():
    errors = {"a": {np.int64(2): 1.0, np.int64(4): 0.0}}
    assert sensitivity_bits(errors, {"a": np.int64(3)}, np.int64(12)) == {"a": 4}


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_brute_force(seed):
    rng = random.Random(seed)
    layers = [f"l{i}" for i in range(rng.randint(1, 5))]
    sizes = {name: rng.choice([3, 6, 9, 12, 27, 54]) for name in layers}
    errors = {name: {b: round(rng.uniform(0, 50), 3)
                     for b in rng.sample([1, 2, 3, 4, 6, 8], rng.randint(1, 4))}
              for name in layers}
    low = sum(sizes[n] * min(errors[n]) for n in layers)
    high = sum(sizes[n] * max(errors[n]) for n in layers)
    budget = rng.randint(low, high + 5)
    cost, storage, _ = brute_force(errors, sizes, budget)
    chosen = sensitivity_bits(errors, sizes, budget)
    assert set(chosen) == set(layers)
    assert all(chosen[n] in errors[n] for n in layers)
    got_cost, got_storage = cost_and_storage(chosen, errors, sizes)
    assert got_storage <= budget
    assert got_cost == pytest.approx(cost, abs=1e-9)
    assert got_storage == storage


def test_never_worse_than_uniform_bits_at_the_same_storage():
    rng = random.Random(7)
    layers = [f"l{i}" for i in range(12)]
    sizes = {name: rng.choice([432, 2304, 4608, 9216, 36864, 640]) for name in layers}
    errors = {name: {b: rng.uniform(0, 40) / b for b in (2, 3, 4)} for name in layers}
    chosen = sensitivity_bits(errors, sizes, 3 * sum(sizes.values()))
    uniform = sum(errors[name][3] for name in layers)
    assert cost_and_storage(chosen, errors, sizes)[0] <= uniform
    assert cost_and_storage(chosen, errors, sizes)[1] <= 3 * sum(sizes.values())


@pytest.mark.parametrize("errors, sizes, budget, message", [
    ({"a": {2: 1.0}}, {"a": 10}, 19, "below the smallest storage"),
    ({"a": {2: 1.0}}, {"a": 10}, 0, "below the smallest storage"),
    ({"a": {2: 1.0}}, {"a": 10, "b": 3}, 100, "name different layers"),
    ({"a": {2: 1.0}}, {"a": 0}, 100, "positive integer"),
    ({"a": {}}, {"a": 4}, 100, "no measured bit-width"),
    ({"a": {0: 1.0}}, {"a": 4}, 100, "bit-width 0"),
    ({"a": {2: float("nan")}}, {"a": 4}, 100, "not a finite number"),
    ({}, {}, 100, "no layers"),
    ({"a": {2: 1.0}}, {"a": 4}, 29.9, "whole number of bits"),
    ({"a": {2: 1.0}}, {"a": 4}, True, "whole number of bits"),
    ({"a": {2: 1.0}}, {"a": 4}, -1, "whole number of bits"),
    ({"a": {2: "1.0"}}, {"a": 4}, 100, "not a finite number"),
    ({"a": {2: None}}, {"a": 4}, 100, "not a finite number"),
    ({"a": {2: 1e308}, "b": {2: 1e308}}, {"a": 4, "b": 4}, 100, "overflow"),
])
def test_bad_inputs_stop_with_one_clear_message(errors, sizes, budget, message):
    with pytest.raises(ValueError, match=message):
        sensitivity_bits(errors, sizes, budget)

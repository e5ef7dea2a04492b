"""Fixed point (Lin et al. 2016, Anwar et al. 2015): levels, saturation, rounding, gradients,
the optimal-step solver against an independent brute force, SQNR rules, bit allocation, and
b-bit packing."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from quantsurvey.compress.bit_pack import pack_codes, packed_size, unpack_codes
from quantsurvey.compress.fixed_point import (
    check_bits,
    code_values,
    fake_quantize,
    l2_optimal_step,
    levels,
    power_of_two_step,
    quantization_mse,
    quantize,
    quantize_codes,
)
from quantsurvey.compress.optimal_quantizer import (
    density,
    optimal_step,
    optimal_table,
    quantizer_mse,
    sqnr_db_of_step,
)
from quantsurvey.compress.sqnr import (
    allocate_bits,
    bits_for_target,
    harmonic_sqnr_db,
    sqnr_db,
)

RAMP = torch.linspace(-3, 3, 601)


def test_levels_and_saturation_of_the_zero_level_quantizer():
    # 3 bits, step 0.5: codes −4 … 3, levels −2.0 … 1.5; beyond them the output saturates
    q = quantize(RAMP, 0.5, 3)
    assert sorted(set(q.tolist())) == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    assert q[0].item() == -2.0 and q[-1].item() == 1.5
    assert quantize(torch.tensor([0.74, 0.76, -0.26, 0.0]), 0.5, 3).tolist() == [0.5, 1.0, -0.5,
                                                                                  0.0]
    assert levels(3, 0.5).tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


def test_mid_rise_levels_are_symmetric_without_zero():
    q = quantize(RAMP, 0.5, 2, zero_level=False)
    assert sorted(set(q.tolist())) == [-0.75, -0.25, 0.25, 0.75]
    assert quantize(torch.tensor([0.01, -0.01, 0.6]), 0.5, 2, zero_level=False).tolist() == [
        0.25, -0.25, 0.75]
    # Lin et al.'s 1-bit Gaussian quantizer: levels ±0.798 for the step 1.596
    assert quantize(torch.tensor([-5.0, 5.0]), 1.596, 1, zero_level=False).tolist() == \
        pytest.approx([-0.798, 0.798])


@pytest.mark.parametrize("zero_level", [True, False])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_quantization_is_idempotent(zero_level, rounding):
    gen = torch.Generator().manual_seed(0)
    once = quantize(RAMP, 0.3, 4, zero_level)
    again = quantize(once, 0.3, 4, zero_level, rounding, gen)
    assert torch.allclose(again, once, atol=1e-6)


def test_stochastic_rounding_is_unbiased_seeded_and_needs_a_generator():
    x = torch.full((200_000,), 0.3)
    q = quantize(x, 1.0, 4, rounding="stochastic", generator=torch.Generator().manual_seed(1))
    assert set(q.unique().tolist()) == {0.0, 1.0}
    assert q.mean().item() == pytest.approx(0.3, abs=0.005)
    q2 = quantize(x, 1.0, 4, rounding="stochastic", generator=torch.Generator().manual_seed(1))
    assert torch.equal(q, q2)
    with pytest.raises(ValueError, match="seeded torch.Generator"):
        quantize(x, 1.0, 4, rounding="stochastic")


def test_straight_through_gradient_is_identity_also_beyond_the_range():
    x = torch.tensor([-9.0, -0.3, 0.2, 7.0], requires_grad=True)
    y = fake_quantize(x, 0.5, 3)
    assert y.tolist() == [-2.0, -0.5, 0.0, 1.5]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("bits", [0, 33, 2.5, True, "8"])
def test_impossible_bit_widths_are_refused(bits):
    with pytest.raises(ValueError, match="is not a bit-width: use an integer from 1 to 32"):
        check_bits(bits, "weight_bits")


def test_power_of_two_step_gives_fractional_bits():
    assert power_of_two_step(0.3) == (0.25, 2)
    assert power_of_two_step(0.03) == (2 ** -5, 5)
    assert power_of_two_step(3.0) == (4.0, -2)


def test_l2_optimal_step_beats_every_step_of_a_fine_grid():
    w = torch.randn(3000, generator=torch.Generator().manual_seed(2)) * 0.1
    for bits, zero_level in ((2, True), (3, False), (4, True)):
        step = l2_optimal_step(w, bits, zero_level)
        best = min(quantization_mse(w, s, bits, zero_level)
                   for s in np.linspace(0.001, 0.3, 3000))
        assert quantization_mse(w, step, bits, zero_level) <= best * (1 + 1e-6)


def _quad_mse(step: float, bits: int, dist: str, zero_level: bool) -> float:
    """Slow reference: scipy's adaptive quadrature of (x − Q(x))² p(x) cell by cell."""
    lv = levels(bits, step, zero_level).numpy()
    edges = np.concatenate([[-np.inf], (lv[:-1] + lv[1:]) / 2, [np.inf]])
    if dist == "uniform":
        edges = np.clip(edges, -math.sqrt(3), math.sqrt(3))
    total = 0.0
    for a, b, c in zip(edges[:-1], edges[1:], lv, strict=True):
        if a < b:
            total += integrate.quad(lambda x, c=c: (x - c) ** 2 * density(np.array(x), dist),
                                    a, b, epsabs=1e-13, epsrel=1e-11)[0]
    return total


SCIPY_DENSITIES = {  # unit variance, from scipy.stats: independent of the module's own density
    "gaussian": lambda x: stats.norm.pdf(x),
    "laplacian": lambda x: stats.laplace.pdf(x, scale=1 / math.sqrt(2)),
    "uniform": lambda x: stats.uniform.pdf(x, loc=-math.sqrt(3), scale=2 * math.sqrt(3)),
}


def _scipy_mse(step: float, bits: int, dist: str, zero_level: bool) -> float:
    """Reference D(s) from scipy.stats' densities and adaptive quadrature, every cell split at
    0 (the Laplacian's kink) and at ±√3 (the uniform density's edges)."""
    lv = levels(bits, step, zero_level).numpy()
    edges = np.concatenate([[-np.inf], (lv[:-1] + lv[1:]) / 2, [np.inf]])
    total = 0.0
    for a, b, c in zip(edges[:-1], edges[1:], lv, strict=True):
        cuts = [a, *sorted(p for p in (-math.sqrt(3), 0.0, math.sqrt(3)) if a < p < b), b]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            total += integrate.quad(lambda x, c=c: (x - c) ** 2 * SCIPY_DENSITIES[dist](x),
                                    lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    return total


@pytest.mark.parametrize("dist", ["gaussian", "laplacian", "uniform"])
@pytest.mark.parametrize("zero_level", [False, True])
def test_mse_against_scipy_over_steps_far_from_the_optimum(dist, zero_level):
    """D(s) for steps from 0.05 to 2.8 (cells inside one side of 0, cells across it, outer cells
    past the uniform density's edge) against scipy.stats' densities and quadrature. (Eight
    Gauss–Legendre nodes per cell: cells wider than about 3σ lose accuracy, 3e-6 at 5σ, which
    only steps far from every optimum have.)"""
    for bits in (1, 2, 3):
        for step in np.geomspace(0.05, 2.8, 9):
            assert quantizer_mse(step, bits, dist, zero_level) == pytest.approx(
                _scipy_mse(step, bits, dist, zero_level), rel=1e-7, abs=1e-12), (bits, step)


def test_the_densities_by_hand():
    """The three unit-variance densities at a few points (the uniform one is 0 outside ±√3)."""
    x = np.array([0.0, 1.0, 1.7, 1.8, -2.5])
    for dist, ref in SCIPY_DENSITIES.items():
        np.testing.assert_allclose(density(x, dist), ref(x), rtol=1e-12, atol=0)
    assert density(np.array([2.0]), "uniform")[0] == 0.0
    assert density(np.array([0.0]), "laplacian")[0] == pytest.approx(1 / math.sqrt(2))


def test_a_distribution_name_built_at_run_time_is_the_same_name():
    """Names come from configs, built at run time (not interned literals): compared by value."""
    for dist in ("gaussian", "laplacian", "uniform"):
        built = "".join(list(dist))
        assert built is not dist
        # 3 bits of step 0.8: the cell [1.6, 2.4] crosses the uniform density's edge √3
        assert quantizer_mse(0.8, 3, built) == quantizer_mse(0.8, 3, dist)
        np.testing.assert_array_equal(density(np.array([0.3, 2.0]), built),
                                      density(np.array([0.3, 2.0]), dist))


@pytest.mark.parametrize("name", ["weibull", "beta", "Gaussian", ""])
def test_an_unknown_distribution_is_refused(name):
    with pytest.raises(ValueError, match="choose one of gaussian, laplacian, uniform"):
        quantizer_mse(1.0, 2, name)
    with pytest.raises(ValueError, match="choose one of"):
        density(np.zeros(1), name)


def test_the_table_covers_1_to_16_bits_by_default():
    """The issue asks for 1–16 bits: the default of optimal_table (the committed table is
    written with it by scripts/optimal_steps_table.py)."""
    import inspect

    assert inspect.signature(optimal_table).parameters["bits"].default == range(1, 17)


@pytest.mark.parametrize("dist", ["gaussian", "laplacian", "uniform"])
@pytest.mark.parametrize("zero_level", [False, True])
def test_solver_matches_a_brute_force_search_with_quadrature(dist, zero_level):
    for bits in (1, 2, 3):
        step = optimal_step(bits, dist, zero_level)
        assert quantizer_mse(step, bits, dist, zero_level) == pytest.approx(
            _quad_mse(step, bits, dist, zero_level), rel=1e-7)
        grid = np.linspace(step * 0.8, step * 1.2, 81)
        brute = grid[int(np.argmin([_quad_mse(s, bits, dist, zero_level) for s in grid]))]
        assert step == pytest.approx(brute, abs=(grid[1] - grid[0]))
        assert _quad_mse(step, bits, dist, zero_level) <= min(
            _quad_mse(s, bits, dist, zero_level) for s in grid) * (1 + 1e-9)


@pytest.mark.parametrize("dist", ["gaussian", "laplacian", "uniform"])
@pytest.mark.parametrize("zero_level", [False, True])
def test_every_solved_step_is_a_minimum_not_the_scans_edge(dist, zero_level):
    """A step 0.1% smaller or larger never has a lower MSE, for 1–8 bits: the Brent search must
    bracket the scan's best point from both sides (a bracket starting at that point stops at it
    whenever the minimum lies to its left, up to one grid ratio, 3.5%, away)."""
    for bits in range(1, 9):
        step = optimal_step(bits, dist, zero_level)
        mse = quantizer_mse(step, bits, dist, zero_level)
        for factor in (0.999, 1.001):
            assert quantizer_mse(step * factor, bits, dist, zero_level) >= mse * (1 - 1e-12), \
                (bits, factor)


def test_the_default_levels_are_mid_rise():
    """Lin et al.'s table is the mid-rise quantizer (no zero level): the default of both."""
    for bits in (1, 2, 3):
        assert quantizer_mse(0.7, bits, "gaussian") == quantizer_mse(0.7, bits, "gaussian",
                                                                     zero_level=False)
        assert quantizer_mse(0.7, bits, "gaussian") != quantizer_mse(0.7, bits, "gaussian",
                                                                     zero_level=True)
        assert optimal_step(bits, "gaussian") == optimal_step(bits, "gaussian", False)


def test_the_papers_gaussian_steps_and_max_1960s_table():
    # Lin et al.: 1.596 (1 bit) and 0.996 (2 bits); Max 1960 uniform quantizer: 0.586, 0.335
    assert optimal_step(1, "gaussian") == pytest.approx(1.596, abs=5e-4)
    assert optimal_step(2, "gaussian") == pytest.approx(0.996, abs=5e-4)
    assert optimal_step(3, "gaussian") == pytest.approx(0.586, abs=5e-4)
    assert optimal_step(4, "gaussian") == pytest.approx(0.3352, abs=5e-4)
    assert optimal_step(2, "laplacian") == pytest.approx(1.087, abs=1e-3)
    # 1 bit on a Laplacian: levels ±E|x| = ±1/√2
    assert optimal_step(1, "laplacian") == pytest.approx(math.sqrt(2), abs=1e-4)
    for bits in (1, 2, 5):  # uniform input: the step that tiles its support exactly
        assert optimal_step(bits, "uniform") == pytest.approx(2 * math.sqrt(3) / 2 ** bits,
                                                              rel=1e-5)


def test_the_table_rows_by_hand():
    """optimal_table's row for the 1-bit mid-rise Gaussian quantizer: levels ±√(2/π) (Max
    1960), MSE 1 − 2/π, SQNR 4.40 dB, dB per bit = SQNR / bits; one row per distribution,
    level set and bit-width."""
    rows = optimal_table(range(1, 3))
    assert len(rows) == 3 * 2 * 2
    (one,) = [r for r in rows if (r["distribution"], r["levels"], r["bits"])
              == ("gaussian", "mid_rise", 1)]
    assert one["step"] == pytest.approx(2 * math.sqrt(2 / math.pi), abs=1e-6)
    assert one["sqnr_db"] == pytest.approx(-10 * math.log10(1 - 2 / math.pi), abs=1e-6)
    assert one["db_per_bit"] == pytest.approx(4.3965, abs=1e-3)
    (two,) = [r for r in rows if (r["distribution"], r["levels"], r["bits"])
              == ("laplacian", "zero_level", 2)]
    assert two["db_per_bit"] == pytest.approx(two["sqnr_db"] / 2, rel=1e-12)


def test_uniform_input_gains_6_02_db_per_bit():
    for bits in range(2, 13):
        db = sqnr_db_of_step(optimal_step(bits, "uniform"), bits, "uniform")
        assert db == pytest.approx(20 * math.log10(2) * bits, abs=0.1)
    x = (torch.rand(1_000_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
         * 2 - 1) * math.sqrt(3)
    step = optimal_step(8, "uniform")
    assert sqnr_db(x, quantize(x, step, 8, zero_level=False)) == pytest.approx(48.16, abs=0.1)


def test_sqnr_and_its_harmonic_combination():
    x = torch.tensor([1.0, -2.0, 3.0])
    assert sqnr_db(x, x + torch.tensor([0.1, 0.0, -0.1])) == pytest.approx(
        10 * math.log10(14 / 0.02))
    assert sqnr_db(x, x) == math.inf
    assert harmonic_sqnr_db([20.0, 20.0]) == pytest.approx(20 - 10 * math.log10(2))
    assert harmonic_sqnr_db([30.0, math.inf]) == pytest.approx(30.0)


def test_harmonic_prediction_matches_a_tiny_network():
    """Quantize each layer of a 3-layer ReLU MLP alone, then all at once: the output SQNR of
    the whole is predicted by 1/γ = Σ 1/γ_i (Lin et al. Eq. 13) within 1 dB."""
    gen = torch.Generator().manual_seed(4)
    weights = [torch.randn(256, 256, generator=gen) / 16 for _ in range(3)]
    x = torch.randn(512, 256, generator=gen)

    def forward(ws):
        h = x
        for i, w in enumerate(ws):
            h = h @ w.T
            h = h.relu() if i < 2 else h
        return h

    reference = forward(weights)

    def q(w):
        return quantize(w, w.std().item() * optimal_step(5, "gaussian", True), 5)

    alone = [sqnr_db(reference, forward([q(w) if j == i else w for j, w in enumerate(weights)]))
             for i in range(3)]
    measured = sqnr_db(reference, forward([q(w) for w in weights]))
    assert harmonic_sqnr_db(alone) == pytest.approx(measured, abs=1.0)
    assert measured < min(alone)  # more noise sources, lower SQNR


def test_allocation_gives_fewer_bits_to_bigger_layers_by_eq_18():
    params = {"small": 1_000, "mid": 10_000, "big": 100_000}
    bits = allocate_bits(params, anchor_bits=4, kappa=6.02)
    # β_i − β_big = (10/6.02)·log10(ρ_big/ρ_i): +3.32 and +1.66 bits, rounded
    assert bits == {"small": 7, "mid": 6, "big": 4}
    assert allocate_bits(params, 4, 20.0) == {"small": 5, "mid": 5, "big": 4}
    assert allocate_bits(params, 30, 1.0, max_bits=32)["small"] == 32  # clipped


def test_a_target_sqnr_that_cannot_be_met_is_refused():
    params = {"a": 100, "b": 1000}
    offsets = {"a": 0.0, "b": 0.0}
    bits = bits_for_target(params, offsets, 30.0, 6.02, max_bits=16)
    assert harmonic_sqnr_db([6.02 * bits[n] for n in params]) >= 30.0
    with pytest.raises(ValueError, match="cannot be met: 8 bits in every layer give"):
        bits_for_target(params, offsets, 60.0, 6.02, max_bits=8)


def test_sqnr_edges_found_by_mutation_testing():
    """Gaps that scripts/mutation_score.py found in the tests of compress/sqnr.py."""
    # a ratio that is not a whole number (signal 1, noise 0.09), and a zero signal
    assert sqnr_db(torch.tensor([1.0]), torch.tensor([1.3])) == pytest.approx(
        10 * math.log10(1 / 0.09), rel=1e-6)  # float32 1.3: noise 0.0900000
    assert sqnr_db(torch.zeros(3), torch.ones(3)) == -math.inf
    # every quantizer exact: no noise; one at 0 dB: its noise equals the signal
    assert harmonic_sqnr_db([math.inf, math.inf]) == math.inf
    assert harmonic_sqnr_db([0.0]) == 0.0
    for kappa in (0.0, -6.02, math.inf):
        with pytest.raises(ValueError, match="must be a positive number of dB per bit"):
            allocate_bits({"a": 10}, 4, kappa)
    # below min_bits (default 1) nothing goes: an anchor of 0 gives the biggest layer 1 bit
    assert allocate_bits({"a": 10, "b": 1000}, 0, 6.02) == {"a": 3, "b": 1}  # 3.32 rounds to 3
    # a ratio of sizes that is not a whole number: log10(1000 / 526) · 10 = 2.79 bits more
    assert allocate_bits({"a": 526, "b": 1000}, 4, 1.0) == {"a": 7, "b": 4}


def test_bits_for_target_by_hand():
    """Layer SQNR = κ·β + offset; β from Eq. 18 (a: 100 weights gets 2 bits more than b: 1,000
    at κ = 6.02); the smallest anchor whose harmonic prediction reaches the target."""
    params, kappa = {"a": 100, "b": 1000}, 6.02
    zero = {"a": 0.0, "b": 0.0}
    # anchor 1: 18.06 and 6.02 dB → 5.76 dB combined; anchor 0 would give 5.05 dB
    assert bits_for_target(params, zero, 5.0, kappa) == {"a": 3, "b": 1}
    # offsets of +10 dB: anchor 3 predicts 27.8 dB, anchor 4 33.8 dB
    ten = {"a": 10.0, "b": 10.0}
    assert bits_for_target(params, ten, 30.0, kappa) == {"a": 6, "b": 4}
    # a target met exactly is met
    exact = harmonic_sqnr_db([kappa * 6 + 10.0, kappa * 4 + 10.0])
    assert bits_for_target(params, ten, exact, kappa) == {"a": 6, "b": 4}
    # only the last anchor (max_bits itself) reaches the target: 39.13 dB at 7 bits, 35.15 at 6
    assert bits_for_target(params, zero, 39.0, kappa, max_bits=7) == {"a": 7, "b": 7}
    assert bits_for_target(params, zero, 45.0, kappa, max_bits=8) == {"a": 8, "b": 8}


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 7, 8, 13, 16, 31, 32])
@pytest.mark.parametrize("n", [0, 1, 7, 64, 1001])
def test_b_bit_packing_round_trips(bits, n):
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    gen = torch.Generator().manual_seed(bits * 7 + n)
    codes = torch.randint(low, high + 1, (n,), generator=gen, dtype=torch.int64)
    if n >= 2:
        codes[0], codes[1] = low, high
    blob = pack_codes(codes, bits)
    assert len(blob) == packed_size(n, bits) == math.ceil(n * bits / 8)
    assert torch.equal(unpack_codes(blob, bits, n), codes)


def test_bad_packed_codes_are_refused():
    with pytest.raises(ValueError, match=r"codes must lie in \[-4, 3\] for 3 bits"):
        pack_codes(torch.tensor([4]), 3)
    with pytest.raises(ValueError, match="cannot hold exactly 10 3-bit codes"):
        unpack_codes(b"\x00" * 3, 3, 10)
    # found by mutation testing (scripts/mutation_score.py): below the range, and too long
    with pytest.raises(ValueError, match=r"codes must lie in \[-4, 3\] for 3 bits"):
        pack_codes(torch.tensor([0, -5]), 3)
    with pytest.raises(ValueError, match="cannot hold exactly 10 3-bit codes"):
        unpack_codes(b"\x00" * 5, 3, 10)  # 4 bytes hold 10 3-bit codes; a 5th is not ours


@pytest.mark.parametrize("zero_level", [True, False])
def test_unsigned_codes_use_every_level_on_non_negative_inputs(zero_level):
    # 3 unsigned bits: codes 0 … 7 (zero level: 0, s, …, 7s; mid-rise: s/2 … 7.5s)
    s = 0.25
    want = [k * s for k in range(8)] if zero_level else [(k + 0.5) * s for k in range(8)]
    assert levels(3, s, zero_level, signed=False).tolist() == want
    x = torch.tensor([-3.0, -0.01, 0.0, 0.3, 0.99, 1.7, 9.0])
    q = quantize(x, s, 3, zero_level, signed=False)
    low, high = want[0], want[-1]
    assert q[0] == low and q[1] == low and q[-1] == high  # negatives and overflow saturate
    assert set(q.tolist()) <= set(want)
    # the non-negative half of the signed (b+1)-bit quantizer with the same step
    gen = torch.Generator().manual_seed(3)
    pos = torch.rand(2000, generator=gen, dtype=torch.float64) * 2.5
    for bits in (1, 2, 4, 7):
        assert torch.equal(quantize(pos, s, bits, zero_level, signed=False),
                           quantize(pos, s, bits + 1, zero_level))
    # signed b bits keep only half the levels for the same inputs
    assert len(quantize(pos, s, 3, zero_level).unique()) == 4
    assert len(quantize(pos, s, 3, zero_level, signed=False).unique()) == 8
    grad = torch.tensor([-1.0, 0.5, 4.0], requires_grad=True)
    fake_quantize(grad, s, 3, zero_level, signed=False).sum().backward()
    assert grad.grad.tolist() == [1.0, 1.0, 1.0]  # straight through, also where saturated


def test_l2_optimal_step_parts_by_hand():
    """Found by mutation testing (each part of the search was hidden by the others):
    - one scan point and no refinement give the scan's end, 4·max|x| / 2^(b−1);
    - x = (1, 3), 2 mid-rise bits (levels ±s/2, ±3s/2), one scan point (s = 6): the alternating
      minimisation goes 6 → 4 (codes ½, ½: s = Σx·c / Σc² = 2 / 0.5) and stays there, error 1
      against 2 at s = 6;
    - the best scan point is the first (the optimum, ≈ 1.07, lies below the scan): Brent's
      interval starts at that point; the default search beats a 20,000-point brute force."""
    x = torch.tensor([0.3, -2.0, 1.1], dtype=torch.float64)
    assert l2_optimal_step(x, 3, scan=1, iterations=0) == 4 * 2.0 / 4
    assert l2_optimal_step(x, 1, scan=1, iterations=0) == 4 * 2.0 / 1
    assert l2_optimal_step(torch.tensor([1.0, 3.0], dtype=torch.float64), 2, zero_level=False,
                           scan=1) == 4.0
    gen = torch.Generator().manual_seed(0)
    y = torch.cat([torch.randn(2000, generator=gen, dtype=torch.float64),
                   torch.tensor([5.0], dtype=torch.float64)])
    brute = min(quantization_mse(y, float(s), 2)
                for s in torch.linspace(0.01, 10, 20_000, dtype=torch.float64))
    coarse = l2_optimal_step(y, 2, scan=3)  # scan points 3.33, 6.67, 10: all above the optimum
    assert 1.0 < coarse < 1.15 and quantization_mse(y, coarse, 2) <= brute * (1 + 1e-6)
    assert quantization_mse(y, l2_optimal_step(y, 2), 2) <= brute  # the default scan of 400


def test_fake_quantize_of_exact_zeros_and_rounding_names_and_a_zero_step():
    """Edges found by mutation testing: an exact 0 stays finite through the straight-through
    term; a rounding name is compared by value (a name read from a config is not the literal
    `"stochastic"`), and an unknown name before or after it is refused; a step of 0 is refused
    with the function's own message."""
    x = torch.tensor([0.0, 0.3, -0.2], requires_grad=True)
    q = fake_quantize(x, 0.25, 4)
    assert q.tolist() == [0.0, 0.25, -0.25]
    q.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    name = "".join(["stoch", "astic"])  # equal to, but not the same object as, the literal
    gen = torch.Generator().manual_seed(0)
    assert quantize(torch.tensor([0.1]), 1.0, 4, rounding=name, generator=gen).item() in (0, 1)
    for bad in ("floor", "truncate"):  # sorting before and after "stochastic"
        with pytest.raises(ValueError, match=f"rounding='{bad}': choose one of"):
            quantize(torch.tensor([0.1]), 1.0, 4, rounding=bad)
    with pytest.raises(ValueError, match="step=0.0 must be a positive number"):
        power_of_two_step(0.0)


def test_defaults_an_all_zero_tensor_and_a_negative_step():
    """Found by mutation testing: the documented defaults are the zero-level quantizer (codes k,
    levels k·s; mid-rise would give 0.3 → code 0, level (k + ½)·s); an all-zero tensor has no
    step to find and gets 1.0; a negative step is refused with the function's own message."""
    assert quantize_codes(torch.tensor([0.3, -0.3]), 0.25, 4).tolist() == [1.0, -1.0]
    assert code_values(torch.tensor([1.0, -2.0]), 0.25).tolist() == [0.25, -0.5]
    assert l2_optimal_step(torch.zeros(5), 4) == 1.0
    with pytest.raises(ValueError, match="step=-0.5 must be a positive number"):
        power_of_two_step(-0.5)


def test_quantization_mse_by_hand_and_nearest_compared_by_value():
    """x = (0.3, −0.2), step 0.25, 4 bits: Q(x) = (0.25, −0.25), both errors 0.05, mean square
    0.0025; a 'nearest' read from a config (equal, not the same object) rounds to nearest."""
    x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    assert quantization_mse(x, 0.25, 4) == pytest.approx(0.0025, rel=1e-12)
    name = "".join(["near", "est"])
    assert quantize(x, 0.25, 4, rounding=name).tolist() == [0.25, -0.25]


def _observed_search(monkeypatch, x, bits, zero_level, scan):
    """Run l2_optimal_step with Brent's method replaced by a recorder that never wins, and the
    steps at which the alternating minimisation asked for codes recorded."""
    import scipy.optimize

    from quantsurvey.compress import fixed_point

    brent, coded = [], []
    real_codes = fixed_point.quantize_codes

    def recorder(fun, bounds, method, options):
        brent.append((bounds, method, options["xatol"]))
        return SimpleNamespace(fun=math.inf, x=math.nan)

    def codes(x, step, *args):
        coded.append(float(step))
        return real_codes(x, step, *args)

    monkeypatch.setattr(scipy.optimize, "minimize_scalar", recorder)
    monkeypatch.setattr(fixed_point, "quantize_codes", codes)
    step = l2_optimal_step(x, bits, zero_level, scan=scan)
    return step, brent, coded


def test_l2_optimal_step_search_parts_observed(monkeypatch):
    """Each part of the search watched on its own (mutation testing: each was hidden by the
    others). Brent's interval is the scan neighbours of each of the best three scan points,
    clipped at the grid's ends, with xatol = lo·1e-6; the alternating minimisation stops as soon
    as the step repeats, and at once where every code is 0 (Σc² = 0: no step to take)."""
    x = torch.randn(500, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for scan in (2, 20):  # 2: both ends clipped; 20: inner points from 3 up, either parity
        levels_per_side = 2 ** (3 - 1)  # 3 bits: the grid spans 4·peak / 2^(bits−1)
        grid = [float(x.abs().max()) / levels_per_side * 4 * k / scan for k in range(1, scan + 1)]
        errors = [quantization_mse(x, s, 3) for s in grid]
        best = sorted(range(scan), key=errors.__getitem__)[:3]
        _, brent, _ = _observed_search(monkeypatch, x, 3, True, scan)
        want = [((grid[max(i - 1, 0)], grid[min(i + 1, scan - 1)]), "bounded",
                 grid[max(i - 1, 0)] * 1e-6) for i in best]
        assert len(brent) == len(want) == min(3, scan)
        for (bounds, method, xatol), (want_bounds, want_method, want_xatol) in zip(
                brent, want, strict=True):
            assert bounds == pytest.approx(want_bounds, rel=1e-12)
            assert method == want_method and xatol == pytest.approx(want_xatol, rel=1e-12)
    # x = (0.1, 0.3), 2 mid-rise bits, one scan point s = 0.6: codes ½, ½ give s = 0.2 / 0.5 =
    # 0.4, where the codes repeat; error 0.01 against 0.02 at 0.6. Codes asked for: the scan's
    # error at 0.6, two rounds (0.6, 0.4), then the error at 0.4
    small = torch.tensor([0.1, 0.3], dtype=torch.float64)
    step, _, coded = _observed_search(monkeypatch, small, 2, False, 1)
    assert step == pytest.approx(0.4, rel=1e-12)
    assert coded == pytest.approx([0.6, 0.6, 0.4, 0.4], rel=1e-12)
    # 1 bit with a zero level has codes {−1, 0}: positive x all code 0, Σc² = 0 at every scan
    # point, so each of the two is left after one round (never a step of 0 or below). Codes
    # asked for: the scan's errors (0.6, 1.2), then per point one round and its error
    step, _, coded = _observed_search(monkeypatch, torch.tensor([0.2, 0.3], dtype=torch.float64),
                                      1, True, 2)
    assert coded == pytest.approx([0.6, 1.2, 0.6, 0.6, 1.2, 1.2], rel=1e-12)
    assert step == pytest.approx(0.6, rel=1e-12)

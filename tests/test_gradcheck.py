"""The gradient checker itself: sampling, exact restoring, the worst array, the verdict levels."""

import numpy as np
import pytest

from dltrain.engine.gradcheck import gradient_check, verdict


def quadratic(rng):
    """J = sum(C * A^2) + sum(D * B): gradients 2 C A and D, known in closed form."""
    A, B = rng.standard_normal((6, 5)), rng.standard_normal((3, 1))
    C, D = rng.standard_normal((6, 5)), rng.standard_normal((3, 1))
    return {"A": A, "B": B}, {"A": 2 * C * A, "B": D.copy()}, lambda: float(np.sum(C * A * A) + np.sum(D * B))


def test_every_entry_checked_and_arrays_restored_bit_for_bit(rng):
    arrays, grads, cost = quadratic(rng)
    before = {k: v.copy() for k, v in arrays.items()}
    report = gradient_check(cost, arrays, grads)
    assert [(a.name, a.checked, a.size) for a in report.arrays] == [("A", 30, 30), ("B", 3, 3)]
    assert report.overall < 1e-8
    assert all(np.array_equal(arrays[k], before[k]) for k in arrays)


def test_sample_per_array_is_seeded_and_bounded(rng):
    arrays, grads, cost = quadratic(rng)
    first = gradient_check(cost, arrays, grads, max_per_array=4, rng=np.random.default_rng(5))
    again = gradient_check(cost, arrays, grads, max_per_array=4, rng=np.random.default_rng(5))
    assert [(a.checked, a.size) for a in first.arrays] == [(4, 30), (3, 3)]
    assert first == again


def test_worst_names_the_wrong_array_and_entry(rng):
    arrays, grads, cost = quadratic(rng)
    grads["B"][2, 0] += 0.5
    report = gradient_check(cost, arrays, grads)
    worst = report.worst
    assert (worst.name, worst.worst_index) == ("B", (2, 0))
    assert worst.worst_analytic - worst.worst_numeric == pytest.approx(0.5, abs=1e-6)
    true_B = grads["B"] - [[0.0], [0.0], [0.5]]
    assert worst.relative_error == pytest.approx(0.5 / (np.linalg.norm(grads["B"]) + np.linalg.norm(true_B)), rel=1e-6)


@pytest.mark.parametrize(
    "difference,threshold,expected",
    [(1e-9, 2e-7, "pass"), (2e-7, 2e-7, "suspicious"), (1e-5, 2e-7, "suspicious"), (1.01e-5, 2e-7, "fail"),
     (5e-6, 1e-5, "pass"), (0.3, 2e-7, "fail")],
)
def test_verdict_levels(difference, threshold, expected):
    assert verdict(difference, threshold) == expected

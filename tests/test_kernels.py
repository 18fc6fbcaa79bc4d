"""The compiled loops give the same bits as the NumPy expressions in their docstrings, in every layout."""

import math
import subprocess
import sys

import numpy as np
import pytest

from dltrain.engine import kernels


@pytest.fixture(autouse=True)
def compiled_even_for_small_arrays(monkeypatch):
    monkeypatch.setattr(kernels, "COMPILED_MIN", 1)


SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38]


def operands(rng, dtype, order):
    """Two (6, 7) arrays of normal values with the special ones planted, in the given memory order."""
    Z = rng.standard_normal((6, 7)).astype(dtype)
    Z.flat[: len(SPECIAL)] = SPECIAL
    dA = rng.standard_normal((6, 7)).astype(dtype)
    dA.flat[-len(SPECIAL) :] = SPECIAL
    return np.asarray(Z, order=order), np.asarray(dA, order=order)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_relu_and_its_backward_match_numpy_bit_for_bit(dtype, order, rng):
    Z, dA = operands(rng, dtype, order)
    A = kernels.relu(Z)
    assert A.flags[f"{order}_CONTIGUOUS"] and same_bits(np.ascontiguousarray(A), np.maximum(Z, 0))
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN in both
        expected = dA * (A > 0)
    assert same_bits(kernels.relu_backward(dA, A), expected)


def test_relu_backward_with_mixed_layouts(rng):
    """A wide first layer leaves A in column-major order while dA comes back row-major."""
    Z, dA = operands(rng, np.float64, "F")
    A = kernels.relu(Z)
    dA = np.ascontiguousarray(dA)
    with np.errstate(invalid="ignore"):
        assert same_bits(kernels.relu_backward(dA, A), dA * (A > 0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_loop_matches_its_numpy_expression_bit_for_bit(dtype, rng):
    theta, g, v, s = (rng.standard_normal((6, 7)).astype(dtype) for _ in range(4))
    s = np.abs(s)
    beta1, beta2, lr, eps, t = 0.9, 0.999, 0.01, 1e-8, 3
    c1, c2 = 1 - beta1**t, 1 - beta2**t
    f = np.dtype(dtype).type
    v_new = v * f(beta1) + g * f(1 - beta1)
    s_new = s * f(beta2) + (g * g) * f(1 - beta2)
    theta_new = theta - (v_new * f(lr * math.sqrt(c2) / c1)) / (np.sqrt(s_new) + f(eps * math.sqrt(c2)))
    kernels.adam_update(theta, g, v, s, beta1, beta2, c1, c2, lr, eps)
    assert same_bits(v, v_new) and same_bits(s, s_new) and same_bits(theta, theta_new)



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_on_two_threads_gives_the_same_bits(dtype, rng, monkeypatch):
    """Whether the update runs on one thread or two (measured per shape, kernels.SPLIT_MIN) changes no bit."""
    arrays = [rng.standard_normal((9, 40)).astype(dtype) for _ in range(4)]
    arrays[3] = np.abs(arrays[3])
    results = []
    for split in (False, True):
        monkeypatch.setattr(kernels, "_split_choice", {((9, 40), np.dtype(dtype)): split})
        theta, g, v, s = (a.copy() for a in arrays)
        for t in (1, 2, 3):
            kernels.adam_update(theta, g, v, s, 0.9, 0.999, 1 - 0.9**t, 1 - 0.999**t, 0.01, 1e-8)
        results.append((theta.tobytes(), v.tobytes(), s.tobytes()))
    assert results[0] == results[1]


def test_adam_keeps_two_threads_only_if_measured_faster(rng, monkeypatch):
    monkeypatch.setattr(kernels, "_split_choice", {})
    monkeypatch.setattr(kernels, "_split_times", {})
    monkeypatch.setattr(kernels, "SPLIT_MIN", 1)
    monkeypatch.setattr(kernels, "_cores", lambda: 2)
    theta, g, v, s = (rng.random((8, 8)) for _ in range(4))
    ways = []
    real = kernels._record
    monkeypatch.setattr(kernels, "_record", lambda key, split, seconds: ways.append(split) or real(key, split, seconds))
    for t in range(1, 2 * kernels.SPLIT_CALLS + 3):
        kernels.adam_update(theta, g, v, s, 0.9, 0.999, 1 - 0.9**t, 1 - 0.999**t, 0.01, 1e-8)
    assert ways == [False, True] * kernels.SPLIT_CALLS  # alternated while measuring, then decided
    assert ((8, 8), np.dtype(np.float64)) in kernels.split_choices()
    key = ("k",)
    for times, expected in (({False: [1.0] * 6, True: [0.5] * 6}, True), ({False: [1.0] * 6, True: [0.95] * 6}, False),
                            ({False: [1.0] * 6, True: [2.0] * 6}, False)):
        kernels._split_times[key] = {False: times[False][:-1], True: times[True]}
        kernels._record(key, False, times[False][-1])
        assert kernels._split_choice[key] is expected
    small = np.ones((1, 8))  # one row, or under SPLIT_MIN, or one core: never split, never timed
    kernels.adam_update(small, small.copy(), small.copy(), small.copy(), 0.9, 0.999, 0.1, 0.001, 0.01, 1e-8)
    assert kernels.split_choices()[((1, 8), np.dtype(np.float64))] is False


def test_column_major_operands_are_walked_in_memory_order(rng):
    Z, dA = operands(rng, np.float32, "F")
    assert all(a.flags.c_contiguous for a in kernels.c_order(Z, dA))
    assert kernels.c_order(Z, np.ascontiguousarray(dA))[0] is Z  # mixed layouts: left as they are


def test_small_networks_never_import_numba():
    """Below COMPILED_MIN the NumPy expressions run (same bits), so small runs skip numba's import."""
    code = (
        "import sys, numpy as np\n"
        "from dltrain.engine import kernels\n"
        "from dltrain.engine.optimizers import Adam\n"
        "Z = np.random.default_rng(0).standard_normal((100, 100))\n"
        "A = kernels.relu(Z); kernels.relu_backward(Z, A)\n"
        "Adam().step({'W1': Z}, {'W1': A}, 0.01)\n"
        "assert 'numba' not in sys.modules\n"
        "kernels.relu(np.zeros((1, kernels.COMPILED_MIN)))\n"
        "assert 'numba' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

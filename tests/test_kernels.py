"""The compiled loops give the same bits as the NumPy expressions they replace, in every layout."""

import multiprocessing
import subprocess
import sys
import threading
import time

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


def adam_once(size: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    theta, g = rng.standard_normal((2, size, 3))
    kernels.adam_update(theta, g, np.zeros_like(g), np.zeros_like(g), 0.9, 0.999, 0.1, 0.001, 0.01, 1e-8)
    return theta


def child_update(queue):
    queue.put(adam_once(kernels.SPLIT_MIN).tobytes())


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


def halves_loop(log):
    """A stand-in for a compiled loop: the helper's half (rows 1..) is slow, the caller's half raises."""

    def loop(a):
        if a.shape[0] == 1:
            raise KeyboardInterrupt  # a second Ctrl-C in the caller's half
        time.sleep(0.3)
        a[:] = 1.0
        log.append(threading.current_thread().name)

    return loop


def test_an_interrupted_split_returns_only_after_the_helper_is_done(monkeypatch):
    if kernels._helper() is None:
        pytest.skip("one CPU: no helper thread")
    log, a = [], np.zeros((3, 4))  # the caller takes row 0, the helper rows 1 and 2
    monkeypatch.setattr(kernels, "compiled", lambda loop: loop)
    monkeypatch.setattr(kernels, "SPLIT_MIN", 1)
    with pytest.raises(KeyboardInterrupt):
        kernels.run_split(halves_loop(log), (a,))
    assert log and log[0].startswith("dltrain-kernel") and (a[1:] == 1.0).all()


def test_without_the_helper_the_caller_does_all_the_rows(monkeypatch):
    """After interpreter shutdown has begun, the pool refuses work; a thread still training goes on alone."""
    if kernels._helper() is None:
        pytest.skip("one CPU: no helper thread")

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(kernels._helper(), "submit", refuse)
    monkeypatch.setattr(kernels, "SPLIT_MIN", 1)
    rng = np.random.default_rng(0)
    theta, g = rng.standard_normal((2, 8, 3))
    expected = theta.copy()
    v, s = np.zeros_like(g), np.zeros_like(g)
    kernels.adam_update(theta, g, v, s, 0.9, 0.999, 0.1, 0.001, 0.01, 1e-8)
    expected -= ((0.1 * g / 0.1) * 0.01) / (np.sqrt(0.001 * g * g / 0.001) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_can_still_split_its_updates():
    """After fork the helper thread is gone; the child must make its own instead of waiting forever."""
    expected = adam_once(kernels.SPLIT_MIN)  # the parent's helper now exists (on machines with 2+ CPUs)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=child_update, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) == expected.tobytes()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()

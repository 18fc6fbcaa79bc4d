"""The compiled loops give the same bits as the NumPy expressions they replace, in every layout."""

import multiprocessing

import numpy as np
import pytest

from dltrain.engine import kernels

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


def test_without_a_writable_cache_folder_the_loops_compile_in_memory(monkeypatch, rng):
    import numba

    njit = numba.njit

    def no_cache_folder(*args, cache=False, **kwargs):
        if cache:  # numba's error when neither the package's __pycache__ nor a user cache folder is writable
            raise RuntimeError("cannot cache function '_relu': no locator available for file 'kernels.py'")
        return njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", no_cache_folder)
    Z, _ = operands(rng, np.float64, "C")
    A = np.empty_like(Z)
    kernels.compiled.__wrapped__(kernels._relu)(Z, A, 0.0)
    assert same_bits(A, np.maximum(Z, 0))


def adam_once(size: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    theta, g = rng.standard_normal((2, size, 3))
    kernels.adam_update(theta, g, np.zeros_like(g), np.zeros_like(g), 0.9, 0.999, 0.1, 0.001, 0.01, 1e-8)
    return theta


def child_update(queue):
    queue.put(adam_once(kernels.SPLIT_MIN).tobytes())


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

"""Fused elementwise loops, compiled with numba, for the engine's hot spots (issue 9).

NumPy makes one pass over memory per operator, and on this kind of CPU its float32 `maximum`
and `divide` run far below memory speed: the course's Adam update is 14 passes and took 3.6 ms
per step on the 668k weights of a 784-512-512-10 net, as long as a third of the step's matrix
products.

The ReLU loops perform the same IEEE operations, in the same order and dtype, as the NumPy
expressions in their docstrings, so results are bit-identical to them (tests/test_kernels.py
checks that on arrays with NaN, infinities and signed zeros). The Adam loop is the exception, see
`adam_update`. Scalars are cast to the arrays' dtype first, as NumPy does with Python floats.
`error_model="numpy"` drops the ZeroDivisionError branch that would stop LLVM from vectorizing
divisions; there is no fastmath, so nothing is reassociated or fused.

Loops index 2-D arrays as [i, j], which is right for any memory layout (every parameter and
activation in the engine is 2-D) and fast for C order. Arrays below COMPILED_MIN elements take the
NumPy expression instead: small arrays gain nothing from a compiled pass, and runs of small
networks (planar, moons, most tests) never import numba. numba is imported and each loop compiled
in memory on first use, about 1.5 s once per process. Not cached on disk on purpose: numba's cache
index is written without a lock, and two processes compiling the same loop for different dtypes at
once can leave a cache that fails every later run.

The ReLU loops run on the calling thread. Adam's update on large arrays may run on two threads, if
that is measured faster where it runs (see SPLIT_MIN below).
"""

import functools
import math
import os
import time

import numpy as np

# Arrays smaller than this use NumPy (see above).
COMPILED_MIN = 1 << 14


@functools.cache
def compiled(loop):
    """loop, compiled by numba for the argument types of each call."""
    import numba

    return numba.njit(nogil=True, error_model="numpy")(loop)


def c_order(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, transposed when they are all column-major, so the loops walk memory in order.

    Elementwise results do not depend on orientation; a wide first layer leaves Z column-major.
    """
    if all(a.flags.f_contiguous and not a.flags.c_contiguous for a in arrays):
        return tuple(a.T for a in arrays)
    return arrays


def _relu(Z, A, zero):
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[i, j]
            A[i, j] = z if z > 0 or z != z else zero  # np.maximum(z, 0): NaN propagates, -0.0 becomes 0.0


def relu(Z):
    """np.maximum(Z, 0). Z (n, m) -> A (n, m), a new array in Z's layout."""
    if Z.size < COMPILED_MIN:
        return np.maximum(Z, 0)
    A = np.empty_like(Z)
    compiled(_relu)(*c_order(Z, A), Z.dtype.type(0))
    return A


def _relu_backward(dA, A, dZ, one, zero):
    for i in range(dA.shape[0]):
        for j in range(dA.shape[1]):
            dZ[i, j] = dA[i, j] * (one if A[i, j] > 0 else zero)


def relu_backward(dA, A):
    """dA * (A > 0), the mask cast to dA's dtype as NumPy does. dA, A (n, m) -> dZ (n, m)."""
    if dA.size < COMPILED_MIN:
        return dA * (A > 0)
    dZ = np.empty_like(dA)
    compiled(_relu_backward)(*c_order(dA, A, dZ), dA.dtype.type(1), dA.dtype.type(0))
    return dZ


def _adam(theta, g, v, s, beta1, one_minus_beta1, beta2, one_minus_beta2, step, epsilon_hat):
    for i in range(theta.shape[0]):
        for j in range(theta.shape[1]):
            gij = g[i, j]
            vij = v[i, j] * beta1 + gij * one_minus_beta1
            sij = s[i, j] * beta2 + (gij * gij) * one_minus_beta2
            v[i, j] = vij
            s[i, j] = sij
            theta[i, j] -= (vij * step) / (math.sqrt(sij) + epsilon_hat)


def adam_update(theta, g, v, s, beta1, beta2, c1, c2, lr, epsilon) -> None:
    """In place:

        v = beta1 v + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
        theta -= (v step) / (sqrt(s) + epsilon_hat)     step = lr sqrt(c2) / c1, epsilon_hat = epsilon sqrt(c2)

    with c1 = 1 - beta1^t, c2 = 1 - beta2^t. This is the course's lr (v / c1) / (sqrt(s / c2) +
    epsilon) multiplied through by sqrt(c2) (Kingma & Ba's "more efficient" order): equal in exact
    arithmetic, one division and one square root per weight instead of three divisions and a
    square root. Divisions and square roots, not memory, bound this loop on the cores it was
    measured on (3.1 -> 2.2 ms on 668k float64 weights on one core). v and s are the course's bits;
    theta differs from the course's order by rounding only (a few units in the last place of each
    step). The optimizer updates arrays under COMPILED_MIN elements with the course's order, so
    the course reproductions (small networks) keep their bits.

    theta, g, v, s are 2-D arrays of one shape and dtype; the scalars are Python floats, combined in
    float64 and then cast to the arrays' dtype.
    """
    f = theta.dtype.type
    root_c2 = math.sqrt(c2)
    scalars = (f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2), f(lr * root_c2 / c1), f(epsilon * root_c2))
    loop = compiled(_adam)
    key = (theta.shape, theta.dtype)
    split = _split_choice.get(key)
    if split is None and (theta.size < SPLIT_MIN or theta.shape[0] < 2 or _cores() < 2):
        split = _split_choice[key] = False
    timing = split is None  # still measuring: the two ways alternate, each timed where the loop runs
    if timing:
        split = len(_split_times.setdefault(key, {False: [], True: []})[True]) < len(_split_times[key][False])
    started = time.perf_counter()
    if split:
        # Rows split in two, one half on a helper thread (the loop releases the GIL): every weight gets
        # the same operations either way, so the bits do not depend on the split.
        h = theta.shape[0] // 2
        other = _helper().submit(loop, theta[h:], g[h:], v[h:], s[h:], *scalars)
        loop(theta[:h], g[:h], v[:h], s[:h], *scalars)
        other.result()
    else:
        loop(theta, g, v, s, *scalars)
    if timing:
        _record(key, split, time.perf_counter() - started)


# Adam on both cores (issue 21). Whether a second thread pays depends on the machine and on what else
# runs: right after the backward pass's products OpenBLAS's worker thread may still spin on the other
# core (on the AVX2 EPYC a split gained nothing), and other processes may hold it. So it is measured
# where it runs: the first SPLIT_CALLS updates of each array shape alternate one thread and two, and
# the two-thread way is kept only if its median is SPLIT_MARGIN faster. Below SPLIT_MIN weights the
# thread hand-off (tens of microseconds) costs more than half the loop; such arrays are never split.
SPLIT_MIN = 1 << 17
SPLIT_CALLS = 6  # timed updates of each way per shape
SPLIT_MARGIN = 0.1
_split_choice: dict[tuple, bool] = {}  # (shape, dtype) -> two threads?
_split_times: dict[tuple, dict[bool, list[float]]] = {}


def _record(key, split: bool, seconds: float) -> None:
    times = _split_times[key]
    times[split].append(seconds)
    if len(times[False]) >= SPLIT_CALLS and len(times[True]) >= SPLIT_CALLS:
        median = {way: sorted(t)[len(t) // 2] for way, t in times.items()}
        _split_choice[key] = median[True] < (1 - SPLIT_MARGIN) * median[False]


@functools.cache
def _helper():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="dltrain-adam")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_choices() -> dict[tuple, bool]:
    """Per (shape, dtype): whether Adam's update was measured faster on two threads (profile, tests)."""
    return dict(_split_choice)

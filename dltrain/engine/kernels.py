"""Fused elementwise loops, compiled with numba, for the engine's hot spots (issue 9).

NumPy makes one pass over memory per operator, and on this kind of CPU its float32 `maximum`
and `divide` run far below memory speed: the course's Adam update is 14 passes and took 3.6 ms
per step on the 668k weights of a 784-512-512-10 net, as long as a third of the step's matrix
products. Compiled into one loop it takes 1.4 ms, and 0.9 ms split over two cores.

Each loop performs the same IEEE operations, in the same order and dtype, as the NumPy expression
in its docstring, so results are bit-identical to it (tests/test_kernels.py checks that on arrays
with NaN, infinities and signed zeros). Scalars are cast to the arrays' dtype first, as NumPy
does with Python floats. `error_model="numpy"` drops the ZeroDivisionError branch that would stop
LLVM from vectorizing divisions; there is no fastmath, so nothing is reassociated or fused.

Loops index 2-D arrays as [i, j], which is right for any memory layout (every parameter and
activation in the engine is 2-D) and fast for C order. Arrays below COMPILED_MIN elements take the
NumPy expression instead: the bits are the same, small arrays gain nothing from a compiled pass, and
runs of small networks (planar, moons, most tests) never import numba. numba is imported and each
loop compiled in memory on first use, about 1.5 s once per process. Not cached on disk on purpose:
numba's cache index is written without a lock, and two processes compiling the same loop for
different dtypes at once can leave a cache that fails every later run.
"""

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# Arrays smaller than this use NumPy (see above).
COMPILED_MIN = 1 << 14
# Below this many elements a second thread costs more to start than it saves.
SPLIT_MIN = 1 << 17


@functools.cache
def compiled(loop):
    """loop, compiled by numba for the argument types of each call."""
    import numba

    return numba.njit(nogil=True, error_model="numpy")(loop)


@functools.cache
def _helper() -> ThreadPoolExecutor | None:
    """One worker thread beside the caller, when the process may use more than one CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolExecutor(1, thread_name_prefix="dltrain-kernel") if cpus > 1 else None


# A forked child inherits the executor object but not its thread.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_helper.cache_clear)


def run_split(loop, arrays: tuple[np.ndarray, ...], *scalars) -> None:
    """compiled(loop)(*arrays, *scalars), on the two row halves of every array in parallel when large.

    The loops are elementwise, so the halves are independent and the result is the same bits.
    """
    fn = compiled(loop)
    rows = arrays[0].shape[0]
    pool = _helper() if arrays[0].size >= SPLIT_MIN and rows > 1 else None
    h = rows // 2
    try:
        other = pool.submit(fn, *(a[h:] for a in arrays), *scalars) if pool is not None else None
    except RuntimeError:  # the interpreter is shutting down (training in a thread that outlived main)
        other = None
    if other is None:
        fn(*arrays, *scalars)
        return
    try:
        fn(*(a[:h] for a in arrays), *scalars)
    finally:
        # Never return (or raise) while the helper still writes into arrays the caller goes on to
        # use: a Ctrl-C that interrupts the wait is held until the helper is done.
        interrupted = None
        while True:
            try:
                wait([other])
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        other.result()  # the helper's own exception, if any


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


def _adam(theta, g, v, s, beta1, one_minus_beta1, beta2, one_minus_beta2, c1, c2, lr, epsilon):
    for i in range(theta.shape[0]):
        for j in range(theta.shape[1]):
            gij = g[i, j]
            vij = v[i, j] * beta1 + gij * one_minus_beta1
            sij = s[i, j] * beta2 + (gij * gij) * one_minus_beta2
            v[i, j] = vij
            s[i, j] = sij
            theta[i, j] -= ((vij / c1) * lr) / (math.sqrt(sij / c2) + epsilon)


def adam_update(theta, g, v, s, beta1, beta2, c1, c2, lr, epsilon) -> None:
    """In place, in the course's order of operations:

        v = beta1 v + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
        theta -= lr (v / c1) / (sqrt(s / c2) + epsilon)      with c1 = 1 - beta1^t, c2 = 1 - beta2^t

    theta, g, v, s are 2-D arrays of one shape and dtype, of at least COMPILED_MIN elements (the
    optimizer updates smaller ones with NumPy); the scalars are Python floats.
    """
    f = theta.dtype.type
    scalars = (f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2), f(c1), f(c2), f(lr), f(epsilon))
    run_split(_adam, (theta, g, v, s), *scalars)

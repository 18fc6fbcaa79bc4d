"""Which way round the BLAS computes a wide layer's Z = W A_prev: measured once per shape, per process (issue 21).

The same product can be handed to the BLAS as Z = W @ A_prev or as its transpose Z^T = A_prev^T W^T.
On a wide input (thousands of features) the two run at different speeds, and which one wins depends
on the CPU, the BLAS's kernels, the thread count, the dtype and the batch: on an AVX2 EPYC with 2
threads the transpose was 1.25-1.5x faster for cat-deep's 20x12288 layer; on an AVX-512 EPYC with
one thread it is 1.2x faster in float32 for cat-deep but 1.05x slower for SIGNS' 25x12288 layer on
mini-batches of 32, and slower for both in float64. So the choice is not written down: the first
product of each shape is computed both ways, a few times alternately, and the faster is kept for
the rest of the process.

Both ways must give the same bits, or the choice would change the results from one run to the next:
the calibration compares them (OpenBLAS computes every dot product in the same order either way,
whatever the values, because its blocking depends on the shapes only) and keeps DEFAULT when they
differ. DEFAULT is the transpose, what the engine did before it measured. Z is returned column-major
either way, the layout the transpose gives, because reductions over Z downstream (batch norm's
mean and variance, bias gradients, softmax's sums) add in another order on another layout: so
results are unchanged whatever the measurement says. Narrow layers (fewer than WIDE inputs) always use W @ A_prev: the
products are too small for the choice to matter, and the course reproductions' bits stay as they are.
"""

import time

import numpy as np

WIDE = 1024  # inputs from which a layer's product is calibrated
DEFAULT = True  # the transposed product, kept when both ways differ in bits or time the same
ROUNDS = 3  # timings of each way; the minimum of each is compared
MARGIN = 0.05  # the other way must be this much faster to be chosen, so load noise does not flip the choice
MAX_FLOP = 2e9  # larger products are not timed (a calibration would cost more than it saves): DEFAULT

_transposed: dict[tuple, bool] = {}  # (W shape, A_prev shape, A_prev strides, dtype) -> the chosen way


def _course(W, A_prev):
    return W @ A_prev


def _transpose(W, A_prev):
    return (A_prev.T @ W.T).T  # a column-major view of Z


def calibrate(W, A_prev, clock=time.perf_counter) -> bool:
    """True when the transposed product is to be used for this shape (see the module docstring)."""
    if 2.0 * W.shape[0] * W.shape[1] * A_prev.shape[1] > MAX_FLOP:
        return DEFAULT
    if not np.array_equal(_course(W, A_prev), _transpose(W, A_prev), equal_nan=True):
        return DEFAULT
    best = {False: float("inf"), True: float("inf")}
    for _ in range(ROUNDS):
        for way in (DEFAULT, not DEFAULT):
            started = clock()
            (_transpose if way else _course)(W, A_prev)
            best[way] = min(best[way], clock() - started)
    return (not DEFAULT) if best[not DEFAULT] < (1 - MARGIN) * best[DEFAULT] else DEFAULT


def forward(W, A_prev):
    """Z = W @ A_prev. W (n, n_prev), A_prev (n_prev, m) -> Z (n, m): the same bits and, for a wide layer,
    the same column-major layout whichever way it is computed."""
    if W.shape[1] < WIDE:
        return _course(W, A_prev)
    key = (W.shape, A_prev.shape, A_prev.strides, W.dtype)
    way = _transposed.get(key)
    if way is None:
        way = _transposed[key] = calibrate(W, A_prev)
    if way:
        return _transpose(W, A_prev)
    # The layout matters downstream: a reduction over Z's rows (batch norm's mean, a bias gradient, a
    # softmax over more than 8 classes) sums in another order on the other layout. Z is n x m, n_prev
    # (>= WIDE) times smaller than what the product reads, so the copy costs next to nothing.
    return np.asfortranarray(_course(W, A_prev))


def choices() -> dict[tuple, bool]:
    """The ways chosen so far in this process (for the benchmark's profile and the tests)."""
    return dict(_transposed)

"""Activations as (forward, backward) pairs.

forward(Z) -> A and backward(dA, A) -> dZ, both (n_l, m). Backward needs only A: for every
activation here the derivative is a function of the output, so caches keep A and never Z.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from dltrain.engine import kernels

EXP_CHUNK = 1 << 14  # values per pass of the float64 exp (256 KiB of complex buffer)


class Activation(NamedTuple):
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray]


def exp(X, out=None):
    """e^X elementwise; in float64 with the C library's exp. X (n, m) -> (n, m).

    NumPy's float64 exp switches to its own vectorized routine on AVX-512 CPUs, whose last bits
    differ from the C library's in about 5% of values; the planar course run amplifies that over
    its 10,000 steps and ended 2e-5 off the course's printed cost. NumPy's complex exp has no
    vectorized routine: for x + 0i it is the C library's exp(x) times cos(0) = 1, exactly (8 ns per
    element against NumPy's 1.2; scipy's inverse Box-Cox, used before, was 4.5 ns but its import
    cost every `dltrain train` 0.2 s, issue 21). glibc's exp is within 0.51 units in the last place
    whatever the CPU, so machines agree on its bits but for rare near-ties. float32 reproduces no
    course number and keeps NumPy's exp, 7x faster than the C exp in double.
    """
    if X.dtype != np.float64:
        return np.exp(X, out=out)
    if out is None:
        out = np.empty_like(X)  # X's memory layout, as NumPy's exp gives: reductions downstream add in its order
    if X.size <= EXP_CHUNK:  # one pass, without the loop's slicing: 1 µs of planar's 47 µs step
        C = X.astype(np.complex128)
        np.exp(C, out=C)
        out[...] = C.real
        return out
    # A few columns at a time through one complex buffer: its 16 bytes per value stay small
    # (and in cache) however large X is, and `out` may be X itself (sigmoid's in-place pass).
    step = max(1, EXP_CHUNK // max(1, X.shape[0]))
    C = np.empty((X.shape[0], min(step, X.shape[1])), np.complex128)
    for j in range(0, X.shape[1], step):
        c = C[:, : min(step, X.shape[1] - j)]
        c.real = X[:, j : j + step]
        c.imag = 0.0
        np.exp(c, out=c)
        out[:, j : j + step] = c.real
    return out


def sigmoid(Z):
    """A = 1 / (1 + exp(-Z)), written so that exp never overflows. Z (n, m) -> A (n, m)."""
    # E = exp(-|Z|) is in (0, 1]; A is 1 / (1 + E) where Z >= 0 and E / (1 + E) elsewhere, both
    # exact. The course-reproduction runs are sensitive to the last bit of these values, so the
    # formula stays; it is computed in place to halve the allocations on small layers.
    E = np.abs(Z)
    np.negative(E, out=E)
    exp(E, out=E)
    D = E + 1.0
    np.copyto(E, 1.0, where=Z >= 0)
    E /= D
    return E


def sigmoid_backward(dA, A):
    """dZ = dA * A (1 - A)."""
    return dA * A * (1.0 - A)


def tanh(Z):
    """A = tanh(Z)."""
    return np.tanh(Z)


def tanh_backward(dA, A):
    """dZ = dA * (1 - A^2)."""
    dZ = A * A
    np.subtract(1.0, dZ, out=dZ)
    dZ *= dA
    return dZ


def relu(Z):
    """A = max(0, Z)."""
    # NumPy's float32 maximum is 6x slower than one compiled pass (and ReLU runs on every hidden layer).
    return kernels.relu(Z)


def relu_backward(dA, A):
    """dZ = dA where Z > 0 (equivalently A > 0), else 0."""
    return kernels.relu_backward(dA, A)


def leaky_relu(slope: float = 0.01) -> Activation:
    """A = Z for Z > 0, slope * Z otherwise; slope in (0, 1) keeps the sign of Z readable from A."""

    def forward(Z):
        return np.where(Z > 0, Z, slope * Z)

    def backward(dA, A):
        return np.where(A > 0, dA, slope * dA)

    return Activation(forward, backward)


def linear(Z):
    """A = Z."""
    return Z


def linear_backward(dA, A):
    """dZ = dA."""
    return dA


def softmax(Z):
    """Column-wise softmax, shifted by the column max so exp never overflows. Z (C, m) -> A (C, m)."""
    E = exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def softmax_backward(dA, A):
    """dZ = A * (dA - sum_c(dA * A)): the Jacobian-vector product of softmax, per column."""
    return A * (dA - (dA * A).sum(axis=0, keepdims=True))


ACTIVATIONS = {
    "sigmoid": Activation(sigmoid, sigmoid_backward),
    "tanh": Activation(tanh, tanh_backward),
    "relu": Activation(relu, relu_backward),
    "leaky_relu": leaky_relu(),
    "linear": Activation(linear, linear_backward),
    "softmax": Activation(softmax, softmax_backward),
}

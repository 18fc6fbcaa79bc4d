"""Dense, batch-norm and dropout steps: forward returns (output, cache), backward consumes the cache."""

from typing import NamedTuple

import numpy as np

from dltrain.engine import products


class DenseCache(NamedTuple):
    A_prev: np.ndarray  # (n_prev, m)
    W: np.ndarray  # (n, n_prev)


class BatchNormCache(NamedTuple):
    Z_hat: np.ndarray  # (n, m) normalized pre-activation
    gamma: np.ndarray  # (n, 1)
    inv_std: np.ndarray  # (n, 1) 1 / sqrt(var + eps)


class DropoutCache(NamedTuple):
    mask: np.ndarray  # (n, m) boolean, True = kept
    keep_prob: float


def dense_forward(A_prev, W, b):
    """Z = W @ A_prev + b. A_prev (n_prev, m), W (n, n_prev), b (n, 1) or None -> Z (n, m)."""
    # On a wide input (thousands of features) the BLAS may run the GEMM faster as Z^T = A_prev^T W^T
    # (Z is then a column-major view); which way is measured once per shape (engine/products.py).
    # Narrow layers keep W @ A_prev.
    Z = products.forward(W, A_prev)
    if b is not None:
        Z += b
    return Z, DenseCache(A_prev, W)


def dense_backward(dZ, cache, need_dA_prev=True, dW_out=None):
    """dZ (n, m) -> dA_prev (n_prev, m) or None, dW (n, n_prev), db (n, 1).

    dZ already carries the 1/m of the cost. The first layer's dA_prev (the input gradient) is
    never used in training, so the caller skips it: it is the largest product of the step.
    dW_out: a C-contiguous (n, n_prev) array to write dW into (the same bits as a new one).
    """
    # Unlike dense_forward, the course's product is also the fastest for wide inputs: with 2 threads
    # the transposed GEMM plus the copy back to W's C layout took 1.35x as long on cat-deep's layer 1.
    dW = np.matmul(dZ, cache.A_prev.T, out=dW_out)
    db = dZ.sum(axis=1, keepdims=True)
    dA_prev = input_gradient(cache.W, dZ) if need_dA_prev else None
    return dA_prev, dW, db


def input_gradient(W, dZ):
    """dA_prev = W^T dZ. W (n, n_prev), dZ (n, m) -> (n_prev, m).

    A one-unit layer (a binary classifier's output) makes it an outer product, each entry a single
    multiplication: NumPy's broadcast multiply gives the same bits as the GEMM, without the GEMM's
    call overhead (3 us -> 1 us on planar's 4x400, a twentieth of its step).
    """
    return W.T * dZ if W.shape[0] == 1 else W.T @ dZ


def batchnorm_forward(Z, gamma, beta, eps):
    """Z~ = gamma * (Z - mu) / sqrt(var + eps) + beta with the batch's own mu, var (n, 1).

    Z (n, m) -> Z~ (n, m), cache, and (mu, var) so the caller can update running statistics.
    var is the biased batch variance, mean((Z - mu)^2) (divided by m, not m - 1), as in the course.
    """
    mu = Z.mean(axis=1, keepdims=True)
    Zc = Z - mu
    var = (Zc * Zc).mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    Z_hat = Zc * inv_std
    return gamma * Z_hat + beta, BatchNormCache(Z_hat, gamma, inv_std), (mu, var)


def batchnorm_inference(Z, gamma, beta, mean, var, eps):
    """Z~ with running statistics: each example is normalized independently of its batch."""
    return gamma * ((Z - mean) / np.sqrt(var + eps)) + beta


def batchnorm_backward(dZt, cache):
    """dZ~ (n, m) -> dZ (n, m), dgamma (n, 1), dbeta (n, 1), through the batch mean and variance."""
    Z_hat, gamma, inv_std = cache
    m = dZt.shape[1]
    dbeta = dZt.sum(axis=1, keepdims=True)
    dgamma = (dZt * Z_hat).sum(axis=1, keepdims=True)
    dZ = (gamma * inv_std / m) * (m * dZt - dbeta - Z_hat * dgamma)
    return dZ, dgamma, dbeta


def dropout_forward(A, mask, keep_prob):
    """Inverted dropout: A * mask / keep_prob, so the expected activation is unchanged. A, mask (n, m)."""
    return A * mask / keep_prob, DropoutCache(mask, keep_prob)


def dropout_backward(dA, cache):
    """The same mask, the same scaling: dA * mask / keep_prob."""
    return dA * cache.mask / cache.keep_prob

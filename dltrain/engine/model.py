"""L-layer fully connected networks: init_params, forward -> (AL, cache), backward -> grads, predict.

Keys: W{l} (n_l, n_{l-1}) and b{l} (n_l, 1), or gamma{l}, beta{l} (n_l, 1) instead of b{l} on a
batch-norm layer; running statistics mean{l}, var{l} (n_l, 1) live in `state`, not `params`.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from dltrain.engine.activations import Activation
from dltrain.engine.layers import (
    BatchNormCache,
    DenseCache,
    DropoutCache,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    dense_backward,
    dense_forward,
    dropout_backward,
    dropout_forward,
)
from dltrain.engine.losses import l1_penalty, l2_penalty


class LayerSpec(NamedTuple):
    """Layer l: `units` outputs, its activation, batch norm on its pre-activation, dropout on its output."""

    units: int
    activation: Activation
    batch_norm: bool = False
    keep_prob: float = 1.0


class Network(NamedTuple):
    """Everything that defines the cost J(params) besides the data."""

    n_x: int
    layers: tuple[LayerSpec, ...]  # layers 1..L; the last is the output layer
    loss: Callable  # (ZL, AL, Y) -> sum of per-example losses; its delta is AL - Y
    l2: float = 0.0
    l1: float = 0.0
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9

    @property
    def L(self) -> int:
        return len(self.layers)

    @property
    def weight_keys(self) -> list[str]:
        return [f"W{l}" for l in range(1, self.L + 1)]

    @property
    def has_dropout(self) -> bool:
        return any(s.keep_prob < 1.0 for s in self.layers)


class LayerCache(NamedTuple):
    dense: DenseCache
    bn: BatchNormCache | None
    bn_stats: tuple | None  # (mu, var) of this batch, for the running averages
    A: np.ndarray  # activation output before dropout (n_l, m), what activation backward needs
    dropout: DropoutCache | None


class ForwardCache(NamedTuple):
    layers: list[LayerCache]
    ZL: np.ndarray  # (n_L, m) output logits, for a stable cost


def init_params(net: Network, init: Callable, rng, scale: float, dtype=np.float64):
    """Draw W1, W2, ..., WL in layer order (one init call each; biases draw nothing) -> params, state.

    In course mode `rng` is RandomState(seed), so the draws are those of the course notebooks'
    `np.random.seed(seed)` followed by one `randn(n_l, n_prev)` per layer.
    """
    params, state = {}, {}
    n_prev = net.n_x
    for l, spec in enumerate(net.layers, start=1):
        n = spec.units
        params[f"W{l}"] = np.asarray(init(n, n_prev, rng, scale), dtype=dtype)
        if spec.batch_norm:
            params[f"gamma{l}"] = np.ones((n, 1), dtype=dtype)
            params[f"beta{l}"] = np.zeros((n, 1), dtype=dtype)
            state[f"mean{l}"] = np.zeros((n, 1), dtype=dtype)
            state[f"var{l}"] = np.ones((n, 1), dtype=dtype)
        else:
            params[f"b{l}"] = np.zeros((n, 1), dtype=dtype)
        n_prev = n
    return params, state


def forward(X, params, net: Network, state=None, training=True, dropout_rng=None, masks=None):
    """X (n_x, m) -> AL (n_L, m), ForwardCache.

    training=True: batch norm uses the batch's statistics and dropout draws masks from
    `dropout_rng` (`rng.random((n_l, m)) < keep_prob`, layer by layer), or takes layer l's
    (n_l, m) bool mask from `masks[l]` when given (drawn beforehand, see engine.accumulate).
    training=False: batch norm uses `state`'s running statistics and dropout is off.
    """
    A = X
    caches = []
    L = net.L
    for l, spec in enumerate(net.layers, start=1):
        bn = spec.batch_norm
        Z, dense = dense_forward(A, params[f"W{l}"], None if bn else params[f"b{l}"])
        bn_cache = bn_stats = None
        if bn and training:
            Z, bn_cache, bn_stats = batchnorm_forward(Z, params[f"gamma{l}"], params[f"beta{l}"], net.bn_epsilon)
        elif bn:
            Z = batchnorm_inference(
                Z, params[f"gamma{l}"], params[f"beta{l}"], state[f"mean{l}"], state[f"var{l}"], net.bn_epsilon
            )
        A = spec.activation.forward(Z)
        dropout = None
        if training and l < L and spec.keep_prob < 1.0:
            mask = masks[l] if masks is not None else dropout_rng.random(A.shape) < spec.keep_prob
            A_out, dropout = dropout_forward(A, mask, spec.keep_prob)
            caches.append(LayerCache(dense, bn_cache, bn_stats, A, dropout))
            A = A_out
        else:
            caches.append(LayerCache(dense, bn_cache, bn_stats, A, None))
    return A, ForwardCache(caches, Z)


def penalty(params, net: Network, m_reg: int) -> float:
    """Regularization term of the cost; m_reg is the training-set size (see `backward`)."""
    total = 0.0
    if net.l2:
        total += l2_penalty(params, net.weight_keys, net.l2, m_reg)
    if net.l1:
        total += l1_penalty(params, net.weight_keys, net.l1, m_reg)
    return total


def compute_cost(AL, cache: ForwardCache, Y, params, net: Network, m_reg: int):
    """-> (data cost averaged over the m examples of Y, regularization penalty)."""
    return net.loss(cache.ZL, AL, Y) / Y.shape[1], penalty(params, net, m_reg)


def backward(AL, Y, cache: ForwardCache, params, net: Network, m_reg: int, out=None, m_cost: int | None = None):
    """Gradients of compute_cost's total with respect to every key of `params`.

    The output delta is fused: dZL = (AL - Y) / m for sigmoid + binary and softmax + categorical
    cross-entropy. The penalty uses m_reg, the training-set size, so that a mini-batch's gradient
    is an unbiased estimate of the full objective (with full batches m_reg = m, as in the course).

    out: the grads of an earlier call for the same network; its weight gradients are overwritten
    and returned again. The training loop passes its previous step's, because a new multi-megabyte
    dW every step is memory glibc hands back to the OS and faults in again: 1,200 page faults,
    about 1.3 ms of a 33 ms float64 step on a 784-512-512-10 net.

    m_cost: the number of examples the cost averages over, when Y (n_L, k) is one chunk of them
    (default k): the chunk's share of the whole set's gradient (engine.accumulate).
    """
    m = Y.shape[1] if m_cost is None else m_cost
    grads = {}
    dZ = AL - Y
    dZ /= m
    dA = None
    for l in range(net.L, 0, -1):
        spec = net.layers[l - 1]
        c = cache.layers[l - 1]
        if l < net.L:
            if c.dropout is not None:
                dA = dropout_backward(dA, c.dropout)
            dZ = spec.activation.backward(dA, c.A)
        if c.bn is not None:
            dZ, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm_backward(dZ, c.bn)
        dA, dW, db = dense_backward(dZ, c.dense, need_dA_prev=l > 1, dW_out=None if out is None else out[f"W{l}"])
        add_penalty_gradient(dW, params[f"W{l}"], net, m_reg)
        grads[f"W{l}"] = dW
        if c.bn is None:
            grads[f"b{l}"] = db
    return grads


def add_penalty_gradient(dW, W, net: Network, m_reg: int) -> None:
    """dW += the L2 and L1 penalties' gradient with respect to W (n_l, n_prev), in place."""
    if net.l2:
        dW += (net.l2 / m_reg) * W
    if net.l1:
        dW += (net.l1 / m_reg) * np.sign(W)


def update_running_stats(state, cache: ForwardCache, momentum: float):
    """mean{l}, var{l} <- momentum * running + (1 - momentum) * batch statistic, in place.

    var{l} averages the BIASED batch variance, mean((Z - mu)^2) over the m_batch examples, the one
    the forward pass normalizes with (the course's formula). PyTorch's BatchNorm1d averages the
    unbiased one, times m_batch / (m_batch - 1): the two running variances differ by that factor
    (1.6% at batch size 64), so evaluation-mode outputs differ slightly from a PyTorch model's."""
    for l, c in enumerate(cache.layers, start=1):
        if c.bn_stats is not None:
            mu, var = c.bn_stats
            for key, value in ((f"mean{l}", mu), (f"var{l}", var)):
                running = state[key]
                running *= momentum
                running += (1.0 - momentum) * value


def column_chunks(X, batch_size: int):
    """X (n_x, m) as float column blocks (n_x, <= batch_size): examples held raw (dltrain.data.examples)
    serve their own chunks, normalized into a reused buffer; an array is sliced."""
    if hasattr(X, "chunks"):
        return (chunk for _, chunk in X.chunks())
    return (X[:, i : i + batch_size] for i in range(0, X.shape[1], batch_size))


def evaluation_forward(X, params, net: Network, state=None, batch_size: int = 4096):
    """Evaluation mode (no dropout, running batch-norm statistics): X (n_x, m) -> AL, ZL (n_L, m).

    Evaluated in column chunks so memory stays bounded; in evaluation mode every example is
    independent of the others, so chunking does not change the result.
    """
    outs = []
    for X_chunk in column_chunks(X, batch_size):
        AL, cache = forward(X_chunk, params, net, state, training=False)
        outs.append((AL, cache.ZL))
    if len(outs) == 1:
        return outs[0]
    return np.concatenate([o[0] for o in outs], axis=1), np.concatenate([o[1] for o in outs], axis=1)


def ever_active(X, params, net: Network, state=None, batch_size: int = 4096) -> list[np.ndarray]:
    """For each hidden layer l = 1..L-1, (n_l,) bool: whether unit j's output A[l][j] is positive for
    at least one example of X (n_x, m), in evaluation mode and in column chunks.

    A ReLU (or leaky ReLU) unit that is positive for no example is dead: its gradient is 0 (or
    slope times smaller) on every example, so gradient descent cannot revive it.
    """
    seen = [np.zeros(spec.units, dtype=bool) for spec in net.layers[:-1]]
    for X_chunk in column_chunks(X, batch_size):
        _, cache = forward(X_chunk, params, net, state, training=False)
        for active, c in zip(seen, cache.layers[:-1]):
            active |= (c.A > 0).any(axis=1)
    return seen


def labels_from_output(AL) -> np.ndarray:
    """AL (n_L, m) -> predicted labels (m,): threshold 0.5 for one sigmoid unit, argmax for softmax."""
    if AL.shape[0] == 1:
        return (AL[0] > 0.5).astype(np.int64)
    return AL.argmax(axis=0)


def labels_from_targets(Y) -> np.ndarray:
    """Y (1, m) 0/1 or (C, m) one-hot -> labels (m,)."""
    if Y.shape[0] == 1:
        return Y[0].astype(np.int64)
    return Y.argmax(axis=0)


def evaluate(X, Y, params, net: Network, state):
    """Evaluation-mode (cross-entropy cost without penalty, accuracy) on X (n_x, m), Y (n_L, m)."""
    AL, ZL = evaluation_forward(X, params, net, state)
    cost = net.loss(ZL, AL, Y) / Y.shape[1]
    accuracy = float(np.mean(labels_from_output(AL) == labels_from_targets(Y)))
    return cost, accuracy

"""Full-batch gradient descent over chunks of examples: the whole training set's cost and gradients
summed chunk by chunk, for data whose float copy (and activations) would not fit in memory at once.

The mathematics is that of one product over all m examples: each chunk's output delta is divided by
the whole set's m (not the chunk's k), its dW = dZ @ A_prev.T and db = sum(dZ) are added up, and the
L2/L1 penalty gradient is added once at the end. Only the summation order differs (BLAS sums the m
columns of one product in its own blocks; here partial sums of k columns are added), so the result
agrees with the single product to rounding, about 1e-15 relative, not bit for bit.

Dropout masks are drawn for the whole set exactly as the single product draws them (same generator,
same order, same shape), as (n_l, m) bool arrays, and sliced per chunk: the step is the same
random function of the generator. Batch normalization is not supported: its statistics span every
example of the batch, which one chunk cannot see (the caller refuses that combination).
"""

import numpy as np

from dltrain.engine.model import Network, add_penalty_gradient, backward, forward, penalty

MASK_DRAW_BYTES = 16 * 2**20  # random doubles drawn at a time while building a mask


def dropout_masks(net: Network, m: int, dropout_rng) -> dict[int, np.ndarray]:
    """Layer l -> (n_l, m) bool keep-mask, the masks forward(X (n_x, m), training=True) would draw from
    `dropout_rng`: `rng.random((n_l, m)) < keep_prob` layer by layer, here drawn a block of rows at a
    time (the generator's stream is sequential, so the draws are the same) to hold bools, not doubles."""
    masks = {}
    for l, spec in enumerate(net.layers[:-1], start=1):
        if spec.keep_prob < 1.0:
            mask = np.empty((spec.units, m), dtype=bool)
            rows = max(1, MASK_DRAW_BYTES // (8 * m))
            for i in range(0, spec.units, rows):
                block = mask[i : i + rows]
                np.less(dropout_rng.random(block.shape), spec.keep_prob, out=block)
            masks[l] = mask
    return masks


def column_chunk(X, cols: slice) -> np.ndarray:
    """X[:, cols] (n_x, k) as floats: examples held raw serve a normalized chunk in their reused buffer."""
    return X.columns(cols) if hasattr(X, "columns") else X[:, cols]


def accumulated_step(X, Y, params: dict, net: Network, chunk: int, dropout_rng=None, out: dict | None = None):
    """Full-batch cost and gradients over X (n_x, m), Y (n_L, m), `chunk` examples at a time.

    -> (data cost averaged over the m examples, penalty, grads keyed like params), the values
    compute_cost and backward give for the single product, up to summation order. `out`: the grads of
    an earlier call, overwritten and returned again (as backward's). dropout_rng: the generator of
    this pass's masks (None without dropout).
    """
    if any(spec.batch_norm for spec in net.layers):
        raise ValueError("accumulated_step: batch normalization needs the whole batch's statistics")
    m = Y.shape[1]
    masks = dropout_masks(net, m, dropout_rng) if net.has_dropout else None
    plain = net._replace(l2=0.0, l1=0.0)  # the penalty's gradient is added once, after the sum
    loss = 0.0
    grads = chunk_grads = None
    for start in range(0, m, chunk):
        cols = slice(start, min(start + chunk, m))
        chunk_masks = None if masks is None else {l: mask[:, cols] for l, mask in masks.items()}
        AL, cache = forward(column_chunk(X, cols), params, net, training=True, masks=chunk_masks)
        Yb = Y[:, cols]
        loss += net.loss(cache.ZL, AL, Yb)
        chunk_grads = backward(AL, Yb, cache, params, plain, m, out=chunk_grads, m_cost=m)
        if grads is None:
            grads = out if out is not None and out.keys() == chunk_grads.keys() else {k: np.empty_like(g) for k, g in chunk_grads.items()}
            for k, g in chunk_grads.items():
                np.copyto(grads[k], g)
        else:
            for k, g in chunk_grads.items():
                grads[k] += g
    for l in range(1, net.L + 1):
        add_penalty_gradient(grads[f"W{l}"], params[f"W{l}"], net, m)
    return loss / m, penalty(params, net, m), grads


def chunks_of(m: int, chunk: int) -> int:
    """How many chunks accumulated_step splits m examples into."""
    return -(-m // chunk)

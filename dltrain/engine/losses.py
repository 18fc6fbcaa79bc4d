"""Output losses, computed from the logits ZL so that no log(0) or exp overflow can occur.

Each loss returns the SUM of per-example losses; callers divide by the example count, which lets
mini-batch epochs average per-example costs exactly. Paired with its output activation, each has
the fused output delta dZL = AL - Y (before the 1/m).
"""

import numpy as np


def binary_cross_entropy(ZL, AL, Y):
    """sum_i -[y log a + (1 - y) log(1 - a)] with a = sigmoid(z). ZL, AL, Y (1, m) -> float."""
    # -log(1 - a) = log(1 + e^z) and -log a = log(1 + e^-z), so the loss is
    #   max(z, 0) - y z + log1p(e^-|z|).
    # For y in {0, 1} the first two terms are computed exactly (z - z = 0, or -z, or z, or 0) and
    # neither is subtracted from the log term, so a confidently right example (y = 1, z = 37) gets
    # its tiny loss e^-37 to full relative precision; log(1 + e^z) - y z cancelled it to 0.
    # The exact part first: adding log1p to max(z, 0) before subtracting y z would cancel again.
    L = np.maximum(ZL, 0.0)
    L -= Y * ZL
    T = np.abs(ZL)
    np.negative(T, out=T)
    np.exp(T, out=T)
    np.log1p(T, out=T)
    L += T
    return float(L.sum())


def categorical_cross_entropy(ZL, AL, Y):
    """sum_i -sum_c y_c log softmax(z)_c. ZL, AL, Y (C, m) one-hot -> float."""
    # -log softmax(z)_c = (z_max - z_c) + log1p(s) with s = sum of e^(z_k - z_max) over the k other
    # than the argmax: for the predicted class the first term is exactly 0 and log1p keeps s's
    # relative precision, where log(1 + s) + z_max - z_c rounded a confident example's loss to 0.
    m = ZL.shape[1]
    top = ZL.argmax(axis=0)
    Zmax = ZL[top, np.arange(m)]  # (m,)
    E = ZL - Zmax
    np.exp(E, out=E)
    E[top, np.arange(m)] = 0.0  # exactly 1 before; a tie elsewhere still counts its 1
    log1p_s = np.log1p(E.sum(axis=0))
    D = Zmax - ZL  # (C, m), >= 0
    D += log1p_s
    D *= Y
    return float(D.sum())


def l2_penalty(params, weight_keys, lambd, m):
    """(lambd / 2m) * sum_l ||W[l]||_F^2 over weight arrays only (no biases, no gamma/beta)."""
    return lambd / (2.0 * m) * sum(float(np.vdot(params[k], params[k])) for k in weight_keys)


def l1_penalty(params, weight_keys, lambd, m):
    """(lambd / m) * sum_l sum |W[l]|."""
    return lambd / m * sum(float(np.abs(params[k]).sum()) for k in weight_keys)


LOSSES = {"sigmoid": binary_cross_entropy, "softmax": categorical_cross_entropy}

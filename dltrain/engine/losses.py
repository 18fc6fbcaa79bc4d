"""Output losses, computed from the logits ZL so that no log(0) or exp overflow can occur.

Each loss returns the SUM of per-example losses; callers divide by the example count, which lets
mini-batch epochs average per-example costs exactly. Paired with its output activation, each has
the fused output delta dZL = AL - Y (before the 1/m).
"""

import numpy as np


def binary_cross_entropy(ZL, AL, Y):
    """sum_i -[y log a + (1 - y) log(1 - a)] with a = sigmoid(z). ZL, AL, Y (1, m) -> float."""
    # -log(1 - a) = log(1 + e^z) and -log a = log(1 + e^z) - z, so the loss is log(1 + e^z) - y z;
    # logaddexp(0, z) computes log(1 + e^z) without overflow for any z, in one ufunc call.
    L = np.logaddexp(0.0, ZL)
    L -= Y * ZL
    return float(L.sum())


def categorical_cross_entropy(ZL, AL, Y):
    """sum_i -sum_c y_c log softmax(z)_c. ZL, AL, Y (C, m) one-hot -> float."""
    Zmax = ZL.max(axis=0, keepdims=True)
    log_sum = np.log(np.exp(ZL - Zmax).sum(axis=0, keepdims=True)) + Zmax
    return float(np.sum(Y * (log_sum - ZL)))


def l2_penalty(params, weight_keys, lambd, m):
    """(lambd / 2m) * sum_l ||W[l]||_F^2 over weight arrays only (no biases, no gamma/beta)."""
    return lambd / (2.0 * m) * sum(float(np.vdot(params[k], params[k])) for k in weight_keys)


def l1_penalty(params, weight_keys, lambd, m):
    """(lambd / m) * sum_l sum |W[l]|."""
    return lambd / m * sum(float(np.abs(params[k]).sum()) for k in weight_keys)


LOSSES = {"sigmoid": binary_cross_entropy, "softmax": categorical_cross_entropy}

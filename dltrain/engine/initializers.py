"""Weight initializers: (n_l, n_prev, rng, scale) -> W (n_l, n_prev).

`rng` is either numpy.random.Generator (modern mode) or numpy.random.RandomState (course mode);
both are drawn from through `standard_normal`, which gives the course's `randn` stream for a
RandomState.
"""

import numpy as np


def zeros(n, n_prev, rng, scale=1.0):
    """W = 0; the course's example of failing to break symmetry. Draws nothing."""
    return np.zeros((n, n_prev))


def random(n, n_prev, rng, scale=0.01):
    """W = randn * scale (the course's small random init, scale 0.01 by default)."""
    return rng.standard_normal((n, n_prev)) * scale


def he(n, n_prev, rng, scale=1.0):
    """W = randn * sqrt(2 / n_prev) * scale (He et al., for ReLU)."""
    return rng.standard_normal((n, n_prev)) * (np.sqrt(2.0 / n_prev) * scale)


def xavier(n, n_prev, rng, scale=1.0):
    """W = randn / sqrt(n_prev) * scale (the course's deep-net init)."""
    W = rng.standard_normal((n, n_prev)) / np.sqrt(n_prev)
    # Multiplying by exactly 1.0 would still round-trip, but skipping it keeps the course's
    # `randn / sqrt(n_prev)` expression literally, which is what reproduces its costs.
    return W if scale == 1.0 else W * scale


def glorot(n, n_prev, rng, scale=1.0):
    """W = randn * sqrt(2 / (n_prev + n)) * scale (Glorot/Bengio)."""
    return rng.standard_normal((n, n_prev)) * (np.sqrt(2.0 / (n_prev + n)) * scale)


INITIALIZERS = {"zeros": zeros, "random": random, "he": he, "xavier": xavier, "glorot": glorot}

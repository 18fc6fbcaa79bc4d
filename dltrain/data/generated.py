"""Datasets generated in code from a RandomState seed, draw for draw as the course made them."""

import numpy as np


def planar_flower(seed: int = 1, m: int = 400, a: float = 4.0):
    """The course's planar 'flower': X (2, m), labels (m,), drawn from RandomState(seed).

    For class j = 0, 1 in order: t = linspace(3.12 j, 3.12 (j + 1), N) + 0.2 randn(N),
    r = a sin(4t) + 0.2 randn(N), x = (r sin t, r cos t).
    """
    rs = np.random.RandomState(seed)
    N = m // 2
    X = np.zeros((m, 2))
    y = np.zeros(m, dtype=np.int64)
    for j in range(2):
        ix = slice(N * j, N * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + rs.randn(N) * 0.2
        r = a * np.sin(4 * t) + rs.randn(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X.T, y


def make_moons(n_samples: int, noise: float, seed: int):
    """scikit-learn's make_moons drawing from RandomState(seed): X (2, m), labels (m,)."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)), np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    return _shuffle_and_noise(X, y, noise, np.random.RandomState(seed))


def make_circles(n_samples: int, noise: float, factor: float, seed: int):
    """scikit-learn's make_circles drawing from RandomState(seed): X (2, m), labels (m,)."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    inner = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack(
        [np.append(np.cos(outer), np.cos(inner) * factor), np.append(np.sin(outer), np.sin(inner) * factor)]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    return _shuffle_and_noise(X, y, noise, np.random.RandomState(seed))


def _shuffle_and_noise(X, y, noise, rs):
    # scikit-learn shuffles an index array in place, then adds normal noise of X's (m, 2) shape.
    order = np.arange(X.shape[0])
    rs.shuffle(order)
    X, y = X[order], y[order]
    if noise:
        X = X + rs.normal(scale=noise, size=X.shape)
    return X.T, y


def load_planar(data):
    X, y = planar_flower(data.seed)
    return X, y, None, None, ["red", "blue"], None


def load_moons(data):
    X, y = make_moons(data.n_samples, data.noise, data.seed)
    X_test = y_test = None
    if data.test is not None:
        X_test, y_test = make_moons(data.test.n_samples, data.noise, data.test.seed)
    return X, y, X_test, y_test, ["0", "1"], None


def load_circles(data):
    X, y = make_circles(data.n_samples, data.noise, data.factor, data.seed)
    X_test = y_test = None
    if data.test is not None:
        X_test, y_test = make_circles(data.test.n_samples, data.noise, data.factor, data.test.seed)
    return X, y, X_test, y_test, ["0", "1"], None

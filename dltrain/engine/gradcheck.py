"""Gradient checking by two-sided differences, per named array and overall.

The same function checks a whole model (the `gradcheck` command) and every differentiable piece
in the tests: anything that can be written as J(arrays) -> float with analytic gradients keyed
like the arrays.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class ArrayCheck(NamedTuple):
    name: str
    relative_error: float  # ||g - g^|| / (||g|| + ||g^||) over the checked entries
    checked: int  # entries compared
    size: int  # entries in the array
    worst_index: tuple  # index of the largest |g - g^|
    worst_analytic: float
    worst_numeric: float


class GradcheckReport(NamedTuple):
    overall: float  # relative error over all checked entries of all arrays together
    arrays: list[ArrayCheck]

    @property
    def worst(self) -> ArrayCheck | None:
        """The array with the largest relative error: where to look for a bug."""
        return max(self.arrays, key=lambda a: a.relative_error, default=None)


# The course's reading of the difference: about 1e-7 is right, up to 1e-5 deserves a closer look,
# above that backprop is most likely wrong.
SUSPICIOUS_UP_TO = 1e-5


def verdict(difference: float, threshold: float) -> str:
    """'pass' below threshold, 'suspicious' up to SUSPICIOUS_UP_TO, 'fail' above it."""
    if difference < threshold:
        return "pass"
    return "suspicious" if difference <= SUSPICIOUS_UP_TO else "fail"


def relative_error(g: np.ndarray, g_hat: np.ndarray) -> float:
    """||g - g^||_2 / (||g||_2 + ||g^||_2), 0 when both are zero."""
    denom = np.linalg.norm(g) + np.linalg.norm(g_hat)
    return 0.0 if denom == 0 else float(np.linalg.norm(g - g_hat) / denom)


def gradient_check(
    cost: Callable[[], float],
    arrays: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    epsilon: float = 1e-7,
    max_per_array: int | None = None,
    rng: np.random.Generator | None = None,
) -> GradcheckReport:
    """Compare grads[k] with (J(theta + eps) - J(theta - eps)) / 2 eps for the entries of arrays[k].

    `cost()` evaluates J on the current contents of `arrays`, which are perturbed in place one
    entry at a time and restored exactly. With max_per_array, a sample of that many entries per
    array (drawn from rng) is checked instead of all of them.
    """
    checks, all_g, all_n = [], [], []
    for name, theta in arrays.items():
        flat = theta.reshape(-1)  # a view: perturbing it perturbs the array J reads
        if max_per_array is not None and flat.size > max_per_array:
            idx = np.sort(rng.choice(flat.size, size=max_per_array, replace=False))
        else:
            idx = np.arange(flat.size)
        numeric = np.empty(idx.size)
        for j, i in enumerate(idx):
            saved = flat[i]
            flat[i] = saved + epsilon
            J_plus = cost()
            flat[i] = saved - epsilon
            J_minus = cost()
            flat[i] = saved
            numeric[j] = (J_plus - J_minus) / (2 * epsilon)
        analytic = np.asarray(grads[name], dtype=np.float64).reshape(-1)[idx]
        worst = int(np.argmax(np.abs(analytic - numeric))) if idx.size else 0
        checks.append(
            ArrayCheck(
                name,
                relative_error(analytic, numeric),
                int(idx.size),
                int(flat.size),
                tuple(int(v) for v in np.unravel_index(idx[worst], theta.shape)) if idx.size else (),
                float(analytic[worst]) if idx.size else 0.0,
                float(numeric[worst]) if idx.size else 0.0,
            )
        )
        all_g.append(analytic)
        all_n.append(numeric)
    overall = relative_error(np.concatenate(all_g), np.concatenate(all_n)) if checks else 0.0
    return GradcheckReport(overall, checks)

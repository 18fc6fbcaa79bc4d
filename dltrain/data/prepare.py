"""From a loaded dataset to training arrays: dev split, normalization, targets for the output layer."""

from typing import NamedTuple

import numpy as np

from dltrain.errors import DltrainError


class Split(NamedTuple):
    X: np.ndarray  # (n_x, m)
    y: np.ndarray  # (m,) integer labels


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, carved) with round(fraction * count) examples of each class carved out, seeded."""
    carved = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = int(round(fraction * idx.size))
        carved.append(rng.permutation(idx)[:take])
    carved = np.sort(np.concatenate(carved)) if carved else np.array([], dtype=np.int64)
    keep = np.setdiff1d(np.arange(y.size), carved)
    return keep, carved


def normalization_stats(X_train: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """Statistics from the training split only: {} for none, /255 for scale, per-feature mean/std."""
    if kind == "scale":
        return {"scale": np.asarray(255.0)}
    if kind == "standardize":
        mean = X_train.mean(axis=1, keepdims=True)
        std = X_train.std(axis=1, keepdims=True)
        # A constant feature would divide by zero; leaving it centred at 0 is what a user expects.
        std[std == 0] = 1.0
        return {"mean": mean, "std": std}
    return {}


def apply_normalization(X: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Apply normalization_stats' result to X (n_x, m)."""
    if "scale" in stats:
        return X / stats["scale"]
    if "mean" in stats:
        return (X - stats["mean"]) / stats["std"]
    return X


def targets(y: np.ndarray, n_out: int) -> np.ndarray:
    """Labels (m,) -> Y (1, m) 0/1 for a sigmoid output, or one-hot (C, m) for softmax."""
    if n_out == 1:
        return y.reshape(1, -1).astype(np.float64)
    Y = np.zeros((n_out, y.size))
    Y[y, np.arange(y.size)] = 1.0
    return Y


def check_labels(y: np.ndarray, n_out: int, where: str) -> None:
    """Labels must be 0/1 for one sigmoid unit and 0..C-1 for C softmax units."""
    n_classes = 2 if n_out == 1 else n_out
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        kind = "0 or 1 for a sigmoid output" if n_out == 1 else f"0..{n_out - 1} for a {n_out}-unit softmax output"
        raise DltrainError(
            f"{where} labels must be {kind}, found {int(y[bad][0])} "
            f"(set model.layers[-1] and model.output_activation to match the {np.unique(y).size} classes)"
        )

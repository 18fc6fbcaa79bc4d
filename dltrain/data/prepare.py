"""From a loaded dataset to training arrays: dev/test splits, normalization, targets for the output layer."""

from typing import NamedTuple

import numpy as np

from dltrain.errors import DltrainError


class Split(NamedTuple):
    X: np.ndarray  # (n_x, m)
    y: np.ndarray  # (m,) integer labels


def stratified_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to their `counts` (C,), summing exactly to total.

    Largest remainder: each class gets floor(total * n_c / m), and the examples still missing go
    to the classes with the largest fractional parts (ties to the lower class index).
    """
    quota = total * counts / max(int(counts.sum()), 1)
    out = np.floor(quota).astype(np.int64)
    extra = total - int(out.sum())
    out[np.argsort(-(quota - out), kind="stable")[:extra]] += 1
    return out


def carve_splits(y: np.ndarray, sizes: dict[str, int], rng) -> dict[str, np.ndarray]:
    """Indices per split: `sizes` examples (stratified by class, seeded) for each named split, the rest 'train'.

    Each class is shuffled once with rng and its examples are dealt out to the splits in `sizes`
    order, then to train. y (m,) -> {name: sorted indices}, disjoint and covering 0..m-1.
    """
    classes, y_idx = np.unique(y, return_inverse=True)
    remaining = np.bincount(y_idx, minlength=classes.size)
    per_split = {}
    for name, total in sizes.items():
        per_split[name] = stratified_counts(remaining, total)
        remaining = remaining - per_split[name]
    out = {name: [] for name in [*sizes, "train"]}
    for c in range(classes.size):
        idx = rng.permutation(np.flatnonzero(y_idx == c))
        start = 0
        for name in sizes:
            out[name].append(idx[start : start + per_split[name][c]])
            start += per_split[name][c]
        out["train"].append(idx[start:])
    return {name: np.sort(np.concatenate(parts)).astype(np.int64) for name, parts in out.items()}


def split_sizes(m: int, dev_fraction: float, dev_size: int | None, test_fraction: float | None) -> dict[str, int]:
    """Examples to carve from the m training examples: {'test': n, 'dev': n}, each only when asked for.

    Fractions are shares of all m (so dev_fraction 0.01 with test_fraction 0.01 is a 98/1/1 split).
    """
    sizes = {}
    if test_fraction:
        sizes["test"] = _carved(round(test_fraction * m), m, f"data.test_fraction {test_fraction}")
    if dev_size is not None:
        sizes["dev"] = _carved(dev_size, m, f"data.dev_size {dev_size}")
    elif dev_fraction > 0:
        sizes["dev"] = _carved(round(dev_fraction * m), m, f"data.dev_fraction {dev_fraction}")
    if sum(sizes.values()) >= m:
        raise DltrainError(
            f"the dev and test splits ({' + '.join(f'{v} {k}' for k, v in sizes.items())}) leave no training examples "
            f"out of {m}; make data.dev_* / data.test_fraction smaller"
        )
    return sizes


def _carved(n: int, m: int, what: str) -> int:
    if n < 1:
        raise DltrainError(f"{what} of {m} training examples is 0 examples; ask for a larger share")
    return n


def split_dataset(ds, data, rng) -> dict[str, Split]:
    """The named splits training uses: train, then dev and test when the config or dataset has them.

    `ds` is a loaded Dataset, `data` the validated `data:` config; the test part is the dataset's
    own or carved by data.test_fraction, the dev part carved by data.dev_fraction or data.dev_size.
    """
    splits = {}
    for name, (part, idx) in split_parts(ds, data, rng).items():
        X, y = (ds.X_train, ds.y_train) if part == "train" else (ds.X_test, ds.y_test)
        splits[name] = Split(X, y) if idx is None else Split(X[:, idx], y[idx])
    return splits


def split_parts(ds, data, rng) -> dict[str, tuple[str, np.ndarray | None]]:
    """The named splits as index sets: {split: ('train' or 'test' part of ds, sorted indices or None for all)}."""
    if ds.X_test is not None and data.test_fraction:
        raise DltrainError(
            f"data.test_fraction is set but the {data.dataset} data already has a test part "
            f"({ds.X_test.shape[1]} examples); remove test_fraction, or for a file dataset set x_test and y_test to null"
        )
    sizes = split_sizes(ds.y_train.size, data.dev_fraction, data.dev_size, data.test_fraction)
    if not sizes:
        parts = {"train": ("train", None)}
    else:
        carved = carve_splits(ds.y_train, sizes, rng)
        parts = {k: ("train", carved[k]) for k in ("train", "dev", "test") if k in carved}
    if ds.X_test is not None:
        parts["test"] = ("test", None)
    return parts


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


def undo_normalization(X: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of apply_normalization: the raw feature values of X (n_x, m), e.g. to draw images."""
    if "scale" in stats:
        return X * stats["scale"]
    if "mean" in stats:
        return X * stats["std"] + stats["mean"]
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

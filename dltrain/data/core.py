"""Dataset container and the registry of loaders, one per `data.dataset` name."""

from typing import NamedTuple

import numpy as np

from dltrain.data.generated import load_circles, load_moons, load_planar
from dltrain.data.h5 import load_cat


class Dataset(NamedTuple):
    """X (n_x, m) float64 and integer labels (m,) in 0..C-1; the test part may be absent."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]
    image_shape: tuple[int, ...] | None  # (64, 64, 3) for images flattened in C order, else None


LOADERS = {"cat": load_cat, "planar": load_planar, "moons": load_moons, "circles": load_circles}


def load_dataset(data) -> Dataset:
    """Load the dataset a validated `data:` config section names."""
    return Dataset(*LOADERS[data.dataset](data))

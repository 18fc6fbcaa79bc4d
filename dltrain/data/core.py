"""Dataset container and the registry of loaders, one per `data.dataset` name."""

import hashlib
import json
from typing import NamedTuple

import numpy as np

from dltrain.data.files import load_file
from dltrain.data.generated import load_circles, load_moons, load_planar
from dltrain.data.h5 import load_cat, load_images, load_signs


class Dataset(NamedTuple):
    """X (n_x, m) float64 and integer labels (m,) in 0..C-1; the test part may be absent."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]
    image_shape: tuple[int, ...] | None  # (64, 64, 3) for images flattened in C order, else None


LOADERS = {
    "cat": load_cat,
    "signs": load_signs,
    "planar": load_planar,
    "moons": load_moons,
    "circles": load_circles,
    "file": load_file,
    "images": load_images,
}

# What `dltrain datasets list` shows: (name, the data: keys that select it, files looked for in DIR).
CATALOG = [
    ("cat", "dataset: cat, dir: DIR", ["train_catvnoncat.h5", "test_catvnoncat.h5"]),
    ("signs", "dataset: signs, dir: DIR", ["train_signs.h5", "test_signs.h5"]),
    ("football", "dataset: file, path: DIR/football.mat, x_train: X, y_train: y, x_test: Xval, y_test: yval", ["football.mat"]),
    ("planar", "dataset: planar (generated in code)", []),
    ("moons", "dataset: moons (generated in code)", []),
    ("circles", "dataset: circles (generated in code)", []),
    ("your arrays", "dataset: file, path: FILE.npz|.h5|.hdf5|.mat|.csv", []),
    ("your images", "dataset: images, path: OUT.h5 (made by dltrain datasets import)", []),
]


def load_dataset(data, known_classes: list[str] | None = None) -> Dataset:
    """Load the dataset a validated `data:` config section names. known_classes: those of a trained
    model the data will be evaluated with, so that a csv's text labels map to the same classes."""
    if known_classes is not None and data.dataset == "file":
        return Dataset(*load_file(data, known_classes))
    return Dataset(*LOADERS[data.dataset](data))


def fingerprint(ds: Dataset) -> str:
    """'sha256:…' of everything loaded (each array's dtype, shape and bytes; the class names): the
    data a run was trained on, recorded in summary.json and checked by resume and reproduce."""
    h = hashlib.sha256()
    for name, value in ds._asdict().items():
        h.update(name.encode())
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value)
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(value.data)
        else:
            h.update(json.dumps(value, default=str).encode())
    return "sha256:" + h.hexdigest()

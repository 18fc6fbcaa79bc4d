"""Dataset container and the registry of loaders, one per `data.dataset` name."""

import hashlib
import json
from typing import NamedTuple

import numpy as np

from dltrain.data.files import load_file
from dltrain.data.generated import load_circles, load_moons, load_planar
from dltrain.data.h5 import load_cat, load_images, load_signs
from dltrain.data.stream import H5Columns, stream_file, stream_images


class Dataset(NamedTuple):
    """X (n_x, m) and integer labels (m,) in 0..C-1; the test part may be absent.

    X holds the raw values: uint8 pixels stay uint8 (as the view x.reshape(m, -1).T of the stored
    images, so each example is contiguous), other features are float64. A streamed file's X is a
    data.stream.H5Columns (n_x, m) instead of an array: its .T is the H5Rows store that reads the rows.
    """

    X_train: "np.ndarray | H5Columns"
    y_train: np.ndarray
    X_test: "np.ndarray | H5Columns | None"
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


# Loaders that leave the features in the file (data.stream), for the datasets that can stream.
STREAM_LOADERS = {"file": stream_file, "images": stream_images}


def load_dataset(data, known_classes: list[str] | None = None, stream: bool = False) -> Dataset:
    """Load the dataset a validated `data:` config section names. known_classes: those of a trained
    model the data will be evaluated with, so that a csv's text labels map to the same classes.
    stream: leave the features in their .h5 file, read batch by batch (data.stream.wants_stream decides)."""
    loaders = STREAM_LOADERS if stream else LOADERS
    if known_classes is not None and data.dataset == "file":
        return Dataset(*loaders["file"](data, known_classes))
    return Dataset(*loaders[data.dataset](data))


def fingerprint(ds: Dataset, legacy: bool = False) -> str:
    """'sha256:…' of everything loaded (each array's dtype, shape and bytes; the class names): the
    data a run was trained on, recorded in summary.json and checked by resume and reproduce.

    Features held raw (uint8 images, see data.examples) are hashed as their example rows, without a
    copy: 'rows|u1(n_x, m)' then the bytes. legacy=True hashes them as dltrain 0.x did, converted to
    float64 (n_x, m) first, to recognize the data of runs recorded before (a full float copy)."""
    h = hashlib.sha256()
    for name, value in ds._asdict().items():
        h.update(name.encode())
        if isinstance(value, np.ndarray):
            if value.dtype != np.float64 and value.ndim == 2 and value.T.flags.c_contiguous and not legacy:
                h.update(f"rows{value.dtype.str}{value.shape}".encode())
                h.update(value.T.data)
                continue
            value = np.ascontiguousarray(value, dtype=np.float64 if legacy and name.startswith("X_") else None)
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(value.data)
        elif hasattr(value, "update_hash"):  # a streamed file's features, hashed in blocks (data.stream)
            value.update_hash(h)
        else:
            h.update(json.dumps(value, default=str).encode())
    return "sha256:" + h.hexdigest()

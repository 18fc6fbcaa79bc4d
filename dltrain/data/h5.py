"""The course's HDF5 image files, read with h5py (no pickle), checked key by key."""

from pathlib import Path

import h5py
import numpy as np

from dltrain.errors import DltrainError

COURSE_FILES_HINT = (
    "get the course files (train_catvnoncat.h5, test_catvnoncat.h5, train_signs.h5, test_signs.h5) "
    "and put them in that folder, or point data.dir at the folder that has them"
)


def read_h5_arrays(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Read the named datasets of an h5 file, or DltrainError naming the file and the keys it has."""
    if not path.is_file():
        raise DltrainError(f"data file {path} not found (looked in {path.parent.resolve()}); {COURSE_FILES_HINT}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DltrainError(
                    f"data file {path} has no {', '.join(missing)}; its keys are: {', '.join(sorted(f.keys())) or 'none'}"
                )
            out = {}
            for k in keys:
                node = f[k]
                if not isinstance(node, h5py.Dataset):
                    raise DltrainError(f"data file {path}: {k} is a group, expected an array")
                out[k] = node[()]
            return out
    except DltrainError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DltrainError(f"data file {path} is not a readable HDF5 file ({type(e).__name__}: {e}); re-download it") from None


def course_images(path: Path, prefix: str):
    """Course layout: {prefix}_set_x (m, h, w, c) uint8, {prefix}_set_y (m,) -> X (h*w*c, m) raw, y (m,), classes."""
    arrays = read_h5_arrays(path, [f"{prefix}_set_x", f"{prefix}_set_y", "list_classes"])
    x, y = arrays[f"{prefix}_set_x"], np.asarray(arrays[f"{prefix}_set_y"]).reshape(-1)
    if x.ndim != 4 or x.shape[0] != y.shape[0]:
        raise DltrainError(
            f"data file {path}: expected {prefix}_set_x of shape (m, height, width, channels) and {prefix}_set_y "
            f"of shape (m,), got {x.shape} and {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise DltrainError(f"data file {path}: {prefix}_set_y must hold integer labels, got dtype {y.dtype}")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(arrays["list_classes"]).reshape(-1)]
    # Flattening each (h, w, c) image in C order and stacking them as columns is the course's
    # x.reshape(m, -1).T.
    return x.reshape(x.shape[0], -1).T.astype(np.float64), y.astype(np.int64), classes, x.shape[1:]


def load_cat(data):
    folder = Path(data.dir)
    X, y, classes, shape = course_images(folder / "train_catvnoncat.h5", "train")
    X_test, y_test, _, _ = course_images(folder / "test_catvnoncat.h5", "test")
    return X, y, X_test, y_test, classes, tuple(shape)

"""HDF5 image files in the course layout: the cat and SIGNS files, and folders imported by dltrain."""

from pathlib import Path

import numpy as np

from dltrain.data.files import read_arrays
from dltrain.errors import DltrainError

COURSE_FILES_HINT = (
    "get the course files (train_catvnoncat.h5, test_catvnoncat.h5, train_signs.h5, test_signs.h5) "
    "and put them in that folder, or point data.dir at the folder that has them"
)
IMAGES_HINT = "check data.path (make one from a folder of images with `dltrain datasets import`)"


def course_images(path: Path, prefix: str, hint: str = COURSE_FILES_HINT, optional: bool = False):
    """Course layout: {prefix}_set_x (m, h, w, c) uint8, {prefix}_set_y (m,) -> X (h*w*c, m) raw (uint8 stays uint8, else float64), y (m,), classes, (h, w, c).

    With optional=True a file without {prefix}_set_x gives None instead of an error.
    """
    x_key, y_key = f"{prefix}_set_x", f"{prefix}_set_y"
    arrays = read_arrays(path, ["list_classes", *([] if optional else [x_key, y_key])], [x_key, y_key] if optional else [],
                         hint=hint)
    if optional and x_key not in arrays and y_key not in arrays:
        return None
    if x_key not in arrays or y_key not in arrays:
        raise DltrainError(f"data file {path} has only one of {x_key}, {y_key}; it needs both")
    x = arrays[x_key]
    y, classes = check_course_layout(path, prefix, x.shape, arrays[y_key], arrays["list_classes"])
    # Flattening each (h, w, c) image in C order and stacking them as columns is the course's
    # x.reshape(m, -1).T: a view, the pixels stay uint8 (raw) and each example contiguous.
    X = x.reshape(x.shape[0], -1).T
    return X if X.dtype == np.uint8 else X.astype(np.float64), y, classes, tuple(int(n) for n in x.shape[1:])


def check_course_layout(path: Path, prefix: str, x_shape: tuple, y, list_classes) -> tuple[np.ndarray, list[str]]:
    """{prefix}_set_x's shape (m, h, w, c), its labels and list_classes checked -> y (m,) int64 and the class names."""
    x_key, y_key = f"{prefix}_set_x", f"{prefix}_set_y"
    y = np.asarray(y).reshape(-1)
    if len(x_shape) != 4 or x_shape[0] != y.shape[0] or 0 in x_shape:
        raise DltrainError(
            f"data file {path}: expected {x_key} of shape (m, height, width, channels) and {y_key} "
            f"of shape (m,), got {tuple(x_shape)} and {y.shape}"
        )
    if x_shape[3] not in (1, 3, 4):
        raise DltrainError(f"data file {path}: {x_key} has {x_shape[3]} channels per pixel; images have 1 (grey), 3 (RGB) or 4 (RGBA)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DltrainError(f"data file {path}: {y_key} must hold integer labels, got dtype {y.dtype}")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(list_classes).reshape(-1)]
    bad = (y < 0) | (y >= len(classes))
    if bad.any():
        raise DltrainError(f"data file {path}: {y_key} has label {int(y[bad][0])} but list_classes names {len(classes)} classes")
    return y.astype(np.int64), classes


def with_test(train: tuple, test: tuple | None, test_path: Path):
    """course_images results of a train and an optional test part -> X, y, X_test, y_test, classes, image shape."""
    X, y, classes, shape = train
    if test is None:
        return X, y, None, None, classes, shape
    X_test, y_test, _, test_shape = test
    if test_shape != shape:
        raise DltrainError(f"data file {test_path}: test images are {test_shape} but the training images are {shape}")
    return X, y, X_test, y_test, classes, shape


def load_cat(data):
    train, test = Path(data.dir) / "train_catvnoncat.h5", Path(data.dir) / "test_catvnoncat.h5"
    return with_test(course_images(train, "train"), course_images(test, "test"), test)


def load_signs(data):
    train, test = Path(data.dir) / "train_signs.h5", Path(data.dir) / "test_signs.h5"
    return with_test(course_images(train, "train"), course_images(test, "test"), test)


def load_images(data, read=course_images):
    """dataset: images -> the train part of data.path, and the test part of data.test_path or data.path (if any).

    read: course_images, or data.stream.streamed_images, which leaves the features in the file."""
    path = Path(data.path)
    train = read(path, "train", IMAGES_HINT)
    if data.test_path is not None:
        return with_test(train, read(Path(data.test_path), "test", IMAGES_HINT), Path(data.test_path))
    return with_test(train, read(path, "test", IMAGES_HINT, optional=True), path)

"""`dltrain predict`: classes and probabilities for image files, array files or csv tables."""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain.commands.trained import load_trained, predictions, probabilities
from dltrain.data.files import READERS, csv_header, features, read_csv, read_single_array
from dltrain.data.images import IMAGE_SUFFIXES, read_image
from dltrain.errors import DltrainError


class Prediction(NamedTuple):
    input: str  # the image file, or FILE[i] for example i of an array file or row i of a csv table
    label: str  # the predicted class name
    probability: float  # the model's probability of that class


def predict(run_dir: Path, inputs: list[Path], key: str | None = None, layout: str = "rows") -> list[Prediction]:
    """Class and probability per image (resized to the run's image shape), per example of an array
    file (`key`, `layout`) or per row of a csv table.

    A csv table has a header row; every column is a feature, in file order, except the label column
    the run's config named (data.label_column), which is left out when the table has it.
    Inputs are raw values as in the training data (pixels 0-255); the run's saved normalization is applied.
    """
    t = load_trained(run_dir)
    names, columns = [], []
    for path in map(Path, inputs):
        is_array = path.suffix.lower() in READERS
        if path.suffix.lower() == ".csv":
            X = csv_features(path, getattr(t.cfg.data, "label_column", None), t.net.n_x)
            names += [f"{path}[{i}]" for i in range(X.shape[1])]
        elif is_array:
            X, _ = features(read_single_array(path, key), layout, str(path))
            names += [f"{path}[{i}]" for i in range(X.shape[1])]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            if t.image_shape is None:
                raise DltrainError(f"{t.run_dir} was not trained on images (no image shape in its model.h5); "
                                   "give an .npz/.h5/.mat file of feature arrays instead")
            X = read_image(path, t.image_shape).reshape(-1, 1).astype(np.float64)
            names.append(str(path))
        else:
            raise DltrainError(f"{path}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or an array file "
                               f"({', '.join(READERS)}) or a csv table (.csv)", 2)
        if X.shape[0] != t.net.n_x:
            raise DltrainError(f"{path}: {X.shape[0]} features per example but the model expects {t.net.n_x} "
                               f"(examples as columns, (n_x, m) = {X.shape}{', read with layout: ' + layout if is_array else ''})")
        columns.append(X)
    labels, prob = predictions(probabilities(t, np.concatenate(columns, axis=1)))
    return [Prediction(n, t.classes[c], float(p)) for n, c, p in zip(names, labels, prob)]


def csv_features(path: Path, label_column: str | None, n_x: int) -> np.ndarray:
    """X (n_x, m) from a csv table's rows, without the run's label column if the table has one."""
    header = csv_header(path)
    label = label_column if label_column in header else None
    X, _ = features(read_csv(path, label, hint="check the path").x, "rows", f"data file {path}")
    if X.shape[0] != n_x:
        names = [c for c in header if c != label]
        shown = ", ".join(map(repr, names[:8])) + (", ..." if len(names) > 8 else "")
        left_out = (f"; the run's label column {label!r} was left out" if label
                    else f"; a column named {label_column!r} (the run's label column) would be left out" if label_column else "")
        raise DltrainError(f"{path}: {X.shape[0]} feature columns ({shown}) but the model expects {n_x}{left_out}")
    return X

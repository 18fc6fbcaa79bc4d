"""`dltrain predict`: classes and probabilities for image files or array files."""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain.commands.trained import load_trained, predictions, probabilities
from dltrain.data.files import READERS, features, read_single_array
from dltrain.data.images import IMAGE_SUFFIXES, read_image
from dltrain.errors import DltrainError


class Prediction(NamedTuple):
    input: str  # the image file, or FILE[i] for example i of an array file
    label: str  # the predicted class name
    probability: float  # the model's probability of that class


def predict(run_dir: Path, inputs: list[Path], key: str | None = None, layout: str = "rows") -> list[Prediction]:
    """Class and probability per image (resized to the run's image shape) or per example of an array file.

    Inputs are raw values as in the training data (pixels 0-255); the run's saved normalization is applied.
    """
    t = load_trained(run_dir)
    names, columns = [], []
    for path in map(Path, inputs):
        is_array = path.suffix.lower() in READERS
        if is_array:
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
                               f"({', '.join(READERS)})", 2)
        if X.shape[0] != t.net.n_x:
            raise DltrainError(f"{path}: {X.shape[0]} features per example but the model expects {t.net.n_x} "
                               f"(examples as columns, (n_x, m) = {X.shape}{', read with layout: ' + layout if is_array else ''})")
        columns.append(X)
    labels, prob = predictions(probabilities(t, np.concatenate(columns, axis=1)))
    return [Prediction(n, t.classes[c], float(p)) for n, c, p in zip(names, labels, prob)]

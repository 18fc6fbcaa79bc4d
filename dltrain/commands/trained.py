"""A finished run's model: load it, its probabilities on raw inputs, its figures. What train, evaluate, predict and the Run handle share."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from dltrain.commands.build import MAX_CLASS_NAME, build_network
from dltrain.config import Config, read_yaml, validate_config
from dltrain.data.prepare import apply_normalization, undo_normalization
from dltrain.engine.model import (
    Network,
    evaluation_forward,
    ever_active,
    labels_from_output,
)
from dltrain.errors import DltrainError
from dltrain.evaluation import confusion_matrix, dead_unit_report

if TYPE_CHECKING:
    from dltrain import plots

from dltrain.runs import (
    existing_folder,
    is_run_dir,
    present,
    read_model,
)


class Trained(NamedTuple):
    """A finished run's model, ready to evaluate: its config, network, arrays and preprocessing."""

    run_dir: Path
    cfg: Config
    net: Network
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    normalization: dict[str, np.ndarray]
    classes: list[str]
    image_shape: tuple[int, ...] | None = None  # (h, w, c) of the images the run trained on


def run_config(run_dir: Path) -> Config:
    """The resolved config a run folder recorded in config.yaml, validated again."""
    run_dir = existing_folder(run_dir)
    if not is_run_dir(run_dir):
        raise DltrainError(f"{run_dir} is not a dltrain run folder (it has no summary.json)")
    path = run_dir / "config.yaml"
    return validate_config(read_yaml(path), source=str(path))


IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what an image can be drawn as


def expected_arrays(net: Network, normalize: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """The arrays model.h5 holds for this network, by group and name, with their shapes (see init_params)."""
    params, state, n_prev = {}, {}, net.n_x
    for l, spec in enumerate(net.layers, start=1):
        params[f"W{l}"] = (spec.units, n_prev)
        if spec.batch_norm:
            params[f"gamma{l}"] = params[f"beta{l}"] = state[f"mean{l}"] = state[f"var{l}"] = (spec.units, 1)
        else:
            params[f"b{l}"] = (spec.units, 1)
        n_prev = spec.units
    normalization = {"scale": {"scale": None}, "standardize": {"mean": (net.n_x, 1), "std": (net.n_x, 1)}}.get(normalize, {})
    return {"params": params, "state": state, "normalization": normalization}


def json_attribute(path: Path, saved: dict, name: str, default: str | None = None):
    text = saved.get(name, default)
    if not isinstance(text, str):
        raise DltrainError(f"{path}: the attribute {name} is missing")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise DltrainError(f"{path}: the attribute {name} is not valid JSON (or nests too deeply)") from None


def checked_classes(path: Path, classes, n_out: int) -> list[str]:
    n = 2 if n_out == 1 else n_out
    if not isinstance(classes, list) or len(classes) != n or not all(isinstance(c, str) for c in classes):
        got = f"{len(classes)} names" if isinstance(classes, list) else type(classes).__name__
        raise DltrainError(f"{path}: the attribute classes should be a list of {n} class names for the model's output, got {got}")
    if any(len(c) > MAX_CLASS_NAME for c in classes):
        raise DltrainError(f"{path}: the attribute classes has a name longer than {MAX_CLASS_NAME} characters")
    return classes


def checked_image_shape(path: Path, shape, n_x: int) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    if (not isinstance(shape, list) or len(shape) != 3 or not all(type(n) is int and n > 0 for n in shape)
            or shape[2] not in IMAGE_CHANNELS or shape[0] * shape[1] * shape[2] != n_x):
        raise DltrainError(f"{path}: the attribute image_shape should be null or [height, width, channels] with channels "
                           f"1, 3 or 4 and height * width * channels = {n_x} inputs, got {str(shape)[:100]}")
    return tuple(shape)


def checked_arrays(path: Path, saved: dict, net: Network, normalize: str, dtype) -> dict[str, dict[str, np.ndarray]]:
    """Every array of model.h5 against what its own config makes: present, of that shape, floating, finite."""
    out = {}
    for group, shapes in expected_arrays(net, normalize).items():
        arrays = saved.get(group, {})
        if not isinstance(arrays, dict):
            raise DltrainError(f"{path}: {group} should be a group of arrays")
        extra = sorted(set(arrays) - set(shapes))
        if extra:
            raise DltrainError(f"{path}: {group}/{extra[0]} is not an array of this model's config")
        out[group] = {}
        for key, shape in shapes.items():
            a = arrays.get(key)
            if a is None or (a.shape != shape if shape is not None else a.size != 1 or a.ndim > 2) or a.dtype.kind != "f":
                shape = shape if shape is not None else "() (one value)"
                got = "nothing" if a is None else f"{a.dtype} {a.shape}"
                raise DltrainError(f"{path}: {group}/{key} should be a float array of shape {shape} for the saved config, got {got}")
            if not np.isfinite(a).all():
                raise DltrainError(f"{path}: {group}/{key} holds non-finite values")
            out[group][key] = a.astype(dtype) if group != "normalization" else a.astype(np.float64)
    return out


def load_trained(run_dir: Path) -> Trained:
    """Reload model.h5 of a run folder, or DltrainError naming the file and the field that is wrong:
    its attributes and every array are checked against the model's own config."""
    run_dir = existing_folder(run_dir)
    path = run_dir / "model.h5"
    if not present(path):
        raise DltrainError(f"{run_dir} is not a finished dltrain run: it has no model.h5")
    saved = read_model(path)
    tree = json_attribute(path, saved, "config")
    if not isinstance(tree, dict):
        raise DltrainError(f"{path}: the attribute config should be a mapping of config keys, got {type(tree).__name__}")
    cfg = validate_config(tree, source=f"{path} (attribute config)")
    if type(cfg.model.layers[0]) is not int:
        raise DltrainError(f"{path}: the attribute config should record the input size as model.layers[0], got {cfg.model.layers[0]!r}")
    net = build_network(cfg, cfg.model.layers[0])
    classes = checked_classes(path, json_attribute(path, saved, "classes"), net.layers[-1].units)
    image_shape = checked_image_shape(path, json_attribute(path, saved, "image_shape", "null"), net.n_x)
    arrays = checked_arrays(path, saved, net, getattr(cfg.data, "normalize", "none"), np.dtype(cfg.dtype))
    return Trained(run_dir, cfg, net, arrays["params"], arrays["state"], arrays["normalization"], classes, image_shape)


def probabilities(model: Trained, X: np.ndarray) -> np.ndarray:
    """AL (n_L, m): the model's output for raw inputs X (n_x, m), valued as the training data were
    (pixels 0-255), with the run's saved normalization applied; dropout off, batch norm's running statistics."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != model.net.n_x:
        raise DltrainError(f"X has shape {X.shape} but the model expects (n_x, m) = ({model.net.n_x}, m): examples as columns")
    X = apply_normalization(X.astype(np.float64), model.normalization).astype(np.dtype(model.cfg.dtype))
    return evaluation_forward(X, model.params, model.net, model.state)[0]


def predictions(AL: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AL (n_L, m) -> predicted labels (m,) and the model's probability of each prediction (m,).

    One sigmoid unit gives P(class 1), so the predicted class's probability is p or 1 - p.
    """
    pred = labels_from_output(AL)
    prob = np.where(pred == 1, AL[0], 1.0 - AL[0]) if AL.shape[0] == 1 else AL.max(axis=0)
    return pred, prob


def dead_units(cfg: Config, X_train: np.ndarray, params: dict, net: Network, state: dict) -> list[dict]:
    """The diagnosis' dead_units: per ReLU/leaky ReLU hidden layer, its units that are positive for no
    example of the (normalized) training set X_train (n_x, m), in evaluation mode; [] for other activations."""
    activation = cfg.model.hidden_activation
    if activation not in ("relu", "leaky_relu"):
        return []
    return dead_unit_report(ever_active(X_train, params, net, state), activation)


MAX_GRID_IMAGES = 24
MAX_PLOT_CLASSES = 100  # a confusion matrix of more classes is unreadable and costly to draw; confusion.csv has them all
# The decision boundary evaluates the model on a grid of GRID_SIDE^2 points. Its work is bounded: the
# grid shrinks (to MIN_GRID_SIDE^2 at the least) until multiply-adds plus per-layer call overhead fit
# MAX_PLOT_WORK, and it is evaluated in chunks whose activations fit MAX_PLOT_BYTES; a network for
# which even the smallest grid is too costly gets no decision boundary (a 50,000-layer net of 2 units
# took 3.6 GB and crashed).
GRID_SIDE, MIN_GRID_SIDE = 300, 50
MAX_PLOT_WORK = 2 * 10**9
MAX_PLOT_BYTES = 256 * 2**20
LAYER_CALL_WORK = 10_000  # a layer's Python and NumPy call overhead, in multiply-adds


def plot_chunk(net: Network) -> int:
    """Examples evaluated at once for a figure: their activations (about four arrays of n_l values per
    example and layer) fit MAX_PLOT_BYTES."""
    units = sum(spec.units for spec in net.layers)
    return max(1, min(4096, MAX_PLOT_BYTES // (4 * 8 * units)))


def boundary_grid(net: Network) -> int | str:
    """The decision-boundary grid's side for this network, or why it gets no decision boundary."""
    sizes = [net.n_x, *(spec.units for spec in net.layers)]
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    chunk = plot_chunk(net)
    for side in range(GRID_SIDE, MIN_GRID_SIDE - 1, -10):
        points = side * side
        if points * macs + -(-points // chunk) * net.L * LAYER_CALL_WORK <= MAX_PLOT_WORK:
            return side
    return (f"decision_boundary.png not drawn: evaluating this {net.L}-layer model on even a {MIN_GRID_SIDE}x{MIN_GRID_SIDE} "
            f"grid would take more than {MAX_PLOT_WORK:.0e} multiply-adds")


def split_plots(model: Trained, split: str, X: np.ndarray, y: np.ndarray, kinds: tuple[str, ...],
                notes: list[str] | None = None) -> "dict[str, plots.Figure]":
    """The figures among `kinds` that apply to this model: decision_boundary (2-D inputs, unless the model
    is too costly to evaluate on a grid: why is appended to `notes`), misclassified (image inputs, most
    confident mistakes first), confusion_matrix (softmax output)."""
    from dltrain import plots  # matplotlib: 0.3 s that commands drawing nothing, and `dltrain train`'s loop, do without
    name, net, params, state = model.cfg.name, model.net, model.params, model.state
    out = {}
    chunk = plot_chunk(net)
    side = boundary_grid(net)
    if "decision_boundary" in kinds and net.n_x == 2 and isinstance(side, str) and notes is not None:
        notes.append(side)
    if "decision_boundary" in kinds and net.n_x == 2 and isinstance(side, int):
        out["decision_boundary"] = plots.decision_boundary(
            lambda G: labels_from_output(evaluation_forward(G.astype(X.dtype), params, net, state, chunk)[0]),
            X, y, f"{name}: decision boundary ({split})", model.classes, side,
        )
    if not {"misclassified", "confusion_matrix"} & set(kinds):
        return out
    pred, prob = predictions(evaluation_forward(X, params, net, state, chunk)[0])
    if "confusion_matrix" in kinds and 1 < net.layers[-1].units <= MAX_PLOT_CLASSES:
        counts = confusion_matrix(y, pred, len(model.classes))
        out["confusion_matrix"] = plots.confusion_heatmap(counts, model.classes, f"{name}: confusion matrix ({split})")
    wrong = np.flatnonzero(pred != y)
    if "misclassified" in kinds and model.image_shape is not None and wrong.size:
        # The most confident mistakes say the most about what the model gets wrong.
        wrong = wrong[np.argsort(-prob[wrong], kind="stable")][:MAX_GRID_IMAGES]
        raw = undo_normalization(X[:, wrong].astype(np.float64), model.normalization)
        images = np.clip(raw.T.reshape(-1, *model.image_shape) / 255.0, 0.0, 1.0)
        captions = [f"#{i} true {model.classes[y[i]]}\npred {model.classes[pred[i]]} ({prob[i]:.2f})" for i in wrong]
        title = f"{name}: {min(wrong.size, MAX_GRID_IMAGES)} most confident of {int((pred != y).sum())} misclassified ({split})"
        out["misclassified"] = plots.image_grid(images, captions, title)
    return out

"""A finished run's model: load it, its probabilities on raw inputs, its figures. What train, evaluate, predict and the Run handle share."""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain import plots
from dltrain.commands.build import build_network
from dltrain.config import Config, read_yaml, validate_config
from dltrain.data.prepare import apply_normalization, undo_normalization
from dltrain.engine.model import (
    Network,
    evaluation_forward,
    labels_from_output,
)
from dltrain.errors import DltrainError
from dltrain.evaluation import confusion_matrix
from dltrain.runs import (
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
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DltrainError(f"run folder {run_dir} not found" if not run_dir.exists() else f"{run_dir} is a file, not a run folder")
    if not is_run_dir(run_dir):
        raise DltrainError(f"{run_dir} is not a dltrain run folder (it has no summary.json)")
    path = run_dir / "config.yaml"
    return validate_config(read_yaml(path), source=str(path))


def load_trained(run_dir: Path) -> Trained:
    """Reload model.h5 of a run folder, or DltrainError saying what is missing."""
    run_dir = Path(run_dir)
    if not present(run_dir / "model.h5"):
        raise DltrainError(f"{run_dir} is not a finished dltrain run: it has no model.h5")
    saved = read_model(run_dir / "model.h5")
    try:
        tree = json.loads(saved["config"])
        classes = json.loads(saved["classes"])
        image_shape = json.loads(saved.get("image_shape", "null"))
    except (KeyError, ValueError):
        raise DltrainError(f"{run_dir / 'model.h5'} has no readable config or classes attribute") from None
    cfg = validate_config(tree, source=str(run_dir / "model.h5"))
    net = build_network(cfg, cfg.model.layers[0])
    dtype = np.dtype(cfg.dtype)
    params = {k: v.astype(dtype) for k, v in saved.get("params", {}).items()}
    state = {k: v.astype(dtype) for k, v in saved.get("state", {}).items()}
    expected = {f"W{l}": (s.units, n_prev) for l, (s, n_prev) in
                enumerate(zip(net.layers, [net.n_x] + [s.units for s in net.layers[:-1]]), start=1)}
    for key, shape in expected.items():
        if key not in params or params[key].shape != shape:
            got = params[key].shape if key in params else "nothing"
            raise DltrainError(f"{run_dir / 'model.h5'}: {key} should be {shape} for the saved config, got {got}")
    return Trained(run_dir, cfg, net, params, state, saved.get("normalization", {}), classes,
                   tuple(image_shape) if image_shape else None)


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


MAX_GRID_IMAGES = 24


def split_plots(model: Trained, split: str, X: np.ndarray, y: np.ndarray, kinds: tuple[str, ...]) -> dict[str, "plots.Figure"]:
    """The figures among `kinds` that apply to this model: decision_boundary (2-D inputs),
    misclassified (image inputs, most confident mistakes first), confusion_matrix (softmax output)."""
    name, net, params, state = model.cfg.name, model.net, model.params, model.state
    out = {}
    if "decision_boundary" in kinds and net.n_x == 2:
        out["decision_boundary"] = plots.decision_boundary(
            lambda G: labels_from_output(evaluation_forward(G.astype(X.dtype), params, net, state)[0]),
            X, y, f"{name}: decision boundary ({split})", model.classes,
        )
    if not {"misclassified", "confusion_matrix"} & set(kinds):
        return out
    pred, prob = predictions(evaluation_forward(X, params, net, state)[0])
    if "confusion_matrix" in kinds and net.layers[-1].units > 1:
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

"""Numbers a practitioner acts on: classification metrics from labels and the bias/variance diagnosis.

Pure NumPy on integer labels (m,) and on which hidden units were ever active; no config, no files.
Errors are fractions (0.11 is 11%).
"""

import numpy as np

# A gap of at least 2 percentage points between human and train error (avoidable bias) or between
# train and dev error (variance) is "high". It separates the course's four worked examples (gaps
# of 0.5-1 point are fine, 10-15 points are not) and is about the resolution of a few hundred
# dev examples, the course datasets' size.
GAP_THRESHOLD = 0.02

# The course's "basic recipe for machine learning": fix bias first, then variance.
RECIPES = {
    "bias": [
        "bigger network: more hidden units or more layers",
        "train longer, or with a better optimizer (momentum, RMSprop, Adam) and a tuned learning rate",
        "try a different architecture or hyperparameters",
    ],
    "variance": [
        "more training data (or data augmentation)",
        "regularization: L2 or dropout",
        "try a different architecture or hyperparameters",
    ],
}


# A ReLU layer with at least half its units dead (never positive on the training set) is reported:
# a healthy He-initialized net trained at a sane rate loses a few units (0-25% on moons), one trained
# at 10x that rate, or initialized with zeros, loses whole layers.
DEAD_SHARE = 0.5

# The course's remedies for units that never activate (course 2, weeks 1-2): they are pushed there by
# a bad initialization, unnormalized inputs or a step too large, and no gradient brings them back.
DEAD_RECIPE = [
    "He initialization (init.scheme: he, the default for relu), not zeros or a large init.scale",
    "normalized inputs (data.normalize: standardize, or scale for images)",
    "a lower optimizer.learning_rate: one step too large can push a unit negative on every example for good",
]
LEAKY_FIX = "or model.hidden_activation: leaky_relu, whose units keep a small gradient when negative"


def dead_unit_report(active: list[np.ndarray], activation: str) -> list[dict]:
    """Per hidden layer l = 1..L-1, how many of its units never activated: `active` holds each layer's
    (n_l,) bool of units positive for some training example (engine.model.ever_active)."""
    report = []
    for l, ever in enumerate(active, start=1):
        dead = int(ever.size - np.count_nonzero(ever))
        report.append({"layer": l, "activation": activation, "units": int(ever.size), "dead": dead, "share": dead / ever.size})
    return report


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class. y_true, y_pred (m,) in 0..C-1."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def _ratio(num: int, den: int) -> float:
    # An undefined ratio (no predictions or no examples of a class) counts as 0, as scikit-learn does.
    return float(num / den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], binary: bool) -> dict:
    """Confusion matrix and precision/recall/F1: of class 1 when binary, else per class by name.

    y_true, y_pred (m,) integer labels; `classes` names the labels 0..C-1.
    """
    counts = confusion_matrix(y_true, y_pred, len(classes))
    true_pos = np.diag(counts)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    per_class = {}
    for c, name in enumerate(classes):
        p, r = _ratio(true_pos[c], predicted[c]), _ratio(true_pos[c], actual[c])
        per_class[name] = {"precision": p, "recall": r, "f1": _f1(p, r), "support": int(actual[c])}
    report = {"confusion_matrix": counts.tolist()}
    if binary:
        positive = per_class[classes[1]]
        report.update(positive_class=classes[1], precision=positive["precision"], recall=positive["recall"], f1=positive["f1"])
    else:
        report["per_class"] = per_class
    return report


def diagnose(train_error: float, dev_error: float | None, human_error: float = 0.0, dev_split: str = "dev",
             dead_units: list[dict] | None = None) -> dict:
    """The course's bias/variance diagnosis from error fractions, and dead ReLU layers.

    avoidable bias = train error - human error, variance = dev error - train error; each is high
    when it is at least GAP_THRESHOLD. problem: "high bias", "high variance", "both", "neither",
    or "variance unknown" when there is no dev error and the bias is not high. `dev_split` names
    the split that played the dev set's part (it is "test" when a run has no dev set).

    dead_units: dead_unit_report of the ReLU/leaky ReLU hidden layers ([] for other activations,
    None when not measured). Layers with at least DEAD_SHARE of their units dead are `dead_layers`;
    their fixes come first in the recipe, and when a whole layer is dead they replace the bias
    recipe: the output no longer depends on the input, and a bigger network would only die too.
    """
    bias = train_error - human_error
    variance = None if dev_error is None else dev_error - train_error
    high_bias = bias >= GAP_THRESHOLD
    high_variance = variance is not None and variance >= GAP_THRESHOLD
    if high_bias and high_variance:
        problem = "both"
    elif high_bias:
        problem = "high bias"
    elif high_variance:
        problem = "high variance"
    else:
        problem = "neither" if variance is not None else "variance unknown"
    # dict.fromkeys: "different architecture" is in both recipes but is said once.
    dead_layers = [d["layer"] for d in dead_units or [] if d["share"] >= DEAD_SHARE]
    all_dead = any(d["dead"] == d["units"] for d in dead_units or [])
    fixes = []
    if dead_layers:
        leaky = any(d["activation"] == "relu" for d in dead_units if d["layer"] in dead_layers)
        fixes = DEAD_RECIPE + ([LEAKY_FIX] if leaky else [])
    bias_recipe = RECIPES["bias"] if high_bias and not all_dead else []
    recipe = list(dict.fromkeys(fixes + bias_recipe + (RECIPES["variance"] if high_variance else [])))
    return {
        "problem": problem,
        "human_error": human_error,
        "train_error": train_error,
        "dev_error": dev_error,
        "dev_split": dev_split if dev_error is not None else None,
        "avoidable_bias": bias,
        "variance": variance,
        "threshold": GAP_THRESHOLD,
        "recipe": recipe,
        "dead_units": dead_units,
        "dead_layers": dead_layers,
        "dead_share": DEAD_SHARE,
    }


def diagnosis_of(metrics: dict[str, dict], human_error: float, dead_units: list[dict] | None = None) -> dict:
    """Bias/variance diagnosis from split metrics; without a dev split, test plays the dev set's part."""
    dev_split = next((s for s in ("dev", "test") if s in metrics), None)
    dev_error = 1.0 - metrics[dev_split]["accuracy"] if dev_split else None
    return diagnose(1.0 - metrics["train"]["accuracy"], dev_error, human_error, dev_split or "dev", dead_units)

"""`dltrain evaluate`: re-evaluate a run's saved model, on its own data or other data; evaluation.json and plots."""

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from dltrain.commands.build import prepare_data
from dltrain.commands.trained import dead_units, load_trained, predictions, split_plots
from dltrain.config import Config, read_yaml, safe_tree, validate_config
from dltrain.data.files import READERS
from dltrain.engine.model import (
    evaluate as evaluate_model,
)
from dltrain.engine.model import (
    evaluation_forward,
)
from dltrain.errors import DltrainError
from dltrain.evaluation import classification_report, diagnosis_of
from dltrain.runs import (
    read_json_file,
    remove_evaluation_plots,
    write_evaluation_file,
    write_output,
)


def data_override(cfg: Config, spec: str) -> Config:
    """The run's config with its data section replaced or updated by `spec`.

    spec: a dataset name ("moons"), an inline YAML mapping ("{seed: 7}" or
    "{dataset: circles, noise: 0.1}"), a YAML file holding a `data:` section or the mapping
    itself, or a data file (.npz, .h5, .hdf5, .mat, .csv: `dataset: file, path: SPEC`). Keys for
    the same dataset update the run's data section; another dataset replaces it.
    """
    suffix = Path(spec).suffix.lower()
    if suffix in (".yaml", ".yml"):
        tree = read_yaml(Path(spec), "--data file")
        source = spec
    elif suffix in (*READERS, ".csv"):
        tree, source = {"dataset": "file", "path": spec}, "--data"
    else:
        try:
            tree = safe_tree(spec, "--data")
        except yaml.YAMLError:
            raise DltrainError(f"--data {spec!r}: not a dataset name, a YAML mapping or a .yaml file", 2) from None
        source = "--data"
    if isinstance(tree, str):
        tree = {"dataset": tree}
    if isinstance(tree, dict) and isinstance(tree.get("data"), dict):
        tree = tree["data"]
    if not isinstance(tree, dict):
        raise DltrainError(f"--data {spec!r}: expected a dataset name or a mapping of data keys", 2)
    resolved = cfg.model_dump(mode="json")
    same = tree.get("dataset", resolved["data"]["dataset"]) == resolved["data"]["dataset"]
    resolved["data"] = {**resolved["data"], **tree} if same else tree
    return validate_config(resolved, source=source)


def evaluate(
    run_dir: "str | Path",
    split: str = "all",
    data: str | None = None,
    human_error: float | None = None,
    errors_csv: Path | None = None,
) -> dict:
    """Re-evaluate a finished run's model and write evaluation.json (and evaluation plots) into its folder.

    The data is rebuilt as training built it (same dev split) and normalized with the statistics
    saved in model.h5; `data` replaces the data section (see data_override). Returns what
    evaluation.json holds: per split cost/accuracy/examples plus precision/recall/F1 (binary) or
    confusion matrix and per-class metrics (multi-class), the diagnosis, the plot files, and
    `warnings`: sentences about why the numbers may not be the run's (see data_warnings).
    """
    model = load_trained(run_dir)
    cfg = data_override(model.cfg, data) if data is not None else model.cfg
    try:
        prepared = prepare_data(cfg, trained=model)
    except DltrainError as e:
        # Missing data files and a model that does not fit the data (input size, classes) end here.
        raise DltrainError(f"cannot evaluate {model.run_dir / 'model.h5'} on this data: {e}", e.exit_code) from None
    if split != "all" and split not in prepared.X:
        raise DltrainError(f"{split}: this data has no {split} split (it has {', '.join(prepared.X)})")
    chosen = list(prepared.X) if split == "all" else [split]
    net, params, state = model.net, model.params, model.state
    binary = net.layers[-1].units == 1
    splits, mistakes = {}, []
    for name in prepared.X:
        X, Y, y = prepared.X[name], prepared.Y[name], prepared.labels[name]
        cost, accuracy = evaluate_model(X, Y, params, net, state)
        splits[name] = {"cost": cost, "accuracy": accuracy, "examples": int(X.shape[1])}
        if name not in chosen:
            continue
        pred, prob = predictions(evaluation_forward(X, params, net, state)[0])
        splits[name].update(classification_report(y, pred, model.classes, binary))
        mistakes += [(name, int(i), int(y[i]), int(pred[i]), float(prob[i])) for i in np.flatnonzero(pred != y)]
    human = cfg.data.human_error if human_error is None else human_error
    diagnosis = diagnosis_of(splits, human, dead_units(cfg, prepared.X["train"], params, net, state))
    report = {
        "run": str(model.run_dir),
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": cfg.data.model_dump(mode="json"),
        "splits": {name: splits[name] for name in chosen},
        "diagnosis": diagnosis,
        "warnings": data_warnings(model.run_dir, prepared.fingerprint) if data is None else [],
    }
    remove_evaluation_plots(model.run_dir)
    from dltrain.plots import png  # matplotlib: loaded only when drawing

    for name in chosen:
        figures = split_plots(model, name, prepared.X[name], prepared.labels[name],
                              ("decision_boundary", "misclassified", "confusion_matrix"))
        for kind, figure in figures.items():
            write_evaluation_file(model.run_dir, f"evaluation_{name}_{kind}.png", png(figure))
    if errors_csv is not None:
        write_output(errors_csv, errors_table(mistakes, model.classes))
        report["errors_file"] = str(errors_csv)
    report["plots"] = sorted(p.name for p in model.run_dir.glob("*.png"))
    write_evaluation_file(model.run_dir, "evaluation.json", json.dumps(report, indent=2) + "\n")
    return report


def data_warnings(run_dir: Path, fingerprint: str) -> list[str]:
    """A warning when the run's own data are not those it was trained on: their fingerprint differs
    from summary.json's data_fingerprint (reproduce and resume refuse such data; evaluate reports on them)."""
    summary = read_json_file(run_dir / "summary.json")
    recorded = summary.get("data_fingerprint") if isinstance(summary, dict) else None
    if not isinstance(recorded, str) or recorded == fingerprint:
        return []
    return [f"the data are not those {run_dir} was trained on: their fingerprint is {short_fingerprint(fingerprint)}, "
            f"summary.json records {short_fingerprint(recorded)} (data files changed or another dataset version is "
            "installed), so these metrics differ from the run's metrics.json"]


def short_fingerprint(fingerprint: str) -> str:
    """'sha256:' and the first 12 hex digits."""
    kind, _, digest = fingerprint.rpartition(":")
    return f"{kind}:{digest[:12]}" if kind else digest[:12]


def errors_table(mistakes: list[tuple], classes: list[str]) -> str:
    """CSV of misclassified examples: split, index (column in that split), true and predicted label
    and class name, and the model's probability of its (wrong) prediction."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["split", "index", "true_label", "true_class", "predicted_label", "predicted_class", "probability"])
    for split, i, true, pred, prob in mistakes:
        w.writerow([split, i, true, classes[true], pred, classes[pred], repr(prob)])
    return buf.getvalue()

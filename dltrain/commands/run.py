"""A run folder as a Python object: what `dltrain.train` returns and `dltrain.open_run` opens.

Every property reads the folder when asked (a run that is resumed or re-evaluated meanwhile is
seen as it is now); the folder stays the one source of truth, written only by RunWriter.
"""

from pathlib import Path

import numpy as np

from dltrain.commands import evaluate as evaluate_command
from dltrain.commands.build import prepare_data
from dltrain.commands.trained import load_trained, predictions, probabilities, run_config, split_plots
from dltrain.config import Config
from dltrain.errors import DltrainError
from dltrain.evaluation import classification_report
from dltrain.runs import existing_folder, is_run_dir, present, read_history, read_json_file, read_summary, run_curve

PLOTS = ("cost", "norms", "decision_boundary", "misclassified", "confusion_matrix")


def pandas_module(owner: str):
    """pandas, which is not a dependency: DltrainError naming the pip command where it is missing."""
    try:
        import pandas
    except ImportError:
        raise DltrainError(f"{owner}.to_pandas needs pandas: pip install pandas") from None
    return pandas


class History:
    """history.csv: one row per logged epoch.

    `history["cost"]` is a column as a float array (nan where the row has no value), `rows` the
    rows as dicts, `columns` their names, `to_pandas()` a DataFrame (pandas is not a dependency:
    install it to use this).
    """

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.columns = list(rows[0]) if rows else []

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"{column!r}: history.csv has the columns {', '.join(self.columns)}")
        return np.array([np.nan if row[column] is None else row[column] for row in self.rows], dtype=np.float64)

    def to_pandas(self):
        return pandas_module("History").DataFrame(self.rows, columns=self.columns)

    def __repr__(self) -> str:
        return f"History({len(self.rows)} rows: {', '.join(self.columns)})"


class Curve:
    """curve.csv: every epoch's learning_rate, cost, data_cost (and dev_cost, dev_accuracy where the
    dev set was evaluated), for a run from before curve.csv its logged epochs (history.csv).

    `curve["cost"]` is a column as an array (nan where the epoch has no value; `epoch` is int64),
    `columns` their names, `len(curve)` the number of epochs, `to_pandas()` a DataFrame.
    """

    def __init__(self, columns: dict[str, np.ndarray]):
        self._columns = columns
        self.columns = list(columns)

    def __len__(self) -> int:
        return len(self._columns["epoch"]) if self.columns else 0

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self._columns:
            raise KeyError(f"{column!r}: the curve has the columns {', '.join(self.columns)}")
        return self._columns[column]

    def to_pandas(self):
        return pandas_module("Curve").DataFrame(self._columns, columns=self.columns)

    def __repr__(self) -> str:
        return f"Curve({len(self)} epochs: {', '.join(self.columns)})"


class Run:
    """A dltrain run folder: `path`, `name`, `status`, `config` (the validated Config it recorded),
    `summary`, `metrics`, `history` (logged epochs), `curve` (every epoch); `evaluate`, `predict`
    and `plot` on its saved model."""

    def __init__(self, path: "str | Path"):
        path = existing_folder(path)
        if not is_run_dir(path):
            raise DltrainError(f"{path} is not a dltrain run folder (it has no summary.json)")
        self.path = path

    def __repr__(self) -> str:
        return f"Run('{self.path}', status={self.status!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def summary(self) -> dict:
        """summary.json: status, stop reason, epochs run, duration, seeds, versions, data fingerprint."""
        return read_summary(self.path)

    @property
    def status(self) -> str | None:
        """running, completed, interrupted, diverged or failed."""
        return self.summary.get("status")

    @property
    def metrics(self) -> dict:
        """metrics.json: per split cost, accuracy and examples, and the bias/variance diagnosis ({} before training ends)."""
        return read_json_file(self.path / "metrics.json") or {}

    @property
    def config(self) -> Config:
        return run_config(self.path)

    @property
    def history(self) -> History:
        path = self.path / "history.csv"
        return History(read_history(path) if present(path) else [])

    @property
    def curve(self) -> Curve:
        """Every epoch's learning rate and costs (curve.csv); the logged epochs for an older run."""
        return Curve(run_curve(self.path))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """AL (n_L, m): class probabilities for raw inputs X (n_x, m), examples as columns and valued
        as the training data were (pixels 0-255); one sigmoid unit gives P(class 1)."""
        return probabilities(load_trained(self.path), X)

    def evaluate(self, split: "str | np.ndarray" = "all", y: np.ndarray | None = None, *, data: str | None = None,
                 human_error: float | None = None) -> dict:
        """Evaluate the saved model.

        evaluate("test") (or "train", "dev", "all"): as `dltrain evaluate`, writing evaluation.json
        and its plots into the run folder and returning what it holds; `data` evaluates on other
        data (a dataset name, a YAML mapping of data keys, a YAML or data file).
        evaluate(X, y): raw inputs X (n_x, m) and labels y (m,) in 0..C-1; returns accuracy,
        examples, and precision/recall/F1 (binary) or the confusion matrix and per-class report,
        without writing anything.
        """
        if isinstance(split, str):
            return evaluate_command.evaluate(self.path, split, data, human_error)
        model = load_trained(self.path)
        y = np.asarray(y).reshape(-1)
        pred, _ = predictions(probabilities(model, split))
        if y.shape != pred.shape:
            raise DltrainError(f"y has {y.size} labels for {pred.size} examples")
        report = {"accuracy": float(np.mean(pred == y)), "examples": int(y.size)}
        report.update(classification_report(y, pred, model.classes, model.net.layers[-1].units == 1))
        return report

    def plot(self, kind: str = "cost", split: str | None = None):
        """A matplotlib Figure (a notebook shows it inline): cost (every epoch's costs, data cost
        beside the cost with a penalty, and the learning rate as steps), norms (with training.log_norms), decision_boundary (2-D inputs, train split by
        default), misclassified (images) or confusion_matrix (softmax), on the held-out split by default."""
        from dltrain import plots

        if kind not in PLOTS:
            raise DltrainError(f"plot {kind!r}: choose one of {', '.join(PLOTS)}")
        if kind in ("cost", "norms"):
            if kind == "norms":
                rows = self.history.rows
                L = len(self.config.model.layers) - 1
                if not rows or "norm_W1" not in rows[0]:
                    raise DltrainError(f"{self.path} logged no norms: train with training.log_norms: true")
                return plots.norm_curves(rows, L, f"{self.name}: weight and gradient norms")
            summary = self.summary
            marks = {"stopped": summary["stopped_epoch"], "best": summary["best_epoch"]} if "best_epoch" in summary else {}
            return plots.cost_curve(run_curve(self.path), f"{self.config.name}: cost", marks)
        model = load_trained(self.path)
        data = prepare_data(model.cfg, trained=model)
        if split is None:
            split = "train" if kind == "decision_boundary" else next(s for s in ("test", "dev", "train") if s in data.X)
        if split not in data.X:
            raise DltrainError(f"{split}: this run's data have no {split} split (they have {', '.join(data.X)})")
        notes: list[str] = []
        figures = split_plots(model, split, data.X[split], data.labels[split], (kind,), notes)
        if kind not in figures:
            why = {"decision_boundary": notes[0] if notes else "its inputs are not 2-D", "misclassified": "it has no image inputs or no mistakes",
                   "confusion_matrix": "it has a single sigmoid output"}[kind]
            raise DltrainError(f"no {kind} plot for {self.path}: {why}")
        return figures[kind]

    def resume(self, progress=True) -> "Run":
        """Continue this interrupted run from its last checkpoint (dltrain train --resume)."""
        from dltrain.commands.train import resume

        return resume(self.path, progress=progress)


def open_run(path: "str | Path") -> Run:
    """The run folder at `path` (a folder `dltrain train` wrote) as a Run."""
    return Run(path)

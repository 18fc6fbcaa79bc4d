"""`dltrain report`: one self-contained HTML page for a run folder, a search folder or a folder of runs."""

from pathlib import Path

from dltrain.commands.build import Prepared, prepare_data
from dltrain.commands.runs import run_table
from dltrain.commands.trained import Trained, load_trained, predictions
from dltrain.engine.model import evaluation_forward
from dltrain.errors import DltrainError
from dltrain.evaluation import classification_report
from dltrain.pages.folder import folder_page
from dltrain.pages.run import run_page
from dltrain.pages.search import search_page
from dltrain.runs import atomic_write, is_run_dir, list_run_dirs

REPORT = "report.html"


def class_metrics(model: Trained, data: Prepared) -> dict:
    """split -> class name -> precision, recall, F1, support of the model on each split of `data`."""
    out = {}
    for split, X in data.X.items():
        pred, _ = predictions(evaluation_forward(X, model.params, model.net, model.state)[0])
        out[split] = classification_report(data.labels[split], pred, model.classes, binary=False)["per_class"]
    return out


def write_run_report(run_dir: Path, out: Path | None = None, model: Trained | None = None, data: Prepared | None = None,
                     curves: tuple[str, list[str]] | None = None) -> Path:
    """Write a run's report; `model` and `data` (train has them in memory) give the per-class metrics,
    else the saved model is evaluated on its data rebuilt as training built them, when they are still there.
    `curves`: the curve figures, drawn already (pages.run.curve_figures)."""
    run_dir = Path(run_dir)
    note = ""
    if model is None and (run_dir / "model.h5").is_file():
        try:
            model = load_trained(run_dir)
            data = prepare_data(model.cfg, trained=model)
        except DltrainError as e:
            model, note = None, f"Not available: the model could not be evaluated on its data ({e})."
    elif model is None:
        note = "Not available: the run has no model.h5 (it did not complete)."
    metrics = class_metrics(model, data) if model is not None and data is not None else None
    target = Path(out) if out is not None else run_dir / REPORT
    atomic_write(target, run_page(run_dir, metrics, note, curves))
    return target


def report(path: "str | Path", out: "str | Path | None" = None) -> Path:
    """Write the HTML report of a run folder, a search folder or a folder of runs (`dltrain report`); -> its path.

    The page goes to PATH/report.html, or to `out`. It is one file with every figure inline and no
    reference to anything outside it. A folder of runs links to each run's report.html where the
    run has one (train writes it at the end of every completed run; `dltrain report RUN` makes it).
    """
    path = Path(path)
    if not path.is_dir():
        raise DltrainError(f"{path}: not found" if not path.exists() else f"{path} is a file; give a run, search or runs folder", 2)
    if is_run_dir(path):
        return write_run_report(path, out)
    target = Path(out) if out is not None else path / REPORT
    if (path / "search.json").is_file():
        html = search_page(path, target.parent)
    elif list_run_dirs(path):
        html = folder_page(path, run_table(path), target.parent)
    else:
        raise DltrainError(f"{path} holds no run folder (no summary.json), no search (no search.json) and no folder of runs", 2)
    atomic_write(target, html)
    return target

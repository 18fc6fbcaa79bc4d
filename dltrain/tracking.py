"""Copies of finished runs elsewhere (MLflow, TensorBoard), made from the run folder after the run ends.

Why after, from the folder, and not from inside the training loop: the folder is the source of
truth and already holds everything a tracker shows (history.csv per logged epoch, metrics.json,
the plots, the model); one code path serves `train`, `search` and a later `dltrain log`; the loop
(and with it every course reproduction) is untouched and never waits on a network; a store that
is down, slow or failing can only cost the copy, never the run. What is lost: MLflow shows a run
once it has finished, not while it trains (the progress display does that).

train and search call `track_run`, which turns any failure into one TrackingWarning; `dltrain log`
calls `upload_mlflow` / `write_tensorboard`, which raise DltrainError.
"""

import warnings
from pathlib import Path

from dltrain.data.files import one_line
from dltrain.errors import DltrainError, TrackingWarning
from dltrain.runs import is_run_dir, read_json_file

MLFLOW_EXTRA = "pip install 'dltrain[mlflow]'"
TENSORBOARD_EXTRA = "pip install 'dltrain[tensorboard]'"
FINAL = ("completed", "diverged")  # an interrupted run is copied when its resume finishes it


def is_search_dir(path: Path) -> bool:
    return (Path(path) / "search.json").is_file()


def upload_mlflow(path: Path, uri: str, experiment: str | None = None) -> tuple[str, list[str], bool]:
    """Log a run folder (or a search folder, its trials nested) to the MLflow store at `uri`.

    -> (MLflow run id, nested trial run ids, True if the run was already there). DltrainError on
    a missing extra or a store that fails, naming the store.
    """
    path = Path(path)
    if not (is_run_dir(path) or is_search_dir(path)):
        raise DltrainError(f"{path} is neither a dltrain run folder (summary.json) nor a search folder (search.json)")
    try:
        from dltrain.mlflow_runs import log_run, log_search
    except ImportError:
        raise DltrainError(f"logging to MLflow needs mlflow-skinny: {MLFLOW_EXTRA}") from None
    try:
        if is_search_dir(path):
            parent, children = log_search(path, uri, experiment)
            return parent, children, False
        run_id, existed = log_run(path, uri, experiment)
        return run_id, [], existed
    except DltrainError:
        raise
    except Exception as e:  # any failure of the store or the network: MLflow raises many kinds
        raise DltrainError(f"MLflow store {uri} failed: {type(e).__name__}: {one_line(e)}") from None


def write_tensorboard(path: Path) -> list[Path]:
    """TensorBoard event files in a run folder, or in every trial folder of a search folder; -> the files."""
    path = Path(path)
    try:
        from dltrain.tensorboard_events import write_events
    except ImportError:
        raise DltrainError(f"TensorBoard event files need the tensorboard package: {TENSORBOARD_EXTRA}") from None
    folders = sorted(p for p in (path / "trials").glob("trial-*") if is_run_dir(p)) if is_search_dir(path) else [path]
    if not is_search_dir(path) and not is_run_dir(path):
        raise DltrainError(f"{path} is neither a dltrain run folder (summary.json) nor a search folder (search.json)")
    return [write_events(p) for p in folders]


def track_run(path: Path, tracking, mlflow: str | None = None) -> None:
    """After train or search: the copies `tracking` (a TrackingConfig) asks for, `mlflow` overriding its URI.

    Only a finished folder (completed or diverged run, or a search) is copied. Never raises: a
    failure is one TrackingWarning saying how to upload later.
    """
    path = Path(path)
    if not is_search_dir(path) and (read_json_file(path / "summary.json") or {}).get("status") not in FINAL:
        return
    if tracking.tensorboard:
        try:
            write_tensorboard(path)
        except DltrainError as e:
            warnings.warn(f"{e}; the run is complete in {path}", TrackingWarning, stacklevel=2)
    uri = mlflow or tracking.mlflow
    if uri:
        try:
            upload_mlflow(path, uri, tracking.experiment)
        except DltrainError as e:
            warnings.warn(f"{e}; the run is complete in {path}: upload it later with: dltrain log {path} --mlflow {uri}",
                          TrackingWarning, stacklevel=2)

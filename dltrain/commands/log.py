"""`dltrain log`: copy a finished run folder (or a search folder) to MLflow and/or TensorBoard after the fact."""

from pathlib import Path
from typing import NamedTuple

from dltrain.config import read_yaml
from dltrain.errors import DltrainError
from dltrain.tracking import is_search_dir, upload_mlflow, write_tensorboard


class Logged(NamedTuple):
    path: Path
    mlflow_run: str | None  # the MLflow run id (a search's parent run)
    nested: list[str]  # a search's trial run ids, nested under mlflow_run
    already: bool  # the run was already in the store (logging is idempotent)
    event_files: list[Path]  # TensorBoard files written


def configured_store(path: Path) -> str | None:
    """tracking.mlflow of a run folder's config.yaml: the store a failed upload was meant for."""
    tree = read_yaml(path / "config.yaml") if (path / "config.yaml").is_file() else {}
    tracking = tree.get("tracking") if isinstance(tree, dict) else None
    return tracking.get("mlflow") if isinstance(tracking, dict) else None


def log(path: "str | Path", mlflow: str | None = None, experiment: str | None = None, tensorboard: bool = False) -> Logged:
    """Log a run folder to the MLflow store `mlflow` (default: its config's tracking.mlflow) and/or write its
    TensorBoard event file (`dltrain log`); a search folder logs as a parent run with its trials nested.

    Logging a run that is already in the store finds it again instead of copying it twice.
    """
    path = Path(getattr(path, "path", path))
    if not path.is_dir():
        raise DltrainError(f"{path} not found" if not path.exists() else f"{path} is a file, not a run or search folder")
    uri = mlflow or (None if is_search_dir(path) else configured_store(path))
    if not uri and not tensorboard:
        raise DltrainError("nothing to log to: give --mlflow URI (e.g. sqlite:///mlflow.db) and/or --tensorboard", 2)
    files = write_tensorboard(path) if tensorboard else []
    run_id, nested, already = upload_mlflow(path, uri, experiment) if uri else (None, [], False)
    return Logged(path, run_id, nested, already, files)

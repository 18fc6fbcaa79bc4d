"""The typer app: parse, call the same function a Python user calls (dltrain.commands), print with
rich, map DltrainError to its exit code.

Commands import what they need when they run, so `dltrain --help`, `runs` and `config show` start
without loading NumPy's engine, matplotlib or h5py.
"""

import errno
import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from dltrain import __version__
from dltrain.cli_subcommands import config_app, datasets_app
from dltrain.cliapp import SetOption, Typer, call, fail, load
from dltrain.errors import DltrainError, Interrupted
from dltrain.render import (
    CheckProgress,
    SearchProgress,
    err,
    gradcheck_json,
    out,
    print_diagnosis,
    print_gradcheck,
    print_leaderboard,
    print_logged,
    print_results,
    print_split,
    runs_table,
    tracking_warnings,
)

app = Typer(
    help="Config-driven deep-learning experiments on a NumPy engine (deeplearning.ai courses 1-2).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        out.print(f"dltrain {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Config-driven deep-learning experiments on a NumPy engine (deeplearning.ai courses 1-2)."""


app.add_typer(config_app, name="config")
app.add_typer(datasets_app, name="datasets")


MlflowOption = typer.Option(None, "--mlflow", help="Also log to this MLflow tracking URI (sqlite:///mlflow.db, http://host:5000) "
                                                   "once finished; needs pip install 'dltrain[mlflow]'.")


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML config file (not with --resume)."),
    set_: Optional[list[str]] = SetOption,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Write the run exactly here (must not exist)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Parent folder of new run folders (default: runs)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue this interrupted run folder from its last checkpoint, with its own config.yaml."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; still prints the run folder."),
    mlflow: Optional[str] = MlflowOption,
):
    """Train the model a config describes and write its run folder; the last line is the folder's path.

    Ctrl-C or SIGTERM stops after the current epoch with a checkpoint (exit 130); --resume continues it.
    """
    try:
        if (config is None) == (resume is None):
            raise DltrainError("give either a CONFIG file or --resume RUN_DIR", 2)
        if run_dir is not None and runs_dir is not None:
            raise DltrainError("--run-dir names the run folder itself: --runs-dir does not apply", 2)
        if resume is not None and (set_ or run_dir or runs_dir):
            raise DltrainError("--resume continues a run in its own folder with its own config.yaml: --set, --run-dir and --runs-dir do not apply", 2)
        if resume is not None and mlflow:
            raise DltrainError("--mlflow does not apply to --resume (the run keeps its config.yaml): dltrain log RUN --mlflow URI uploads it once finished", 2)
        from dltrain.commands import train as command
        from dltrain.commands.trained import run_config

        cfg = run_config(resume) if resume is not None else load(config, set_)
        if mlflow:
            cfg.tracking.mlflow = mlflow  # recorded in config.yaml: the store this run was meant for
    except DltrainError as e:
        fail(e)
    with tracking_warnings():
        if resume is not None:
            run = call(lambda: command.resume(resume, progress=not quiet, figures_process=True))
        else:
            run = call(lambda: command.train(cfg, runs_dir=runs_dir or Path("runs"), run_dir=run_dir, progress=not quiet,
                                             figures_process=True))
    print_results(cfg, run, quiet)
    out.print(str(run.path), soft_wrap=True, markup=False)


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):  # nan > 0 is False, but so is every comparison with nan
        raise typer.BadParameter(f"must be a finite number > 0, got {value:g}")
    return value


@app.command()
def gradcheck(
    config: Path = typer.Argument(..., help="YAML config file."),
    set_: Optional[list[str]] = SetOption,
    examples: int = typer.Option(10, "--examples", min=1, help="Training examples to compute the cost on: a subset drawn with the config's seed."),
    epsilon: float = typer.Option(1e-7, "--epsilon", callback=_positive, help="Step of the two-sided differences."),
    threshold: float = typer.Option(2e-7, "--threshold", callback=_positive, help="Pass below this overall relative difference."),
    after_epochs: int = typer.Option(0, "--after-epochs", min=0, help="Train this many epochs first, as `train` would."),
    max_per_param: Optional[int] = typer.Option(None, "--max-per-param", min=1, help="Check a seeded sample of this many entries per array (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Compare backprop's gradients with numeric ones for the model a config describes.

    Exit code 0 when the verdict is pass, 1 when it is suspicious or fail (or on a data error).
    """
    progress = CheckProgress(not as_json)
    try:
        from dltrain.commands.gradcheck import gradcheck as command

        cfg = load(config, set_)
        outcome = command(cfg, examples, epsilon, threshold, after_epochs, max_per_param, progress)
    except DltrainError as e:
        progress.close()
        fail(e)
    progress.close()
    if as_json:
        out.print(json.dumps(gradcheck_json(cfg.name, outcome), indent=2), soft_wrap=True)
    else:
        print_gradcheck(cfg.name, outcome)
    if outcome.verdict != "pass":
        raise typer.Exit(1)


class Metric(str, Enum):
    dev_accuracy = "dev_accuracy"
    dev_cost = "dev_cost"


@app.command()
def search(
    config: Path = typer.Argument(..., help="Base YAML config; it needs a dev set (data.dev_fraction > 0)."),
    space: Path = typer.Option(..., "--space", help="YAML file of config key path -> distribution, e.g. 'optimizer.learning_rate: log(1e-4, 1)'."),
    trials: int = typer.Option(20, "--trials", min=1, help="Trials in all, split evenly over the rounds."),
    rounds: int = typer.Option(1, "--rounds", min=1, help="Coarse to fine: each later round samples within the span of the previous round's best 25%."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Trials at once in local processes (default: the number of cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run the trials on a Dask cluster instead: its scheduler's tcp://HOST:PORT."),
    metric: Metric = typer.Option(Metric.dev_accuracy, "--metric", help="What ranks the trials (the other dev metric breaks ties)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Search folder (default runs/<name>-search); rerunning into it resumes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seeds the sampling of the values (each trial keeps the config's own seed)."),
    set_: Optional[list[str]] = SetOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; still prints the search folder."),
    mlflow: Optional[str] = MlflowOption,
):
    """Random hyperparameter search on each value's scale, coarse to fine, in parallel; the last line is the search folder.

    Each trial is a run folder under OUT/trials; OUT gets leaderboard.csv, best.yaml and search.png.
    Rerunning the same command skips the finished trials.
    """
    from dltrain.commands.search import search as command

    progress = SearchProgress(trials, metric.value, quiet)
    try:
        with tracking_warnings():
            outcome = command(config, space, out_dir, trials=trials, rounds=rounds, workers=workers, scheduler=scheduler,
                              metric=metric.value, seed=seed, overrides=set_ or [], progress=progress, mlflow=mlflow)
    except (Interrupted, KeyboardInterrupt) as e:
        progress.close()
        where = str(e) if isinstance(e, Interrupted) else "interrupted: the finished trials are kept in the search folder; rerun the same command to resume"
        err.print(where, soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    except DltrainError as e:
        progress.close()
        fail(e)
    progress.close()
    folder = outcome.out
    if not quiet:
        print_leaderboard(outcome, metric.value, progress.reused)
    out.print(str(folder), soft_wrap=True, markup=False)


class Split(str, Enum):
    train = "train"
    dev = "dev"
    test = "test"
    all = "all"


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A finished run folder (it has model.h5)."),
    split: Split = typer.Option(Split.all, "--split", help="Which split to report."),
    data: Optional[str] = typer.Option(None, "--data", help="Other data: a dataset name, an inline YAML mapping of data keys, or a YAML file."),
    human_error: Optional[float] = typer.Option(None, "--human-error", min=0.0, max=0.999,
                                                help="Human-level error as a fraction (default: the run's data.human_error)."),
    errors: Optional[Path] = typer.Option(None, "--errors", help="Write the misclassified examples to this CSV file."),
    as_json: bool = typer.Option(False, "--json", help="Print evaluation.json instead of tables."),
):
    """Re-evaluate a run's saved model (no dropout, batch-norm running statistics) and write evaluation.json."""
    try:
        from dltrain.commands.evaluate import evaluate as command

        report = command(run_dir, split.value, data, human_error, errors)
    except DltrainError as e:
        fail(e)
    for line in report["warnings"]:  # on stderr, so --json's output stays JSON
        err.print(Text.assemble(("warning:", "yellow"), f" {line}"), soft_wrap=True)
    if as_json:
        out.print(json.dumps(report, indent=2), soft_wrap=True, markup=False)
        return
    for name, m in report["splits"].items():
        print_split(name, m)
    print_diagnosis(report["diagnosis"])
    if "errors_file" in report:
        out.print(f"misclassified examples: {report['errors_file']}", soft_wrap=True, markup=False)
    out.print(f"plots: {', '.join(report['plots']) or 'none'}", soft_wrap=True, markup=False)
    out.print(str(Path(report["run"]) / "evaluation.json"), soft_wrap=True, markup=False)


@app.command()
def runs(
    runs_dir: Path = typer.Argument(Path("runs"), help="Folder holding run folders, or a search folder (lists its trials)."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="COLUMN", help="Sort by a column, e.g. dev_accuracy (accuracies best first)."),
    columns: Optional[str] = typer.Option(None, "--columns", metavar="A,B,...",
                                          help="Show these columns, e.g. run,optimizer,dev_accuracy (default: all that fit the terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
):
    """A table of the runs in a folder (a search folder: its trials): data, key hyperparameters, epochs, accuracies, duration, status."""
    try:
        from dltrain.commands.runs import run_columns, run_table, runs_folder

        runs_dir = runs_folder(runs_dir)
        rows = run_table(runs_dir, sort, columns)
        chosen = run_columns(columns)
    except DltrainError as e:
        fail(e)
    if as_json:
        out.print(json.dumps(rows, indent=2), soft_wrap=True, markup=False)
        return
    # A terminal shows the columns that fit (all of --columns, wrapped); piped, every column is printed whole.
    width = out.width if out.is_terminal else None
    table, hidden, needed = runs_table(rows, chosen, f"{len(rows)} runs in {runs_dir}", width, choose=columns is None)
    (out if out.is_terminal else Console(highlight=False, width=max(needed, 80))).print(table)
    if hidden:
        out.print(f"not shown (too narrow): {', '.join(hidden)}; choose with --columns", style="dim", markup=False)


class CompareMetric(str, Enum):
    cost = "cost"
    dev_cost = "dev_cost"
    dev_accuracy = "dev_accuracy"


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders to compare."),
    out_file: Path = typer.Option(..., "--out", metavar="FILE", help="The figure to write: .png, .svg or .pdf."),
    metric: CompareMetric = typer.Option(CompareMetric.cost, "--metric", help="What to draw: cost (train solid, dev dashed), dev_cost or dev_accuracy."),
    log: bool = typer.Option(False, "--log", help="Log-scaled y axis."),
    epochs: Optional[str] = typer.Option(None, "--epochs", metavar="A:B", help="Draw epochs A to B only (100:500, 100: or :500)."),
):
    """Overlay a history column of several runs (cost: train solid, dev dashed), one color per run, in one figure."""
    try:
        from dltrain.commands.runs import compare_runs

        path = compare_runs(run_dirs, out_file, metric.value, log, epochs)
    except DltrainError as e:
        fail(e)
    out.print(str(path), soft_wrap=True, markup=False)


@app.command()
def reproduce(
    run_dir: Path = typer.Argument(..., help="A completed run folder."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Parent folder of the new run (default: the run's own parent)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; still prints the verdict and the new folder."),
):
    """Re-run a completed run from its saved config into a new folder and check it is bit-identical.

    The data must have the fingerprint recorded at training time. Prints "identical" (exit 0) or the
    first difference: file, epoch or key, array (exit 1); the last line is the new folder's path.
    """
    from dltrain.commands.reproduce import reproduce as command
    from dltrain.commands.trained import run_config

    try:
        run_config(run_dir)  # a folder that is no run is reported before anything else
    except DltrainError as e:
        fail(e)
    result = call(lambda: command(run_dir, runs_dir=runs_dir, progress=not quiet))
    if result.difference is None:
        out.print(f"identical: {result.run.path} reproduces {run_dir} (history.csv without seconds, curve.csv, metrics.json, model.h5)",
                  soft_wrap=True, markup=False)
    else:
        out.print(f"different: {result.difference}", soft_wrap=True, markup=False)
    out.print(str(result.run.path), soft_wrap=True, markup=False)
    if result.difference is not None:
        raise typer.Exit(1)


class Layout(str, Enum):
    rows = "rows"
    columns = "columns"


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A finished run folder (it has model.h5)."),
    inputs: list[Path] = typer.Argument(..., help="Image files (.jpg/.jpeg/.png), array files (.npz/.h5/.hdf5/.mat) "
                                        "or csv tables with a header row (.csv; the run's label column is left out)."),
    key: Optional[str] = typer.Option(None, "--key", help="Array to read from array files (default: the file's only array)."),
    layout: Layout = typer.Option(Layout.rows, "--layout", help="Array files: rows (one example per row) or columns (n_x, m)."),
):
    """Print INPUT, predicted class and its probability (tab-separated), one line per image or example."""
    try:
        from dltrain.commands.predict import predict as command

        predictions = command(run_dir, inputs, key, layout.value)
    except DltrainError as e:
        fail(e)
    from dltrain.render import escape_field

    for p in predictions:
        # Real tabs (rich would expand them); control characters in names escaped, one line per prediction.
        typer.echo(f"{escape_field(p.input)}\t{escape_field(p.label)}\t{p.probability:.4f}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A finished run folder (it has model.h5)."),
    format: str = typer.Option("onnx", "--format", help="The file format: onnx."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="The file to write (default: RUN/model.onnx)."),
):
    """Write the run's model as an ONNX file (input X: rows of raw values; outputs probabilities, label); needs pip install 'dltrain[export]'."""
    try:
        from dltrain.commands.export import export as command

        result = command(run_dir, format, out_file)
    except DltrainError as e:
        fail(e)
    err.print(f"{result.format}: input X (m, {result.n_x}) {result.element_type}; outputs {', '.join(result.outputs)}", soft_wrap=True, markup=False)
    out.print(str(result.out), soft_wrap=True, markup=False)


@app.command()
def log(
    path: Path = typer.Argument(..., help="A finished run folder, or a search folder (its trials are nested under it)."),
    mlflow: Optional[str] = typer.Option(None, "--mlflow", help="MLflow tracking URI (default: the run's tracking.mlflow)."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment (default: the config's name)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Write TensorBoard event files into the run folder(s)."),
):
    """Copy a finished run (or search) to MLflow and/or TensorBoard after the fact; the last line is the MLflow run id."""
    try:
        from dltrain.commands.log import log as command

        result = command(path, mlflow, experiment, tensorboard)
    except DltrainError as e:
        fail(e)
    print_logged(result)


@app.command()
def report(
    path: Path = typer.Argument(..., help="A run folder, a search folder, or a folder of run folders."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the page here instead of PATH/report.html."),
):
    """Write one self-contained HTML page (figures inline, no network) for a run, a search or a folder of runs; prints its path."""
    try:
        from dltrain.commands.report import report as command

        written = command(path, out_file)
    except DltrainError as e:
        fail(e)
    out.print(str(written), soft_wrap=True, markup=False)


def main():
    try:
        app(prog_name="dltrain")
    except KeyboardInterrupt:  # Ctrl-C while typer or the libraries are still starting up
        err.print("aborted", soft_wrap=True)
        sys.exit(130)
    except OSError as e:
        # Run folders and data files report their own errors (DltrainError): what reaches here is
        # the output itself, e.g. redirected to a full disk. What the command did stands.
        if e.errno not in OUTPUT_ERRORS:
            raise
        err.print(f"cannot write {e.filename or 'the output'}: {e.strerror}", soft_wrap=True, markup=False)
        sys.exit(1)


OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


if __name__ == "__main__":
    sys.exit(main())

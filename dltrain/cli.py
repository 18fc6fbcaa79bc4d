"""The typer app: parse, call one workflow, print with rich, map DltrainError to its exit code."""

import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dltrain import workflows
from dltrain.config import Config, load_config, load_space, load_tree, validate_config
from dltrain.data.images import import_image_folder
from dltrain.errors import DltrainError, Interrupted

app = typer.Typer(
    help="Config-driven deep-learning experiments on a NumPy engine (deeplearning.ai courses 1-2).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect configs: the resolved values and the JSON Schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")
datasets_app = typer.Typer(help="The datasets: what is available, what a data section loads, image-folder import.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SetOption = typer.Option(None, "--set", help="Override a config key: --set optimizer.learning_rate=0.01 (repeatable).")


def fail(e: DltrainError) -> None:
    for line in str(e).splitlines():
        # Text, not markup: the message quotes user input ("[/bold].yaml"), which must print as given.
        err.print(Text.assemble(("error:", "red"), f" {line}"), soft_wrap=True)
    raise typer.Exit(e.exit_code)


class EpochProgress:
    """A rich progress bar on a terminal, plain lines at logged epochs otherwise; redraws at most 10x/s."""

    def __init__(self, epochs: int, quiet: bool):
        self.quiet = quiet
        self.live = not quiet and out.is_terminal
        self.bar = None
        self._drawn = 0.0
        if self.live:
            self.bar = Progress(
                TextColumn("epoch {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("cost {task.fields[cost]:.6f}"),
                TimeElapsedColumn(),
                console=out,
                transient=True,
                # Redrawn by __call__ as epochs end (at most 10x/s); the background redraw only keeps the
                # elapsed time ticking, and at rich's default 10x/s its thread took a core's time slices
                # from the BLAS threads of a 2-core machine.
                refresh_per_second=1,
            )
            self.task = self.bar.add_task("train", total=epochs, cost=float("nan"))
            self.bar.start()

    def __call__(self, r, row):
        if self.live:
            now = time.monotonic()
            if now - self._drawn > 0.1:
                self.bar.update(self.task, completed=r.epoch + 1, cost=r.cost, refresh=True)
                self._drawn = now
        elif row is not None and not self.quiet:
            dev = f"  dev_cost {row['dev_cost']:.6f}  dev_accuracy {row['dev_accuracy']:.4f}" if "dev_cost" in row else ""
            out.print(f"epoch {r.epoch:>6}  cost {r.cost:.6f}  lr {r.learning_rate:.6g}{dev}")

    def close(self):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _load(config: Path, overrides: list[str] | None) -> Config:
    return load_config(config, overrides or [])


@contextmanager
def stop_on_signals():
    """Yield an event that SIGINT (Ctrl-C) and SIGTERM set, so training stops cleanly after the
    current epoch; a second signal aborts at once. The previous handlers are restored on exit."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err.print(f"{signal.Signals(signum).name}: stopping after this epoch (again to abort at once)", soft_wrap=True)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield stop
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _train(run, epochs: int, quiet: bool):
    """Call run(progress, interrupt) with a progress display and signal handling; map failures to exit codes."""
    progress = EpochProgress(epochs, quiet)
    try:
        with stop_on_signals() as interrupt:
            try:
                return run(progress, interrupt)
            finally:
                progress.close()
    except Interrupted as e:
        err.print(str(e), soft_wrap=True, markup=False)
        if e.run_dir is not None:  # the last line is the run folder, as after a finished run
            out.print(str(e.run_dir), soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # a second Ctrl-C before or after the training loop
        err.print("aborted", soft_wrap=True)
        raise typer.Exit(130) from None
    except DltrainError as e:
        fail(e)
    except MemoryError:
        fail(DltrainError("out of memory: use fewer or smaller layers, a smaller training.batch_size, or less data"))


def _results(cfg: Config, outcome, quiet: bool) -> None:
    if not quiet:
        table = Table(title=f"{cfg.name}: {outcome.summary['epochs_run']} epochs in {outcome.summary['duration_seconds']:.1f}s")
        for col in ("split", "examples", "cost", "accuracy"):
            table.add_column(col, justify="right" if col != "split" else "left")
        for split, m in outcome.metrics.items():
            if split != "diagnosis":
                table.add_row(split, str(m["examples"]), f"{m['cost']:.6f}", f"{m['accuracy']:.4f}")
        out.print(table)
        print_diagnosis(outcome.metrics["diagnosis"])


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
        cfg = workflows.run_config(resume) if resume is not None else _load(config, set_)
    except DltrainError as e:
        fail(e)
    if resume is not None:
        outcome = _train(lambda p, i: workflows.resume(resume, progress=p, interrupt=i), cfg.training.epochs, quiet)
    else:
        outcome = _train(lambda p, i: workflows.train(cfg, runs_dir=runs_dir or Path("runs"), run_dir=run_dir, progress=p, interrupt=i),
                         cfg.training.epochs, quiet)
    _results(cfg, outcome, quiet)
    out.print(str(outcome.run_dir), soft_wrap=True, markup=False)


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):  # nan > 0 is False, but so is every comparison with nan
        raise typer.BadParameter(f"must be a finite number > 0, got {value:g}")
    return value


class CheckProgress:
    """A transient bar of cost evaluations on a terminal, redrawn at most 10x/s; nothing otherwise."""

    def __init__(self, show: bool):
        self.bar = Progress(TextColumn("gradient check"), BarColumn(), TextColumn("{task.completed}/{task.total} cost evaluations"),
                            TimeElapsedColumn(), console=out, transient=True) if show and out.is_terminal else None
        self.task = self.bar.add_task("check", total=None) if self.bar else None
        self._drawn = 0.0
        if self.bar:
            self.bar.start()

    def __call__(self, done: int, total: int):
        now = time.monotonic()
        if self.bar and (done == total or now - self._drawn > 0.1):
            self.bar.update(self.task, completed=done, total=total)
            self._drawn = now

    def close(self):
        if self.bar:
            self.bar.stop()


def _gradcheck_json(name: str, o: workflows.GradcheckOutcome) -> dict:
    worst = o.report.worst
    return {
        "config": name, "verdict": o.verdict, "overall": o.report.overall, "threshold": o.threshold, "epsilon": o.epsilon,
        "examples": o.examples, "after_epochs": o.after_epochs, "max_per_param": o.max_per_param, "dtype": "float64",
        "worst": {"parameter": worst.name, "relative_difference": worst.relative_error, "index": list(worst.worst_index),
                  "analytic": worst.worst_analytic, "numeric": worst.worst_numeric},
        "parameters": [{"name": a.name, "relative_difference": a.relative_error, "checked": a.checked, "size": a.size,
                        "worst_index": list(a.worst_index), "analytic": a.worst_analytic, "numeric": a.worst_numeric}
                       for a in o.report.arrays],
        "kinks": [k._asdict() for k in o.kinks], "notices": o.notices, "warnings": o.warnings,
    }


VERDICT_STYLE = {"pass": "green", "suspicious": "yellow", "fail": "red"}


def _print_gradcheck(name: str, o: workflows.GradcheckOutcome) -> None:
    for line in o.notices:
        out.print(f"note: {line}", soft_wrap=True, markup=False)
    for line in o.warnings:
        out.print(Text.assemble(("warning:", "yellow"), f" {line}"), soft_wrap=True)
    after = f", after {o.after_epochs} epochs" if o.after_epochs else ""
    table = Table(title=f"{name}: gradient check on {o.examples} examples{after}, epsilon {o.epsilon:g}",
                  caption="difference = ||g - g_num|| / (||g|| + ||g_num||), 2-norms over the checked entries")
    for col in ("parameter", "checked", "difference", "worst index", "analytic", "numeric"):
        table.add_column(col, justify="left" if col == "parameter" else "right", no_wrap=col in ("analytic", "numeric"))
    for a in o.report.arrays:
        style = VERDICT_STYLE[workflows.verdict(a.relative_error, o.threshold)]
        table.add_row(a.name, f"{a.checked}/{a.size}", f"[{style}]{a.relative_error:.2e}[/{style}]",
                      ",".join(map(str, a.worst_index)), f"{a.worst_analytic:.7g}", f"{a.worst_numeric:.7g}")
    out.print(table)
    w = o.report.worst
    out.print(f"overall relative difference {o.report.overall:.3e}; worst parameter {w.name} ({w.relative_error:.3e}), "
              f"worst entry {w.name}{list(w.worst_index)}: analytic {w.worst_analytic:.10g}, numeric {w.worst_numeric:.10g}",
              soft_wrap=True)
    reason = {"pass": f"below the threshold {o.threshold:g}",
              "suspicious": f"between the threshold {o.threshold:g} and 1e-05; look at {w.name} first",
              "fail": f"above 1e-05: backprop is most likely wrong, start with {w.name}"}[o.verdict]
    if o.warnings and o.verdict != "pass":
        reason += " (but see the warning above: the check is not valid at a kink)"
    style = VERDICT_STYLE[o.verdict]
    out.print(f"verdict: [{style}]{o.verdict}[/{style}] ({o.report.overall:.3e} is {reason})", soft_wrap=True)


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
        cfg = _load(config, set_)
        outcome = workflows.gradcheck(cfg, examples, epsilon, threshold, after_epochs, max_per_param, progress)
    except DltrainError as e:
        progress.close()
        fail(e)
    progress.close()
    if as_json:
        out.print(json.dumps(_gradcheck_json(cfg.name, outcome), indent=2), soft_wrap=True)
    else:
        _print_gradcheck(cfg.name, outcome)
    if outcome.verdict != "pass":
        raise typer.Exit(1)
class Metric(str, Enum):
    dev_accuracy = "dev_accuracy"
    dev_cost = "dev_cost"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class SearchProgress:
    """Round headers and one line per finished trial (above a bar on a terminal); quiet prints nothing."""

    def __init__(self, total: int, metric: str, quiet: bool):
        self.metric, self.quiet, self.done, self.reused = metric, quiet, 0, 0
        self.bar = None
        if not quiet and out.is_terminal:
            self.bar = Progress(TextColumn("trials {task.completed}/{task.total}"), BarColumn(), TimeElapsedColumn(),
                                console=out, transient=True)
            self.task = self.bar.add_task("search", total=total)
            self.bar.start()

    def print(self, line):
        if not self.quiet:
            out.print(line, soft_wrap=True, markup=False)

    def round(self, number: int, space: dict, n: int):
        narrowed = f", ranges narrowed to round {number - 1}'s best" if number > 1 else ""
        table = Table(title=f"round {number}: {n} trials{narrowed}", title_justify="left")
        table.add_column("key path")
        table.add_column("distribution")
        for key, d in space.items():
            table.add_row(Text(key), Text(d.spec() if d.kind == "choice" else f"{d.kind}({d.low:.6g}, {d.high:.6g})"))
        if not self.quiet:
            out.print(table)

    def trial(self, record: dict, reused: bool):
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        if reused:
            self.reused += 1
            return
        values = "  ".join(f"{k}={_short(v)}" for k, v in record["values"].items())
        if record["status"] == "completed":
            m = record["metrics"]
            self.print(f"trial {record['trial']:>3}  dev_accuracy {m['dev_accuracy']:.4f}  dev_cost {m['dev_cost']:.6f}  {values}")
        else:
            self.print(f"trial {record['trial']:>3}  {record['status']}  {values}  ({record['error'].splitlines()[0]})")

    def close(self):
        if self.bar is not None:
            self.bar.stop()


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
):
    """Random hyperparameter search on each value's scale, coarse to fine, in parallel; the last line is the search folder.

    Each trial is a run folder under OUT/trials; OUT gets leaderboard.csv, best.yaml and search.png.
    Rerunning the same command skips the finished trials.
    """
    progress, folder = None, out_dir
    try:
        tree = load_tree(config, set_ or [])
        folder = out_dir or Path("runs") / f"{validate_config(tree, str(config)).name}-search"
        space_dists = load_space(space)
        progress = SearchProgress(trials, metric.value, quiet)
        outcome = workflows.search(tree, space_dists, folder, trials=trials, rounds=rounds, workers=workers or os.cpu_count() or 1,
                                   scheduler=scheduler, metric=metric.value, seed=seed, source=str(config),
                                   space_source=str(space), progress=progress)
    except DltrainError as e:
        if progress is not None:
            progress.close()
        fail(e)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        err.print(f"interrupted: the finished trials are kept in {folder or 'the search folder'}; rerun the same command to resume",
                  soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    progress.close()
    if not quiet:
        if progress.reused:
            out.print(f"{progress.reused} trials reused from an earlier run of this search")
        table = Table(title=f"leaderboard (by {metric.value}; all in {folder / 'leaderboard.csv'})", title_justify="left")
        keys = list(space_dists)
        # The last part of each key path keeps the table narrow (the CSV has the full paths).
        for col in ["rank", "trial", "round", "dev_accuracy", "dev_cost", *(k.rsplit(".", 1)[-1] for k in keys)]:
            table.add_column(Text(col), justify="right")
        completed = [r for r in outcome.ranked if r["status"] == "completed"]
        for place, r in enumerate(completed[:10], start=1):
            m = r["metrics"]
            table.add_row(str(place), str(r["trial"]), str(r["round"]), f"{m['dev_accuracy']:.4f}", f"{m['dev_cost']:.6f}",
                          *(Text(_short(r["values"][k])) for k in keys))
        # Piped output ends up in files and logs, where a wide table beats truncated columns.
        (out if out.is_terminal else Console(highlight=False, width=160)).print(table)
        failed = len(outcome.ranked) - len(completed)
        if failed:
            out.print(f"{failed} trials failed or diverged (see leaderboard.csv)")
        if outcome.best is not None:
            out.print(f"best: trial {outcome.best['trial']}, config in {folder / 'best.yaml'}", soft_wrap=True, markup=False)
    out.print(str(folder), soft_wrap=True, markup=False)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def print_diagnosis(d: dict) -> None:
    """The bias/variance diagnosis and the course's recipe for it."""
    out.print(f"[bold]diagnosis: {d['problem']}[/bold]")
    stand_in = " (measured on test: there is no dev set)" if d["dev_split"] == "test" else ""
    out.print(f"  human error {_pct(d['human_error'])}, train error {_pct(d['train_error'])}, "
              f"dev error {_pct(d['dev_error'])}{stand_in}", soft_wrap=True)
    variance = "unknown (no dev or test set: set data.dev_fraction)" if d["variance"] is None else _pct(d["variance"])
    out.print(f"  avoidable bias {_pct(d['avoidable_bias'])}, variance {variance} (a gap of {_pct(d['threshold'])} or more is high)",
              soft_wrap=True)
    for step in d["recipe"]:
        out.print(f"  - {step}", soft_wrap=True)


class Split(str, Enum):
    train = "train"
    dev = "dev"
    test = "test"
    all = "all"


def print_split(name: str, m: dict) -> None:
    out.print(f"[bold]{name}[/bold]: {m['examples']} examples, cost {m['cost']:.6f}, accuracy {m['accuracy']:.4f}")
    if "precision" in m:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        out.print(f"  {escape(m['positive_class'])} as positive: precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
                  f"F1 {m['f1']:.4f}; true positives {tp}, false positives {fp}, false negatives {fn}, true negatives {tn}",
                  soft_wrap=True)
        return
    classes = [escape(c) for c in m["per_class"]]
    matrix = Table(title=f"{name}: confusion matrix")
    matrix.add_column("true \\ predicted")
    for c in classes:
        matrix.add_column(c, justify="right")
    for c, counts in zip(classes, m["confusion_matrix"]):
        matrix.add_row(c, *map(str, counts))
    out.print(matrix)
    per_class = Table(title=f"{name}: per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c, v in m["per_class"].items():
        per_class.add_row(escape(c), f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", str(v["support"]))
    out.print(per_class)


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
        report = workflows.evaluate_run(run_dir, split.value, data, human_error, errors)
    except DltrainError as e:
        fail(e)
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


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command()
def runs(
    runs_dir: Path = typer.Argument(Path("runs"), help="Folder holding run folders, or a search folder (lists its trials)."),
    sort: Optional[str] = typer.Option(None, "--sort", help="Sort by a column, e.g. dev_accuracy (accuracies best first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
):
    """A table of the runs in a folder (a search folder: its trials): data, key hyperparameters, epochs, accuracies, duration, status."""
    try:
        runs_dir = workflows.runs_folder(runs_dir)
        rows = workflows.run_table(runs_dir, sort)
    except DltrainError as e:
        fail(e)
    if as_json:
        out.print(json.dumps(rows, indent=2), soft_wrap=True, markup=False)
        return
    table = Table(title=escape(f"{len(rows)} runs in {runs_dir}"))
    for col in workflows.RUN_COLUMNS:
        table.add_column(col, justify="left" if col in ("run", "status", "dataset", "layers") else "right")
    for row in rows:
        table.add_row(*(escape(_cell(row[c])) for c in workflows.RUN_COLUMNS))
    # Piped into a file or another program there is no screen width to respect: print every column whole.
    (out if out.is_terminal else Console(highlight=False, width=250)).print(table)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders to compare."),
    out_file: Path = typer.Option(..., "--out", help="The PNG file to write."),
):
    """Overlay the cost curves of several runs (train solid, dev dashed) in one PNG."""
    try:
        path = workflows.compare_runs(run_dirs, out_file)
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
    try:
        cfg = workflows.run_config(run_dir)
    except DltrainError as e:
        fail(e)
    result = _train(lambda p, i: workflows.reproduce(run_dir, runs_dir=runs_dir, progress=p, interrupt=i), cfg.training.epochs, quiet)
    if result.difference is None:
        out.print(f"identical: {result.outcome.run_dir} reproduces {run_dir} (history.csv without seconds, metrics.json, model.h5)",
                  soft_wrap=True, markup=False)
    else:
        out.print(f"different: {result.difference}", soft_wrap=True, markup=False)
    out.print(str(result.outcome.run_dir), soft_wrap=True, markup=False)
    if result.difference is not None:
        raise typer.Exit(1)


@config_app.command("show")
def config_show(config: Path = typer.Argument(..., help="YAML config file."), set_: Optional[list[str]] = SetOption):
    """Print the config with every default filled in, as the run folder records it."""
    try:
        cfg = _load(config, set_)
    except DltrainError as e:
        fail(e)
    out.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="", soft_wrap=True)


@config_app.command("schema")
def config_schema():
    """Print the JSON Schema of config files (for editors and validators)."""
    out.print(json.dumps(Config.model_json_schema(), indent=2), soft_wrap=True)


def counts_table(counts: dict[str, list[int]], classes: list[str], title: str | None = None) -> Table:
    """Examples per split and per class."""
    table = Table(title=title)
    for col in ("split", "examples", *classes):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, per_class in counts.items():
        table.add_row(split, str(sum(per_class)), *map(str, per_class))
    return table


@datasets_app.command("list")
def datasets_list(data_dir: Path = typer.Option(Path("datasets"), "--dir", help="Folder the course files are looked for in.")):
    """The known datasets, the data: keys that select them, and whether their files are in --dir."""
    table = Table(title=f"datasets (files looked for in {data_dir.resolve()})")
    for col in ("name", "config", "files"):
        table.add_column(col, overflow="fold")
    for entry in workflows.list_datasets(data_dir):
        files = ", ".join(f"{p.name} {'[green]found[/green]' if ok else '[red]missing[/red]'}" for p, ok in entry.files)
        table.add_row(entry.name, entry.select, files or "-")
    out.print(table)


@datasets_app.command("info")
def datasets_info(spec: str = typer.Argument(..., help="A YAML config file, or a dataset name (cat, signs, moons, ...)."),
                  set_: Optional[list[str]] = SetOption):
    """Shapes, classes and examples per class in each split, carved as `train` would carve them."""
    try:
        info = workflows.dataset_info(spec, set_ or [])
    except DltrainError as e:
        fail(e)
    shape = f" (images {'x'.join(map(str, info.image_shape))})" if info.image_shape else ""
    out.print(f"dataset {info.dataset}: {info.n_x} features{shape}, {len(info.classes)} classes, "
              f"raw train values {info.value_range[0]:g} .. {info.value_range[1]:g}", soft_wrap=True, markup=False)
    out.print(counts_table(info.counts, info.classes))


@datasets_app.command("import")
def datasets_import(
    folder: Path = typer.Argument(..., help="Folder with one sub-folder of .jpg/.png images per class."),
    output: Path = typer.Argument(..., help="The .h5 file to write (must not exist)."),
    size: int = typer.Option(64, "--size", min=1, max=4096, help="Resize every image to SIZE x SIZE pixels."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.0, max=0.99, help="Share of images held out as test (stratified)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the test split."),
):
    """Turn a folder of class sub-folders of images into an h5 file in the course layout (train with dataset: images)."""
    try:
        result = import_image_folder(folder, output, size, test_fraction, seed)
    except DltrainError as e:
        fail(e)
    out.print(counts_table(result.counts, result.classes, f"{result.out}: {'x'.join(map(str, result.image_shape))} RGB uint8"))


class Layout(str, Enum):
    rows = "rows"
    columns = "columns"


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A finished run folder (it has model.h5)."),
    inputs: list[Path] = typer.Argument(..., help="Image files (.jpg/.jpeg/.png) or array files (.npz/.h5/.hdf5/.mat)."),
    key: Optional[str] = typer.Option(None, "--key", help="Array to read from array files (default: the file's only array)."),
    layout: Layout = typer.Option(Layout.rows, "--layout", help="Array files: rows (one example per row) or columns (n_x, m)."),
):
    """Print INPUT, predicted class and its probability (tab-separated), one line per image or example."""
    try:
        predictions = workflows.predict(run_dir, inputs, key, layout.value)
    except DltrainError as e:
        fail(e)
    for p in predictions:
        typer.echo(f"{p.input}\t{p.label}\t{p.probability:.4f}")  # real tabs (rich would expand them)


def main():
    try:
        app(prog_name="dltrain")
    except KeyboardInterrupt:  # Ctrl-C while typer or the libraries are still starting up
        err.print("aborted", soft_wrap=True)
        sys.exit(130)


if __name__ == "__main__":
    sys.exit(main())

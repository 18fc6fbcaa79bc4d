"""The typer app: parse, call one workflow, print with rich, map DltrainError to its exit code."""

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dltrain import workflows
from dltrain.config import Config, load_config
from dltrain.errors import DltrainError

app = typer.Typer(
    help="Config-driven deep-learning experiments on a NumPy engine (deeplearning.ai courses 1-2).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect configs: the resolved values and the JSON Schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SetOption = typer.Option(None, "--set", help="Override a config key: --set optimizer.learning_rate=0.01 (repeatable).")


def fail(e: DltrainError) -> None:
    for line in str(e).splitlines():
        err.print(f"[red]error:[/red] {line}", markup=True, soft_wrap=True)
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
            )
            self.task = self.bar.add_task("train", total=epochs, cost=float("nan"))
            self.bar.start()

    def __call__(self, r, row):
        if self.live:
            now = time.monotonic()
            if row is not None or now - self._drawn > 0.1:
                self.bar.update(self.task, completed=r.epoch + 1, cost=r.cost)
                self._drawn = now
        elif row is not None and not self.quiet:
            dev = f"  dev_cost {row['dev_cost']:.6f}  dev_accuracy {row['dev_accuracy']:.4f}" if "dev_cost" in row else ""
            out.print(f"epoch {r.epoch:>6}  cost {r.cost:.6f}  lr {r.learning_rate:.6g}{dev}")

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _load(config: Path, overrides: list[str] | None) -> Config:
    return load_config(config, overrides or [])


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config file."),
    set_: Optional[list[str]] = SetOption,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Write the run exactly here (must not exist)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Parent folder of new run folders."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; still prints the run folder."),
):
    """Train the model a config describes and write its run folder; the last line is the folder's path."""
    progress = None
    try:
        cfg = _load(config, set_)
        progress = EpochProgress(cfg.training.epochs, quiet)
        outcome = workflows.train(cfg, runs_dir=runs_dir, run_dir=run_dir, progress=progress)
    except DltrainError as e:
        if progress is not None:
            progress.close()
        fail(e)
    progress.close()
    if not quiet:
        table = Table(title=f"{cfg.name}: {outcome.summary['epochs_run']} epochs in {outcome.summary['duration_seconds']:.1f}s")
        for col in ("split", "examples", "cost", "accuracy"):
            table.add_column(col, justify="right" if col != "split" else "left")
        for split, m in outcome.metrics.items():
            table.add_row(split, str(m["examples"]), f"{m['cost']:.6f}", f"{m['accuracy']:.4f}")
        out.print(table)
    out.print(str(outcome.run_dir), soft_wrap=True)


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


def main():
    app(prog_name="dltrain")


if __name__ == "__main__":
    sys.exit(main())

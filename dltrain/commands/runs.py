"""`dltrain runs` and `dltrain compare`: the table of run folders and overlaid cost curves."""

from pathlib import Path

from dltrain.errors import DltrainError
from dltrain.runs import (
    is_run_dir,
    list_run_dirs,
    load_run,
    run_table_columns,
    write_output,
)

RUN_COLUMNS = [
    "run", "status", "dataset", "layers", "activation", "optimizer", "learning_rate", "batch_size", "l2", "keep_prob",
    "epochs", "train_accuracy", "dev_accuracy", "test_accuracy", "duration_seconds",
]


def run_row(record) -> dict:
    """One line of the runs table from a RunRecord; values the run does not have are None."""
    cfg, summary, metrics = record.config, record.summary, record.metrics
    model, optimizer, training = cfg.get("model") or {}, cfg.get("optimizer") or {}, cfg.get("training") or {}
    regularization = cfg.get("regularization") or {}
    row = {
        "run": record.dir.name,
        "status": summary.get("status"),
        "dataset": (cfg.get("data") or {}).get("dataset"),
        "layers": "-".join(map(str, model.get("layers") or [])) or None,
        "activation": model.get("hidden_activation"),
        "optimizer": optimizer.get("name"),
        "learning_rate": optimizer.get("learning_rate"),
        "batch_size": training.get("batch_size"),
        "l2": regularization.get("l2"),
        "keep_prob": regularization.get("keep_prob"),
        "epochs": summary.get("epochs_run"),
        "duration_seconds": summary.get("duration_seconds"),
    }
    for split in ("train", "dev", "test"):
        row[f"{split}_accuracy"] = (metrics.get(split) or {}).get("accuracy")
    return {k: row[k] for k in RUN_COLUMNS}


def runs_folder(runs_dir: Path) -> Path:
    """The folder whose runs `dltrain runs` lists: runs_dir, or for a search folder (no run folders
    of its own) its trials/ folder, where the search keeps every trial's run folder."""
    trials = Path(runs_dir) / "trials"
    if not list_run_dirs(runs_dir) and trials.is_dir() and list_run_dirs(trials):
        return trials
    return Path(runs_dir)


def run_columns(columns: "str | list[str] | None") -> list[str]:
    """The columns a user chose ("run,dev_accuracy" or a list), checked against RUN_COLUMNS; None: all of them."""
    if columns is None:
        return list(RUN_COLUMNS)
    chosen = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    unknown = [c for c in chosen if c not in RUN_COLUMNS]
    if unknown or not chosen:
        raise DltrainError(f"--columns {','.join(unknown) or repr(columns)}: not a column; choose from {', '.join(RUN_COLUMNS)}", 2)
    return chosen


def run_table(runs_dir: Path = Path("runs"), sort: str | None = None, columns: "str | list[str] | None" = None) -> list[dict]:
    """A row per run folder in runs_dir (see RUN_COLUMNS; `columns` keeps only those, in that order),
    optionally sorted by a column: accuracies best first, other columns ascending, missing values last."""
    if sort is not None and sort not in RUN_COLUMNS:
        raise DltrainError(f"--sort {sort!r}: not a column; choose one of {', '.join(RUN_COLUMNS)}", 2)
    chosen = run_columns(columns)
    rows = []
    for run_dir in list_run_dirs(runs_dir):
        try:
            # The table needs config.yaml, metrics.json and summary.json: never history.csv, which grows with the run.
            rows.append(run_row(load_run(run_dir, history=False)))
        except DltrainError as e:
            rows.append({**dict.fromkeys(RUN_COLUMNS), "run": run_dir.name, "status": f"unreadable: {e}"})
    if sort is not None:
        present = [r for r in rows if r[sort] is not None]
        # A column may mix numbers with text or lists (keep_prob: 0.8 or [0.8, 0.5]): numbers first, then the rest as text.
        present.sort(key=lambda r: (0, r[sort], "") if isinstance(r[sort], (int, float)) else (1, 0, str(r[sort])),
                     reverse=sort.endswith("accuracy"))
        rows = present + [r for r in rows if r[sort] is None]
    return [{c: r[c] for c in chosen} for r in rows]


def list_runs(runs_dir: "str | Path" = "runs", sort: str | None = None, columns: "str | list[str] | None" = None) -> list[dict]:
    """`dltrain runs`: a row per run folder in runs_dir (a search folder: its trials), see RUN_COLUMNS;
    `columns` ("run,dev_accuracy" or a list) keeps only those."""
    return run_table(runs_folder(Path(runs_dir)), sort, columns)


COMPARE_METRICS = ("cost", "dev_cost", "dev_accuracy")


def epoch_range(epochs: "str | tuple | None") -> tuple[int | None, int | None]:
    """--epochs "A:B" (either end may be left out: "100:", ":500") -> (A, B); None -> (None, None)."""
    if epochs is None or isinstance(epochs, tuple):
        first, last = epochs or (None, None)
    else:
        parts = str(epochs).split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            first, last = (int(p) if p.strip() else None for p in parts)
        except ValueError:
            raise DltrainError(f"--epochs {epochs!r}: expected FIRST:LAST epochs, e.g. 100:500, 100: or :500", 2) from None
    if any(e is not None and e < 0 for e in (first, last)) or (first is not None and last is not None and first >= last):
        raise DltrainError(f"--epochs {epochs!r}: the first epoch must be below the last, both >= 0", 2)
    return first, last


def compare_figure(run_dirs: list[Path], metric: str = "cost", log: bool = False, epochs: "str | tuple | None" = None):
    """The Figure `dltrain compare` writes: each run's `metric` (cost: train solid, dev dashed; dev_cost;
    dev_accuracy) against the epoch, one color per run, optionally on a log y axis and within epochs "A:B"."""
    from dltrain import plots  # matplotlib: only when a figure is drawn

    if metric not in COMPARE_METRICS:
        raise DltrainError(f"--metric {metric!r}: choose one of {', '.join(COMPARE_METRICS)}", 2)
    span = epoch_range(epochs)
    curves = {}
    for run_dir in map(Path, run_dirs):
        if not is_run_dir(run_dir):
            raise DltrainError(f"{run_dir} is not a dltrain run folder (it has no summary.json)")
        # Every epoch's costs (curve.csv), or the logged ones (history.csv) for older runs: streamed,
        # only the columns drawn and the epochs asked for, thinned for a very long run.
        table = run_table_columns(run_dir, ["cost", "dev_cost"] if metric == "cost" else [metric], *span)
        if not table.rows:
            raise DltrainError(f"{run_dir} has no history.csv rows to plot")
        if metric not in table.header:
            raise DltrainError(f"{run_dir} has no {metric} in history.csv: it was trained without a dev set (data.dev_fraction)")
        # Runs of the same name in different folders stay apart under their full path.
        curves[str(run_dir) if run_dir.name in curves else run_dir.name] = table.columns
    return plots.compare_costs(curves, f"{metric.replace('_', ' ')} of {len(curves)} runs", metric, log, span)


def output_format(out: Path) -> str:
    """The figure format --out's suffix names (png, svg, pdf), or DltrainError (exit 2)."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):  # plots.FORMATS, without importing matplotlib
        raise DltrainError(f"--out {out}: cannot write a {'.' + fmt if fmt else 'suffix-less'} file; name a .png, .svg or .pdf file", 2)
    return fmt


def compare_runs(run_dirs: list[Path], out: Path, metric: str = "cost", log: bool = False, epochs: "str | tuple | None" = None) -> Path:
    """`dltrain compare`: compare_figure(...) written to `out` in the format its suffix names (.png, .svg or .pdf)."""
    from dltrain import plots

    fmt = output_format(out)
    write_output(out, plots.save(compare_figure(run_dirs, metric, log, epochs), fmt))
    return Path(out)

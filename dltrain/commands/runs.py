"""`dltrain runs` and `dltrain compare`: the table of run folders and overlaid cost curves."""

from pathlib import Path

from dltrain import plots
from dltrain.errors import DltrainError
from dltrain.runs import (
    list_run_dirs,
    load_run,
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


def run_table(runs_dir: Path = Path("runs"), sort: str | None = None) -> list[dict]:
    """A row per run folder in runs_dir (see RUN_COLUMNS), optionally sorted by a column:
    accuracies best first, other columns ascending, missing values last."""
    if sort is not None and sort not in RUN_COLUMNS:
        raise DltrainError(f"--sort {sort!r}: not a column; choose one of {', '.join(RUN_COLUMNS)}", 2)
    rows = []
    for run_dir in list_run_dirs(runs_dir):
        try:
            rows.append(run_row(load_run(run_dir)))
        except DltrainError as e:
            rows.append({**dict.fromkeys(RUN_COLUMNS), "run": run_dir.name, "status": f"unreadable: {e}"})
    if sort is not None:
        present = [r for r in rows if r[sort] is not None]
        # A column may mix numbers with text or lists (keep_prob: 0.8 or [0.8, 0.5]): numbers first, then the rest as text.
        present.sort(key=lambda r: (0, r[sort], "") if isinstance(r[sort], (int, float)) else (1, 0, str(r[sort])),
                     reverse=sort.endswith("accuracy"))
        rows = present + [r for r in rows if r[sort] is None]
    return rows


def list_runs(runs_dir: "str | Path" = "runs", sort: str | None = None) -> list[dict]:
    """`dltrain runs`: a row per run folder in runs_dir (a search folder: its trials), see RUN_COLUMNS."""
    return run_table(runs_folder(Path(runs_dir)), sort)


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Overlay the cost curves (train solid, dev dashed) of several runs in one PNG at `out`."""
    curves = {}
    for run_dir in run_dirs:
        record = load_run(run_dir)
        if not record.history:
            raise DltrainError(f"{run_dir} has no history.csv rows to plot")
        # Runs of the same name in different folders stay apart under their full path.
        curves[str(record.dir) if record.dir.name in curves else record.dir.name] = record.history
    write_output(out, plots.png(plots.compare_costs(curves, f"cost of {len(curves)} runs")))
    return Path(out)

"""The figures and report.html that end a training run: drawn in the training process, or by its
figures process (dltrain/artist.py) when `dltrain train` starts one."""

import contextlib
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dltrain.artist import Artist, in_fork
from dltrain.commands.build import Prepared, Training
from dltrain.commands.trained import Trained, split_plots
from dltrain.config import Config
from dltrain.model_file import read_model
from dltrain.runs import RunWriter, load_run, read_columns, run_curve


def trained(cfg: Config, data: Prepared, t: Training, run: RunWriter) -> Trained:
    return Trained(run.dir, cfg, t.net, t.params, t.state, data.normalization, data.classes, data.image_shape)


def draw_figures(cfg: Config, data: Prepared, t: Training, run: RunWriter, marks: dict[str, int]) -> list[str]:
    """cost.png (norms.png) and the plots of split_plots into the run folder; -> the notes on figures
    bounded or left out (summary.json "notes")."""
    from dltrain import plots  # matplotlib: 0.3 s, loaded only when drawing (or by the figures process)

    run.write_bytes("cost.png", plots.png(plots.cost_curve(run_curve(run.dir), f"{cfg.name}: cost", marks)))
    if cfg.training.log_norms:
        # Streamed, only the norm columns: the history may be far larger than what the figure needs.
        norms = [f"norm_{w}{l}" for w in ("W", "dW") for l in range(1, t.net.L + 1)]
        columns = read_columns(run.path("history.csv"), norms, thin=True).columns
        run.write_bytes("norms.png", plots.png(plots.norm_curves(columns, t.net.L, f"{cfg.name}: weight and gradient norms")))
    model = trained(cfg, data, t, run)
    notes: list[str] = []
    for kind, figure in split_plots(model, "train", data.X["train"], data.labels["train"], ("decision_boundary",), notes).items():
        run.write_bytes(f"{kind}.png", plots.png(figure))
    # Error analysis looks at examples the model did not train on: test, else dev, else train.
    held_out = next(s for s in ("test", "dev", "train") if s in data.X)
    for kind, figure in split_plots(model, held_out, data.X[held_out], data.labels[held_out], ("misclassified", "confusion_matrix")).items():
        run.write_bytes(f"{kind}.png", plots.png(figure))
    return notes


def report_curves(run: RunWriter, marks: dict[str, int]) -> list:
    """[html, notes] of the report's curve figures (pages.run.curve_figures) as the finished run's files draw them."""
    from dltrain.pages.run import curve_figures, figure_name

    record = load_run(run.dir)
    return list(curve_figures(record, figure_name(record), marks))


@contextlib.contextmanager
def start_artist(wanted: bool, cfg: Config, data: Prepared, t: Training, run: RunWriter):
    """The figures process (dltrain/artist.py) of this run when `wanted` and it can fork, else None; ended on exit."""
    if not wanted:
        yield None
        return

    def warm_up() -> Callable[[], None] | None:
        # The training process updates its arrays in place: this copy lets go of them at once, so no
        # page of them is copied for it as they change. figures() reads them back from model.h5.
        t.params.clear()
        t.state.clear()
        config_dir = os.environ.get("MPLCONFIGDIR")
        from dltrain import plots
        from dltrain.commands import report  # noqa: F401 - the report's pages and their imports

        # Fonts, the PNG writer, contour's module: what a first figure loads
        curve = {"epoch": np.arange(3), "learning_rate": np.ones(3), "cost": np.ones(3), "dev_cost": np.ones(3)}
        plots.png(plots.cost_curve(curve, "", {"stopped": 1}))
        X = np.array([[0.0, 1.0], [0.0, 1.0]])
        plots.png(plots.decision_boundary(lambda G: (G[0] > 0.5).astype(int), X, np.array([0, 1]), "", ["0", "1"], 8))
        made = os.environ.get("MPLCONFIGDIR")
        # Without a writable home, matplotlib makes a temporary config folder and removes it at exit, in an
        # atexit handler this process (which ends in os._exit) never runs: it removes the folder itself.
        return (lambda: shutil.rmtree(made, ignore_errors=True)) if made != config_dir else None

    curves = []  # the report's curve figures, drawn by a fork of the figures process while it draws the PNGs

    def figures(marks: dict[str, int]) -> dict:
        # The arrays as the run saved them: this process forked with the initial ones.
        saved = read_model(run.path("model.h5"))
        t.params.update(saved["params"])
        t.state.update(saved["state"])
        # The report's curves in a fork, on the core the training process leaves idle while it waits. (The
        # PNGs in forks of their own gained nothing: three drawing processes on two cores.)
        curves.append(in_fork(lambda: report_curves(run, marks)))
        return {"notes": draw_figures(cfg, data, t, run, marks)}

    def report() -> dict:
        from dltrain.commands.report import write_run_report

        drawn = curves.pop()() if curves else None
        write_run_report(run.dir, model=trained(cfg, data, t, run), data=data, curves=tuple(drawn) if drawn else None)
        return {}

    artist = Artist.start({"figures": figures, "report": report}, warm_up)
    try:
        yield artist
    finally:
        if artist is not None:
            artist.close()


def write_report(run_dir: Path, model: Trained, data: Prepared) -> None:
    """report.html of a completed run. The run is complete without it: a page that cannot be built
    (disk full, an unexpected value) is a warning naming the command that retries, never a failed run."""
    from dltrain.commands.report import write_run_report  # the pages and matplotlib: only when a report is written

    try:
        write_run_report(run_dir, model=model, data=data)
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the trained model and metrics stand
        warnings.warn(f"{run_dir}: report.html not written ({type(e).__name__}: {e}); "
                      f"the run is complete; retry with: dltrain report {run_dir}", RuntimeWarning, stacklevel=2)

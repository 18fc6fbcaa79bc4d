"""`dltrain train`: train, resume, the loop around the engine (logging, early stopping, checkpoints, divergence)."""

import contextlib
import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dltrain import __version__
from dltrain.artist import Artist
from dltrain.commands.build import (
    Prepared,
    Training,
    accumulation_note,
    build_dropout_rng,
    build_permutation,
    build_schedule,
    build_training,
    prepare_data,
    release_buffers,
    resolved_config,
    same_data,
)
from dltrain.commands.checkpoint import CHECKPOINT, checked_config, restore_checkpoint, save_checkpoint
from dltrain.commands.figures import draw_figures, start_artist, trained, write_report
from dltrain.commands.run import Run
from dltrain.commands.trained import dead_units, run_config
from dltrain.config import Config, load_config
from dltrain.data.files import one_line
from dltrain.engine.model import evaluate
from dltrain.engine.train import EpochResult, check_finite, train_epochs
from dltrain.errors import Diverged, DltrainError, Interrupted
from dltrain.evaluation import diagnosis_of
from dltrain.pages.page import blas_name
from dltrain.progress import watching
from dltrain.runs import (
    RunWriter,
    load_run,
    new_run_dir,
    present,
    training_lock,
)
from dltrain.tracking import track_run


def history_columns(has_dev: bool, norm_layers: int = 0) -> list[str]:
    """history.csv's columns; with norm_layers = L, norm_W1..norm_WL and norm_dW1..norm_dWL at the end."""
    cols = ["epoch", "iteration", "learning_rate", "cost", "data_cost", "penalty"]
    if has_dev:
        cols += ["dev_cost", "dev_accuracy"]
    cols.append("seconds")
    cols += [f"norm_W{l}" for l in range(1, norm_layers + 1)]
    return cols + [f"norm_dW{l}" for l in range(1, norm_layers + 1)]


def curve_columns(has_dev: bool) -> list[str]:
    """curve.csv's columns: every epoch's rate and costs; the dev columns are blank where the dev set
    was not evaluated (it is on logged epochs, and on every epoch with early stopping)."""
    return ["epoch", "learning_rate", "cost", "data_cost"] + (["dev_cost", "dev_accuracy"] if has_dev else [])


def norm_row(params: dict[str, np.ndarray], grad_norms: dict[str, float], L: int) -> dict[str, float]:
    """norm_W{l} = ||W[l]||_F after the epoch's updates, norm_dW{l} = ||dW[l]||_F of its last mini-batch."""
    row = {f"norm_W{l}": float(np.linalg.norm(params[f"W{l}"])) for l in range(1, L + 1)}
    row.update({f"norm_dW{l}": grad_norms[f"W{l}"] for l in range(1, L + 1)})
    return row


def initial_cost(data: Prepared, t: Training) -> float:
    """The untrained model's data cost on the training set (evaluation mode, so no random draw),
    at least ln 2 (chance level for two classes): the scale divergence is measured against.

    Not epoch 0's cost: with mini-batches that averages batches taken after updates, which a
    learning rate far too large has already blown up."""
    return max(evaluate(data.X["train"], data.Y["train"], t.params, t.net, t.state)[0], math.log(2))


def check_growth(r: EpochResult, baseline: float, factor: float | None) -> None:
    """Diverged once an epoch's data cost exceeds factor times the untrained model's. A stable
    cross-entropy stays finite while the weights run away, so this catches the divergence that the
    engine's non-finite check would not."""
    if factor is not None and r.data_cost > factor * baseline:
        raise Diverged(
            f"training diverged at epoch {r.epoch}: the cost grew to {r.data_cost:.6g}, more than training.divergence_factor "
            f"({factor:g}) times the untrained model's {baseline:.6g}; try a lower optimizer.learning_rate "
            "(or a decay schedule, or batch normalization)"
        )


def split_metrics(cfg: Config, data: Prepared, t: Training) -> dict:
    """Cost and accuracy of every split in evaluation mode and the bias/variance diagnosis, as metrics.json holds them."""
    metrics = {}
    for split in data.X:
        cost, accuracy = evaluate(data.X[split], data.Y[split], t.params, t.net, t.state)
        metrics[split] = {"cost": cost, "accuracy": accuracy, "examples": int(data.X[split].shape[1])}
    metrics["diagnosis"] = diagnosis_of(metrics, cfg.data.human_error, dead_units(cfg, data.X["train"], t.params, t.net, t.state))
    return metrics


def early_stop_reason(es, stopper, stopped: int, epochs: int) -> str:
    """Why a run stopped early and whose weights it keeps (summary.json stop_reason; the CLI prints it)."""
    kept = (f"the model keeps epoch {stopper.best_epoch}'s weights (restore_best)" if es.restore_best
            else f"the model keeps the last epoch's weights, epoch {stopped}'s (restore_best is false)")
    return (f"early stopping: {es.monitor} did not improve by more than {es.min_delta:g} for {es.patience} epochs "
            f"after its best, {stopper.best_value:.6g} at epoch {stopper.best_epoch}; stopped after epoch {stopped} "
            f"({stopped + 1} of {epochs} epochs); {kept}")


def train(
    config: "Config | str | Path | dict",
    runs_dir: str | Path = "runs",
    run_dir: str | Path | None = None,
    progress: "bool | Callable[[EpochResult, dict | None], None] | None" = True,
    interrupt: threading.Event | None = None,
    overrides: list[str] = (),
    expect_fingerprint: str | None = None,
    figures_process: bool = False,
) -> Run:
    """Train the model a config describes and write its run folder; -> the Run (`dltrain train`).

    config: a Config from load_config, a YAML file's path, or a mapping of the same keys
    (`overrides`, "optimizer.learning_rate=0.01", apply to the last two). The run folder is
    `runs_dir/<name>-<timestamp>`, or exactly `run_dir` (which must not exist).
    progress: True shows a live display (a bar on a terminal, one updating line in a notebook,
    plain lines at logged epochs elsewhere), False none, or a callable(result, row) called after
    every epoch with the history row on logged epochs.
    interrupt: an event checked after every epoch; by default Ctrl-C (KeyboardInterrupt in a
    notebook) and SIGTERM set it. Once set, the run writes a checkpoint and its metrics so far, is
    marked 'interrupted', and Interrupted is raised (resume() continues it). A second Ctrl-C aborts
    at once. A diverging run keeps its history, its last checkpoint and a summary marked
    'diverged', and raises Diverged. `expect_fingerprint` refuses data other than those a run to
    reproduce was trained on. `figures_process` (Linux; `dltrain train` sets it) forks a process that
    loads matplotlib while the loop trains and draws the figures and report.html after it
    (dltrain/artist.py): the same files, 0.3 s sooner on a short run.
    """
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    data = prepare_data(cfg)
    if expect_fingerprint is not None and not same_data(data, expect_fingerprint):
        raise DltrainError(
            f"the data are not those the run was trained on (fingerprint {data.fingerprint[:19]}…, recorded "
            f"{expect_fingerprint[:19]}…): data files changed or another dataset version is installed"
        )
    t = build_training(cfg, data)
    columns = history_columns("dev" in data.X, t.net.L if cfg.training.log_norms else 0)
    run = RunWriter(Path(run_dir) if run_dir is not None else new_run_dir(Path(runs_dir), cfg.name), columns,
                    curve_columns=curve_columns("dev" in data.X))
    # Taken before summary.json exists, so a resume of this folder finds it locked from the start.
    with training_lock(run.dir):
        run.write_yaml("config.yaml", resolved_config(cfg, data.n_x))
        summary = {
            "name": cfg.name,
            "status": "running",
            "seed": cfg.seed,
            "rng": cfg.rng,
            "dtype": cfg.dtype,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "split_counts": {k: int(v.shape[1]) for k, v in data.X.items()},
            "data_fingerprint": data.fingerprint,
            "versions": {"dltrain": __version__, "python": platform.python_version(), "numpy": np.__version__, "blas": blas_name()},
            "host": platform.node(),
            "pid": os.getpid(),
            **accumulation_note(t, data.X["train"].shape[1]),
        }
        run.write_json("summary.json", summary)
        with start_artist(figures_process, cfg, data, t, run) as artist, watching(cfg.training.epochs, progress, interrupt) as (display, event):
            return tracked(cfg, run.dir, lambda: fit(cfg, data, t, run, summary, display, event, artist=artist))


def tracked(cfg: Config, run_dir: Path, fit_run: Callable[[], Run]) -> Run:
    """fit_run(), then the run folder's copies the config's `tracking:` asks for (MLflow, TensorBoard), made
    from the folder once the run has completed or diverged; a failing tracker is a warning, never the run's failure."""
    try:
        return fit_run()
    finally:
        track_run(run_dir, cfg.tracking)


def still_running(summary: dict) -> bool:
    """True when the process that wrote a 'running' summary is alive on this machine: the guess
    resume makes where the run folder cannot be locked (see training_lock). A pid reused by another
    process since looks alive too."""
    pid = summary.get("pid")
    if os.name != "posix" or summary.get("host") != platform.node() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def resume(
    run_dir: "str | Path | Run",
    progress: "bool | Callable[[EpochResult, dict | None], None] | None" = True,
    interrupt: threading.Event | None = None,
    figures_process: bool = False,
) -> Run:
    """Continue an interrupted (or killed) run in its own folder from its last checkpoint (`dltrain
    train --resume`); progress, interrupt and figures_process as for train(). -> the Run.

    The run ends bit-identical (weights, history without `seconds`) to the same run left
    uninterrupted: the checkpoint holds every array training mutates and the RNG's position.
    """
    run_dir = Path(getattr(run_dir, "path", run_dir))
    # config.yaml is written once, when the run starts; reading it first also makes sure the lock
    # file is only ever created in a run folder.
    cfg = run_config(run_dir)
    # The status is read under the lock and rewritten before it is released: two resumes of one
    # folder cannot both find it interrupted.
    with training_lock(run_dir) as locked:
        # Not history.csv: it grows with the run; the checkpoint's checksum vouches for it when it is cut back.
        summary = load_run(run_dir, history=False).summary
        status = summary.get("status")
        if status == "completed":
            raise DltrainError(f"{run_dir} is completed: there is nothing to resume (dltrain reproduce {run_dir} re-runs it)")
        if status == "diverged":
            raise DltrainError(f"{run_dir} diverged and would diverge again: train a new run with a lower optimizer.learning_rate")
        # Holding the lock proves the process that wrote 'running' is gone, whatever its pid is now.
        if status == "running" and not locked and still_running(summary):
            raise DltrainError(f"{run_dir} is still being trained by process {summary['pid']}: stop it first (Ctrl-C)")
        if status not in ("running", "interrupted", "failed"):
            raise DltrainError(f"{run_dir}/summary.json has no run status; is {run_dir} a dltrain run folder?")
        if not present(run_dir / CHECKPOINT):  # a checkpoint that is a device or a FIFO is reported when read, not taken for none
            raise DltrainError(
                f"{run_dir} stopped before its first checkpoint, so there is nothing to resume from; "
                f"train it again: dltrain train {run_dir / 'config.yaml'} (set training.checkpoint_every to checkpoint periodically)"
            )
        data = prepare_data(cfg)
        if not same_data(data, summary.get("data_fingerprint")):
            raise DltrainError(f"the data are not those {run_dir} was trained on (their fingerprint differs); resuming would mix two datasets")
        t = build_training(cfg, data)
        loop = restore_checkpoint(t, run_dir / CHECKPOINT, cfg)
        run = RunWriter(run_dir, history_columns("dev" in data.X, t.net.L if cfg.training.log_norms else 0), rows=loop.get("history"),
                        curve_columns=curve_columns("dev" in data.X), curve_bytes=loop.get("curve_bytes"),
                        history_bytes=loop.get("history_bytes"), checksums=loop.get("checksums"))
        summary.update(status="running", host=platform.node(), pid=os.getpid(),
                       resumed=[*summary.get("resumed", []), {"epoch": loop["epoch"] + 1,
                                                             "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
        summary.pop("gradient_accumulation", None)  # the budget may differ from the first session's
        summary.update(accumulation_note(t, data.X["train"].shape[1]))
        run.write_json("summary.json", summary)
        with start_artist(figures_process, cfg, data, t, run) as artist, watching(cfg.training.epochs, progress, interrupt) as (display, event):
            return tracked(cfg, run.dir, lambda: fit(cfg, data, t, run, summary, display, event, loop, artist))


def fit(cfg: Config, data: Prepared, t: Training, run: RunWriter, summary: dict, progress, interrupt, loop: dict | None = None,
        artist: Artist | None = None) -> Run:
    """The training loop of train() and resume(): log, early-stop, checkpoint, stop on request, finish the run folder.

    `loop` is a checkpoint's position (last epoch done, seconds so far, divergence baseline).
    """
    started = time.perf_counter() - (loop["seconds"] if loop else 0.0)
    X, Y = data.X["train"], data.Y["train"]
    has_dev = "dev" in data.X
    es, stopper = cfg.regularization.early_stopping, t.stopper
    epochs, log_every, every = cfg.training.epochs, cfg.training.log_every, cfg.training.checkpoint_every
    last = epochs - 1
    epochs_run = loop["epoch"] + 1 if loop else 0
    checkpointed = loop["epoch"] if loop else None  # the epoch the kept checkpoint ends with
    interrupted = False

    def checkpoint(epoch: int) -> None:
        nonlocal checkpointed
        # The epoch's cost is taken before its last update, which may have left inf in the weights:
        # a checkpoint must hold the last finite ones.
        check_finite(epoch, 0.0, t.params)
        save_checkpoint(run, t, {"epoch": epoch, "seconds": time.perf_counter() - started, "baseline": baseline,
                                 "config": checked_config(cfg, data.n_x)})
        checkpointed = epoch

    def mark(status: str, reason: str) -> None:
        run.flush_history()
        summary.update(status=status, stop_reason=reason, epochs_run=epochs_run, duration_seconds=round(time.perf_counter() - started, 3))
        run.write_json("summary.json", summary)

    # Overflow is reported once, as divergence naming its epoch and array; numpy would warn on every step.
    with np.errstate(all="ignore"):
        try:
            baseline = loop["baseline"] if loop else initial_cost(data, t)
            for r in train_epochs(
                X,
                Y,
                t.params,
                t.state,
                t.net,
                t.optimizer,
                build_schedule(cfg),
                epochs,
                cfg.training.batch_size,
                build_permutation(cfg, t.rng, X.shape[1]),
                dropout_rng=build_dropout_rng(cfg, t.rng),
                augment=t.augment,
                start_epoch=epochs_run,
                grad_norms=cfg.training.log_norms,
                accumulate=t.accumulate,
            ):
                epochs_run = r.epoch + 1
                row = None
                dev = evaluate(data.X["dev"], data.Y["dev"], t.params, t.net, t.state) if stopper or has_dev and (
                    r.epoch % log_every == 0 or r.epoch == last) else None
                stop = stopper.update(r.epoch, dev[0] if es.monitor == "dev_cost" else dev[1], t.params, t.state) if stopper else False
                run.log_curve(r.epoch, r.learning_rate, r.cost, r.data_cost, *(dev or (None, None) if has_dev else ()))
                if r.epoch % log_every == 0 or r.epoch == last or stop:
                    row = {
                        "epoch": r.epoch,
                        "iteration": r.iterations,
                        "learning_rate": r.learning_rate,
                        "cost": r.cost,
                        "data_cost": r.data_cost,
                        "penalty": r.penalty,
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                    if has_dev:
                        row["dev_cost"], row["dev_accuracy"] = dev
                    if cfg.training.log_norms:
                        row.update(norm_row(t.params, r.grad_norms, t.net.L))
                    run.log(row)
                # After logging: a run that diverges keeps the row of the epoch it diverged in (epoch 0 included).
                check_growth(r, baseline, cfg.training.divergence_factor)
                if progress is not None:
                    progress(r, row)
                if stop or epochs_run == epochs:
                    break
                if every is not None and epochs_run % every == 0:
                    checkpoint(r.epoch)
                # Checked once per epoch: a signal handler only sets the event, so the epoch always completes.
                if interrupt is not None and interrupt.is_set():
                    interrupted = True
                    break
            if interrupted:
                if checkpointed != epochs_run - 1:
                    checkpoint(epochs_run - 1)
                run.write_json("metrics.json", split_metrics(cfg, data, t))
        except Diverged as e:
            mark("diverged", str(e))
            kept = f"; the last checkpoint, after epoch {checkpointed}, is kept in {run.path(CHECKPOINT)}" if checkpointed is not None else ""
            raise DltrainError(f"{e} (history so far kept in {run.dir}{kept})") from None
        except KeyboardInterrupt:
            # A second Ctrl-C stops at once, mid-epoch or mid-write: the last complete checkpoint stands.
            mark("interrupted", f"aborted during epoch {epochs_run}")
            then = (f"it resumes from its last checkpoint, after epoch {checkpointed}: dltrain train --resume {run.dir}"
                    if checkpointed is not None else f"it has no checkpoint to resume from: train it again with dltrain train {run.path('config.yaml')}")
            raise Interrupted(f"aborted during epoch {epochs_run} of {epochs}; {then}", run.dir) from None
        except DltrainError as e:  # a run file that cannot be written (disk full, permissions)
            mark_failed(run, summary, str(e), epochs_run, started)
            raise

    if interrupted:
        mark("interrupted", f"interrupted after epoch {epochs_run - 1}")
        raise Interrupted(
            f"interrupted after epoch {epochs_run - 1} of {epochs}: checkpoint, history and metrics so far are in {run.dir}\n"
            f"resume with: dltrain train --resume {run.dir}",
            run.dir,
        )

    try:
        return finish(cfg, data, t, run, summary, epochs_run, started, artist)
    except DltrainError as e:
        mark_failed(run, summary, str(e), epochs_run, started)
        raise
    except Exception as e:  # a figure matplotlib cannot draw: the trained model is kept, the run is not left 'running'
        message = f"{run.dir}: training finished but writing its results failed ({type(e).__name__}: {one_line(e)}); the model is in {run.path('model.h5')}"
        mark_failed(run, summary, message, epochs_run, started)
        raise DltrainError(message) from None


def mark_failed(run: RunWriter, summary: dict, reason: str, epochs_run: int, started: float) -> None:
    """Mark the run 'failed' as far as the disk allows: a full disk may refuse the history and still
    take the small summary.json (or refuse both; the error being raised says why either way)."""
    with contextlib.suppress(DltrainError):
        run.flush_history()
    summary.update(status="failed", stop_reason=reason, epochs_run=epochs_run, duration_seconds=round(time.perf_counter() - started, 3))
    try:
        run.write_json("summary.json", summary)
    except DltrainError:
        run.overwrite_in_place("summary.json", json.dumps(summary, indent=2) + "\n")


def finish(cfg: Config, data: Prepared, t: Training, run: RunWriter, summary: dict, epochs_run: int, started: float,
           artist: Artist | None = None) -> Run:
    """After the last epoch: metrics, model.h5, figures, the completed summary; the checkpoint goes."""
    es, stopper, epochs = cfg.regularization.early_stopping, t.stopper, cfg.training.epochs
    run.flush_history()
    marks = {}
    stop_reason = "finished all epochs"
    if stopper is not None and stopper.best_epoch is not None and epochs_run < epochs:
        stop_reason = early_stop_reason(es, stopper, epochs_run - 1, epochs)
        marks = {"stopped": epochs_run - 1, "best": stopper.best_epoch}
        summary.update(stopped_epoch=epochs_run - 1, best_epoch=stopper.best_epoch, best_value=stopper.best_value,
                       restored_best=es.restore_best)
        if es.restore_best:
            stopper.restore(t.params, t.state)
    metrics = split_metrics(cfg, data, t)
    run.write_json("metrics.json", metrics)
    release_buffers(data)
    run.save_model(
        "model.h5",
        params=t.params,
        state=t.state,
        normalization=data.normalization,
        optimizer=t.optimizer.state_dict(),
        config=json.dumps(resolved_config(cfg, data.n_x)),
        classes=json.dumps(data.classes),
        image_shape=json.dumps(data.image_shape),
    )
    drawn = artist.ask("figures", marks=marks) if artist is not None else None
    notes = drawn["notes"] if drawn is not None else draw_figures(cfg, data, t, run, marks)
    if notes:
        summary["notes"] = notes
    summary.update(status="completed", stop_reason=stop_reason, epochs_run=epochs_run,
                   duration_seconds=round(time.perf_counter() - started, 3))
    run.write_json("summary.json", summary)
    # The finished model supersedes the checkpoint; a completed run is never resumed.
    run.remove(CHECKPOINT)
    if artist is None or artist.ask("report") is None:
        write_report(run.dir, trained(cfg, data, t, run), data)
    return Run(run.dir)

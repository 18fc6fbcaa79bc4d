"""`dltrain search`: random search trials, coarse to fine; sampling and executors are in dltrain.tuning."""

import contextlib
import copy
import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import yaml

from dltrain import plots, tuning
from dltrain.commands.checkpoint import CHECKPOINT
from dltrain.commands.train import resume, train
from dltrain.config import Config, apply_overrides, get_path, load_space, load_tree, set_path, validate_config
from dltrain.errors import DltrainError, Interrupted
from dltrain.runs import (
    atomic_write,
    claim,
    completed_metrics,
    discard_unfinished,
    folder_locked,
    read_json_file,
)
from dltrain.tracking import track_run


def trial_metrics(metrics: dict) -> dict:
    """The numbers a search ranks by, flat: dev_accuracy, dev_cost, train_accuracy, train_cost."""
    return {f"{split}_{name}": metrics[split][name] for split in ("dev", "train") for name in ("accuracy", "cost")}


TRIAL_POLL_SECONDS = 0.5


def wait_for_other_worker() -> None:
    """Between attempts to claim a trial another worker holds (see run_trial)."""
    time.sleep(TRIAL_POLL_SECONDS)


def stored_result(run_dir: Path) -> dict | None:
    """The result a trial's run folder already holds: completed (with dev metrics) or diverged (it would
    diverge again); None for a missing, unfinished or failed folder."""
    summary = read_json_file(run_dir / "summary.json")
    if not isinstance(summary, dict):
        return None
    epochs = summary.get("epochs_run", 0)
    if summary.get("status") == "diverged":
        return {"status": "diverged", "error": str(summary.get("stop_reason")), "epochs_run": epochs, "seconds": summary.get("duration_seconds")}
    metrics = completed_metrics(run_dir)
    if metrics is None or not isinstance(metrics.get("dev"), dict):
        return None
    try:
        return {"status": "completed", "metrics": trial_metrics(metrics), "epochs_run": epochs, "seconds": summary.get("duration_seconds")}
    except (KeyError, TypeError):
        return None


def resumable(run_dir: Path) -> bool:
    """A trial cut off by an interrupt or a killed worker that left a checkpoint: resuming it ends where
    an uninterrupted run would have (bit for bit), sooner than training it again."""
    summary = read_json_file(run_dir / "summary.json")
    return (isinstance(summary, dict) and summary.get("status") in ("running", "interrupted", "failed")
            and (run_dir / CHECKPOINT).is_file())


@contextlib.contextmanager
def sigterm_interrupts(event: threading.Event):
    """In a local worker process (tasks run in its main thread), SIGTERM, which the search's abort
    sends, sets the trial's interrupt: the trial ends its epoch, checkpoints and is marked
    'interrupted' instead of dying 'running', and the rerun resumes it. Dask runs tasks in threads,
    which cannot handle signals: nothing changes there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_trial(tree: dict, run_dir: str) -> dict:
    """One search trial, in a worker: train silently into run_dir; returns status, metrics or error.

    The worker first claims the trial (an flock on trials/trial-NNN.lock, waiting while another
    worker holds it: an interrupted search's trial still running on a Dask worker), then reuses
    what the folder holds: a completed or diverged run is returned as it is, a run cut off with a
    checkpoint is resumed from it, anything else is started afresh. A DltrainError (divergence, a data
    problem) becomes a failed result, so one bad trial never stops the search.
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    event = threading.Event()
    with claim(run_dir.with_suffix(".lock"), wait_for_other_worker), sigterm_interrupts(event):
        stored = stored_result(run_dir)
        if stored is not None:
            return stored
        while folder_locked(run_dir):  # trained by a process outside the search (dltrain train --resume)
            wait_for_other_worker()
        with warnings.catch_warnings():
            # A diverging trial's overflow warnings would print over the parent's progress display.
            warnings.simplefilter("ignore")
            try:
                outcome = None
                if resumable(run_dir):
                    try:
                        outcome = resume(run_dir, progress=False, interrupt=event)
                    except Interrupted:
                        raise
                    except DltrainError:  # a checkpoint it cannot continue: train afresh
                        pass
                if outcome is None and (stored := stored_result(run_dir)) is not None:
                    return stored  # the resumed run diverged
                if outcome is None:
                    discard_unfinished(run_dir)
                    outcome = train(validate_config(tree), run_dir=run_dir, progress=False, interrupt=event)
            except Interrupted:
                raise  # the search is being stopped: no result, the rerun resumes the trial
            except DltrainError as e:
                summary = read_json_file(run_dir / "summary.json") or {}
                return {"status": "diverged" if summary.get("status") == "diverged" else "failed", "error": str(e),
                        "epochs_run": summary.get("epochs_run", 0), "seconds": round(time.perf_counter() - started, 3)}
    return {"status": "completed", "metrics": trial_metrics(outcome.metrics),
            "epochs_run": outcome.summary["epochs_run"], "seconds": outcome.summary["duration_seconds"]}


class Trial(NamedTuple):
    number: int
    round: int
    values: dict
    config: dict
    run_dir: Path


class SearchOutcome(NamedTuple):
    out: Path
    ranked: list[dict]
    best: dict | None
    space: dict  # key path -> distribution, as searched in round 1


def apply_values(tree: dict, values: dict, source: str) -> Config:
    """The base config with the sampled values set at their key paths, validated (DltrainError exit 2 naming `source`)."""
    tree = copy.deepcopy(tree)
    for key, value in values.items():
        try:
            set_path(tree, key, value)
        except DltrainError as e:
            raise DltrainError(f"{source}: {e}", 2) from None
    return validate_config(tree, source=source)


def check_space(tree: dict, space: dict, source: str, problems: list[str] | None = None) -> None:
    """Before any value is drawn: every key path must exist in the config and accept both ends of its range and every choice.

    Keys are probed in file order, one end or option at a time, on top of a value already accepted
    for each earlier key, so keys that depend on each other (a choice of layer lists, then one
    layer's size) are probed together and every problem is reported with the end or option that
    causes it, never with a random draw, which is not in the space file. A problem every value of a
    key has (an unknown key path) is reported once, without a value. Raises DltrainError (exit 2) with
    every problem, after those already in `problems` (load_space's).
    """
    accepted: dict = {}
    problems = list(problems or [])
    for key, d in space.items():
        if d.kind == "choice":
            probes = [(value, f"{key}={value!r}") for value in d.options]
        else:
            probes = [(d.low, f"{key}={d.low!r} (the low end of {d.spec()})"), (d.high, f"{key}={d.high!r} (the high end of {d.spec()})")]
        failures: dict[str, list[str]] = {}  # problem -> the probes that have it
        for value, label in probes:
            try:
                apply_values(tree, {**accepted, key: value}, source)
            except DltrainError as e:
                for line in str(e).splitlines():
                    failures.setdefault(line, []).append(label)
            else:
                accepted.setdefault(key, value)
        for line, labels in failures.items():
            if len(labels) == len(probes):
                labelled = [line]
            else:
                labelled = [f"{source}: {label}: {line.removeprefix(f'{source}: ')}" for label in labels]
            problems += [line for line in labelled if line not in problems]
    if problems:
        raise DltrainError("\n".join(problems), 2)


def plan_round(tree: dict, space: dict, out: Path, first_trial: int, round_number: int, n: int, seed: int, source: str) -> list[Trial]:
    """Draw round r's values up front from its own seeded stream; the configs are validated before anything runs."""
    trials = []
    for i, values in enumerate(tuning.sample_trials(space, n, tuning.round_rng(seed, round_number))):
        number = first_trial + i
        cfg = apply_values(tree, values, f"{source}: trial {number} ({', '.join(f'{k}={v!r}' for k, v in values.items())})")
        resolved = cfg.model_dump(mode="json")
        # Record the values as the config holds them (YAML reads 1e-4 as text; the config makes it a number).
        values = {key: get_path(resolved, key) for key in space}
        trials.append(Trial(number, round_number, values, resolved, out / "trials" / f"trial-{number:03d}"))
    return trials


def finished_record(trial: Trial) -> dict | None:
    """The stored outcome of a trial an earlier (interrupted) search finished, from its record or its
    run folder. A complete run folder wins over a record saying `failed`: searches before trial
    claims recorded a trial that another worker finished as failed ("run folder ... already exists")."""
    record = read_json_file(trial.run_dir.with_suffix(".json"))
    if isinstance(record, dict) and record.get("status") in ("completed", "diverged"):
        return trial_record(trial, record)
    stored = stored_result(trial.run_dir)
    if stored is not None and stored["status"] == "completed":
        return trial_record(trial, stored)
    if isinstance(record, dict) and record.get("status") == "failed":
        return trial_record(trial, record)
    return None


def trial_record(trial: Trial, result: dict) -> dict:
    return {"trial": trial.number, "round": trial.round, "status": result["status"], "values": trial.values,
            "metrics": result.get("metrics", {}), "epochs_run": result.get("epochs_run"), "seconds": result.get("seconds"),
            "run_dir": str(trial.run_dir), "error": result.get("error")}


def open_search_folder(out: Path, spec: dict) -> None:
    """Create the search folder, or check that an existing one holds this same search (then it resumes)."""
    spec_file = out / "search.json"
    if out.exists() and not out.is_dir():
        raise DltrainError(f"--out {out} is a file; choose a folder", 2)
    if out.exists() and not spec_file.is_file() and any(out.iterdir()):
        raise DltrainError(f"{out} exists and is not a dltrain search folder; choose another --out", 2)
    stored = read_json_file(spec_file)
    if stored is not None and stored != spec:
        changed = ", ".join(k for k in spec if stored.get(k) != spec[k])
        raise DltrainError(f"{out} holds a different search (changed: {changed}); rerun it with the same settings to resume, "
                           "or choose another --out", 2)
    try:
        (out / "trials").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DltrainError(f"cannot create the search folder {out}: {e.strerror}") from None
    if stored is None:
        atomic_write(spec_file, json.dumps(spec, indent=2) + "\n")


def write_search_results(out: Path, records: list[dict], space: dict, configs: dict[int, dict], metric: str) -> dict | None:
    """leaderboard.csv, best.yaml and search.png from the trials so far; returns the best record."""
    ranked = tuning.rank(records, metric)
    atomic_write(out / "leaderboard.csv", tuning.leaderboard_csv(ranked, list(space), metric))
    done = [r for r in ranked if r["status"] == "completed"]
    if not done:
        return None
    best = done[0]
    m = best["metrics"]
    header = (f"# best trial {best['trial']} (round {best['round']}) of the search in {out}: "
              f"dev_accuracy {m['dev_accuracy']:.4f}, dev_cost {m['dev_cost']:.6f}; run folder {best['run_dir']}\n")
    atomic_write(out / "best.yaml", header + yaml.safe_dump(configs[best["trial"]], sort_keys=False))
    scales = {key: tuning.plot_scale(d) for key, d in space.items()}
    atomic_write(out / "search.png", plots.png(plots.search_scatter(done, scales, metric, f"{out.name}: {metric} of {len(done)} trials")))
    return best


def search(
    config: "str | Path | dict | Config",
    space: "str | Path | dict",
    out: "str | Path | None" = None,
    trials: int = 20,
    rounds: int = 1,
    workers: int | None = None,
    scheduler: str | None = None,
    metric: str = "dev_accuracy",
    seed: int = 0,
    overrides: list[str] = (),
    progress=None,
    mlflow: str | None = None,
) -> SearchOutcome:
    """Random search over `space` around the base `config`, coarse to fine; writes the search folder (`dltrain search`).

    config: a YAML file's path, a mapping, or a Config (`overrides` apply to the first two). space: a
    space file's path or a mapping of config key paths to distributions ('log(1e-4, 1)',
    'choice([relu, tanh])'). out: the search folder (default runs/<name>-search); rerunning into it
    resumes. workers: parallel trials (default: the CPU count); scheduler: a Dask scheduler address.

    Every trial's values are drawn in this process from round_rng(seed, round), before that round
    runs, and each trial keeps the base config's seeds (same init stream, same dev split), so the
    trials and their results are the same whichever executor runs them. Finished trials of an
    earlier run of the same search are reused. `progress.round(number, specs, trials)` is called
    as each round starts (with its distributions), `progress.trial(record, reused)` as each trial is known.
    mlflow (or the config's tracking.mlflow): once the search ends, its folder is logged there as a
    parent run with every trial nested under it (trials do not log themselves); a failing store is a warning.
    """
    if isinstance(config, Config):
        tree, source = config.model_dump(mode="json"), "config"
    elif isinstance(config, dict):
        tree, source = copy.deepcopy(config), "config"
        apply_overrides(tree, list(overrides))
    else:
        tree, source = load_tree(config, list(overrides)), str(config)
    space_source = str(space) if not isinstance(space, dict) else "space"
    base = validate_config(tree, source=source)
    # The search logs its trials to MLflow, nested, when it ends; where copies go is not part of
    # the search's identity (search.json), so another --mlflow still resumes the same search.
    tracking = tree.pop("tracking", None)
    if isinstance(tracking, dict):
        tree["tracking"] = {**tracking, "mlflow": None}
    space_problems: list[str] = []  # reported with check_space's, so the user sees every problem at once
    space = load_space(space, space_problems)
    out = Path(out) if out is not None else Path("runs") / f"{base.name}-search"
    workers = workers or os.cpu_count() or 1
    if metric not in tuning.METRICS:
        raise DltrainError(f"--metric {metric!r}: allowed: {', '.join(tuning.METRICS)}", 2)
    if base.data.dev_fraction == 0 and base.data.dev_size is None:
        raise DltrainError(f"{source}: search ranks trials on the dev set but the config has none; "
                           "set data.dev_fraction or data.dev_size, e.g. --set data.dev_fraction=0.2", 2)
    if rounds > 1 and trials < 2 * rounds:
        raise DltrainError(f"--trials {trials} is too few for --rounds {rounds}: each round needs at least 2 trials", 2)
    sizes = tuning.round_sizes(trials, rounds)
    check_space(tree, space, space_source, space_problems)
    first = plan_round(tree, space, out, 1, 1, sizes[0], seed, space_source)
    spec = {"config": json.loads(json.dumps({k: v for k, v in tree.items() if k != "tracking"}, default=str)), "space": {k: d.spec() for k, d in space.items()},
            "seed": seed, "trials": trials, "rounds": rounds, "metric": metric}
    open_search_folder(out, spec)

    records: list[dict] = []
    configs: dict[int, dict] = {}
    spaces: list[dict[str, str]] = []
    current, best = space, None
    executor, futures = None, {}
    try:
        for number, size in enumerate(sizes, start=1):
            if number > 1:
                current = tuning.narrow(current, [r for r in records if r["round"] == number - 1], metric)
                planned = plan_round(tree, current, out, sum(sizes[: number - 1]) + 1, number, size, seed, space_source)
                atomic_write(out / f"space-round-{number}.yaml", yaml.safe_dump({k: d.spec() for k, d in current.items()}, sort_keys=False))
            else:
                planned = first
            spaces.append({k: d.spec() for k, d in current.items()})
            atomic_write(out / "rounds.json", json.dumps([{"round": i, "space": s} for i, s in enumerate(spaces, 1)], indent=2) + "\n")
            configs.update({t.number: t.config for t in planned})
            if progress is not None:
                progress.round(number, current, len(planned))
            pending = []
            for t in planned:
                record = finished_record(t)
                if record is None:
                    pending.append(t)
                    continue
                records.append(record)
                if progress is not None:
                    progress.trial(record, True)
            if pending:
                executor = executor or tuning.open_executor(min(workers, max(sizes)), scheduler)
                futures = {executor.submit(run_trial, t.config, str(t.run_dir)): t for t in pending}
                for future in executor.as_completed(futures):
                    t = futures[future]
                    try:
                        result = future.result()
                    except Exception as e:
                        raise DltrainError(f"trial {t.number} could not run ({type(e).__name__}: {e}); "
                                           "the finished trials are kept: rerun the same command to resume") from None
                    record = trial_record(t, result)
                    atomic_write(t.run_dir.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
                    records.append(record)
                    atomic_write(out / "leaderboard.csv", tuning.leaderboard_csv(records, list(space), metric))
                    if progress is not None:
                        progress.trial(record, False)
                futures = {}
            best = write_search_results(out, records, space, configs, metric)
    except BaseException as e:
        if executor is not None:
            executor.abort(futures)
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"interrupted: the finished trials are kept in {out}; rerun the same command to resume", out) from None
        raise
    if executor is not None:
        executor.close()
    # Trials wrote their own TensorBoard files; the search adds the MLflow parent with its trials nested.
    track_run(out, base.tracking.model_copy(update={"tensorboard": False}), mlflow)
    return SearchOutcome(out, tuning.rank(records, metric), best, space)

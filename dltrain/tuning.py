"""Random hyperparameter search: sample each value on its scale, narrow coarse to fine, rank trials, run them in parallel.

Plain functions over the validated space (config.load_space: key path -> Range/Choice) and trial
records (dicts: trial, round, values, status, metrics, error, ...). Executing a trial is
commands.search.run_trial; this module only decides what to run and where.
"""

import concurrent.futures
import csv
import io
import json
import math
import multiprocessing
import signal
import time

import numpy as np

from dltrain.config import Choice
from dltrain.errors import DltrainError

# ---- sampling ---------------------------------------------------------------------------------


def sample_uniform(d, rng: np.random.Generator) -> float:
    return float(rng.uniform(d.low, d.high))


def sample_int(d, rng: np.random.Generator) -> int:
    return int(rng.integers(d.low, d.high, endpoint=True))


def sample_log(d, rng: np.random.Generator) -> float:
    """r uniform in [log10 a, log10 b], value 10^r: each decade gets the same share of draws."""
    return float(10.0 ** rng.uniform(math.log10(d.low), math.log10(d.high)))


def sample_one_minus_log(d, rng: np.random.Generator) -> float:
    """1 - 10^r, r uniform in [log10(1 - b), log10(1 - a)]: as many draws in [0.9, 0.99] as in [0.99, 0.999]."""
    return float(1.0 - 10.0 ** rng.uniform(math.log10(1.0 - d.high), math.log10(1.0 - d.low)))


def sample_choice(d, rng: np.random.Generator):
    return d.options[int(rng.integers(len(d.options)))]


def sample_trials(space: dict, n: int, rng: np.random.Generator) -> list[dict]:
    """n dicts key path -> value, drawn trial by trial in the space's key order."""
    return [{key: SAMPLERS[d.kind](d, rng) for key, d in space.items()} for _ in range(n)]


def round_rng(seed: int, round_number: int) -> np.random.Generator:
    """Round r's own stream, so its draws do not depend on how many earlier rounds drew."""
    return np.random.default_rng([seed, round_number])


def round_sizes(trials: int, rounds: int) -> list[int]:
    """Split the trials over the rounds as evenly as possible, earlier rounds taking the remainder."""
    return [trials // rounds + (1 if r < trials % rounds else 0) for r in range(rounds)]


# ---- ranking and narrowing --------------------------------------------------------------------

METRICS = ("dev_accuracy", "dev_cost")


def rank(records: list[dict], metric: str) -> list[dict]:
    """Completed trials best first (ties broken by the other dev metric, then trial number), then the rest by trial."""
    def key(r):
        m = r["metrics"]
        if metric == "dev_accuracy":
            return (-m["dev_accuracy"], m["dev_cost"], r["trial"])
        return (m["dev_cost"], -m["dev_accuracy"], r["trial"])

    done = sorted((r for r in records if r["status"] == "completed"), key=key)
    return done + sorted((r for r in records if r["status"] != "completed"), key=lambda r: r["trial"])


def top_trials(records: list[dict], metric: str, fraction: float = 0.25, at_least: int = 2) -> list[dict]:
    """The best `fraction` of the completed trials, at least `at_least` of them (all when fewer completed)."""
    done = [r for r in rank(records, metric) if r["status"] == "completed"]
    return done[: max(at_least, math.ceil(fraction * len(done)))]


def narrow(space: dict, records: list[dict], metric: str) -> dict:
    """Coarse to fine: each numeric range shrinks to the span of the previous round's best trials.

    The span is taken on the range's own scale, which for log and one_minus_log is the same
    [min, max] of the values because 10^r and 1 - 10^r are monotonic; the next round keeps sampling
    on that scale. A span of one value becomes choice([value]); choices stay as they are. With
    fewer than two completed trials there is nothing to zoom in on and the space is kept.
    """
    top = top_trials(records, metric)
    if len(top) < 2:
        return dict(space)
    narrowed = {}
    for key, d in space.items():
        if d.kind == "choice":
            narrowed[key] = d
            continue
        values = [r["values"][key] for r in top]
        low, high = min(values), max(values)
        if low == high:
            narrowed[key] = Choice(kind="choice", options=[low])
        else:
            narrowed[key] = d.model_copy(update={"low": low, "high": high})
    return narrowed


# ---- results ----------------------------------------------------------------------------------

METRIC_COLUMNS = ["dev_accuracy", "dev_cost", "train_accuracy", "train_cost"]


def leaderboard_columns(keys: list[str]) -> list[str]:
    return ["rank", "trial", "round", "status", *METRIC_COLUMNS, *keys, "epochs_run", "seconds", "run_dir", "error"]


def leaderboard_csv(records: list[dict], keys: list[str], metric: str) -> str:
    """leaderboard.csv: one row per trial, best first; list values (layer sizes) as JSON."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=leaderboard_columns(keys), lineterminator="\n")
    w.writeheader()
    for place, r in enumerate(rank(records, metric), start=1):
        row = {"rank": place if r["status"] == "completed" else "", **{k: r.get(k, "") for k in ("trial", "round", "status", "run_dir")}}
        row.update({c: r.get("metrics", {}).get(c, "") for c in METRIC_COLUMNS})
        row.update({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r["values"].items()})
        row.update(epochs_run=r.get("epochs_run", ""), seconds=r.get("seconds", ""), error=r.get("error") or "")
        w.writerow(row)
    return buf.getvalue()


def plot_scale(d) -> str:
    """x-axis of a hyperparameter in search.png: log for log, logit (spreads values near 1) for one_minus_log."""
    return {"log": "log", "one_minus_log": "logit", "choice": "category"}.get(d.kind, "linear")


# ---- executors --------------------------------------------------------------------------------


def _ignore_sigint() -> None:
    # Ctrl-C in a terminal signals the whole process group; only the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


ABORT_GRACE_SECONDS = 10.0


class LocalProcesses:
    """`workers` processes on this machine (spawned, so they start clean on every platform)."""

    def __init__(self, workers: int):
        self.pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
        )

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def as_completed(self, futures):
        return concurrent.futures.as_completed(futures)

    def close(self) -> None:
        self.pool.shutdown()

    def abort(self, futures) -> None:
        """Stop now: running trials get SIGTERM, which makes each end its epoch, checkpoint and mark its
        folder 'interrupted' (commands.search.sigterm_interrupts; the rerun resumes it); a worker not done
        within ABORT_GRACE_SECONDS is killed (its folder is resumed or redone). Queued trials are dropped."""
        # ProcessPoolExecutor.terminate_workers() only exists from Python 3.14 on.
        processes = list((self.pool._processes or {}).values())
        for process in processes:
            process.terminate()
        # Without this the workers, their trials stopped, would wait for more work until killed.
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + ABORT_GRACE_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskScheduler:
    """Trials as tasks on an existing dask.distributed cluster; its futures have the same result()/as_completed."""

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise DltrainError("--scheduler needs dask.distributed: pip install 'dltrain[cluster]'") from None
        try:
            self.client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise DltrainError(f"cannot reach the Dask scheduler at {address}: {e}") from None

    def submit(self, fn, *args):
        # pure=False: every submission is a new task, never a cached result of an earlier search.
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, futures):
        from distributed import as_completed

        return as_completed(futures, loop=self.client.loop)

    def close(self) -> None:
        self.client.close()

    def abort(self, futures) -> None:
        """Cancel the trials; a task already running on a worker finishes there and its result is dropped."""
        self.client.cancel(list(futures))
        self.client.close()


def open_executor(workers: int, scheduler: str | None):
    return DaskScheduler(scheduler) if scheduler else LocalProcesses(workers)


SAMPLERS = {
    "uniform": sample_uniform,
    "int": sample_int,
    "log": sample_log,
    "one_minus_log": sample_one_minus_log,
    "choice": sample_choice,
}

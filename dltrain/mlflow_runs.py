"""Finished run folders (and search folders) copied into an MLflow tracking store, with MlflowClient.

The copy is made from the folder after the run ends, never from inside the training loop: the
folder is the source of truth, a store that is down costs one warning, and `dltrain log` uploads
the same folder later with this same code. A run is found again by its `dltrain_run` tag (folder
name and start time), so logging a folder twice gives one MLflow run; an upload that broke off
half-way (no `dltrain_upload: complete` tag) is deleted and made again.

Needs mlflow-skinny (the `mlflow` extra); commands import this module only when asked to log.
"""

import csv
import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from dltrain import __version__
from dltrain.runs import load_run, read_json_file

# Files of a run folder that become artifacts (when present): plots, config, model, the records.
ARTIFACTS = ("config.yaml", "model.h5", "model.onnx", "history.csv", "metrics.json", "summary.json")
SEARCH_ARTIFACTS = ("search.json", "leaderboard.csv", "best.yaml", "search.png", "rounds.json")
NOT_METRICS = ("epoch", "iteration", "seconds")
BATCH = 100  # MLflow takes at most 100 params or tags, 1000 metrics per log_batch request
# An unreachable server is given up on after a few seconds, not MLflow's default 7 retries with backoff (minutes).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def flatten(tree, prefix: str = "") -> dict[str, str]:
    """A config tree as dotted keys -> text: {'optimizer': {'name': 'adam'}} -> {'optimizer.name': 'adam'}; lists as JSON."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(tree) if isinstance(tree, (list, type(None))) else str(tree)}


@contextmanager
def quiet_store():
    """MLflow's own INFO lines (creating tables, run links) off, and short HTTP retries unless the user set their own."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    added = [k for k in HTTP_DEFAULTS if k not in os.environ]
    caught = warnings.catch_warnings()
    caught.__enter__()
    # SQLAlchemy 2.1 warns about a loader option MLflow's sqlite store uses: the user can do nothing about it.
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        os.environ.update({k: HTTP_DEFAULTS[k] for k in added})
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        for k in added:
            os.environ.pop(k, None)
        caught.__exit__(None, None, None)


def experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """The experiment's id, created if missing; a local sqlite store keeps its artifacts beside the database file
    (mlartifacts/<experiment>), not in whatever folder dltrain happens to run in."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        # SQLAlchemy's form: sqlite:///relative.db (path "/relative.db"), sqlite:////absolute.db (path "//absolute.db").
        db = Path(unquote(parsed.path[1:]))
        location = (db.resolve().parent / "mlartifacts" / re.sub(r"[^A-Za-z0-9._-]", "_", name)).as_uri()
    return client.create_experiment(name, artifact_location=location)


def millis(iso: str | None, plus_seconds: float = 0.0) -> int | None:
    if not iso:
        return None
    return int((datetime.fromisoformat(iso).timestamp() + plus_seconds) * 1000)


def batched(client: MlflowClient, run_id: str, metrics=(), params=()) -> None:
    """log_batch within MLflow's limits per request: 100 params, 1000 metrics."""
    metrics, params = list(metrics), list(params)
    for i in range(0, len(params), BATCH):
        client.log_batch(run_id, params=params[i:i + BATCH])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def existing_run(client: MlflowClient, exp: str, key: str):
    """The complete MLflow copy of this folder, or None; broken-off copies are deleted."""
    found = client.search_runs([exp], filter_string=f"tags.dltrain_run = '{key}'", max_results=50)
    complete = [r for r in found if r.data.tags.get("dltrain_upload") == "complete"]
    for r in found:
        if r not in complete:
            client.delete_run(r.info.run_id)
    return complete[0] if complete else None


def artifact_names(run_dir: Path) -> list[str]:
    """The run folder's files that become artifacts: records, model, plots, TensorBoard file."""
    names = [*ARTIFACTS, *sorted(p.name for p in run_dir.glob("*.png")), *sorted(p.name for p in run_dir.glob("events.out.tfevents*"))]
    return [n for n in names if (run_dir / n).is_file()]


def run_key(run_dir: Path, summary: dict) -> str:
    # Quotes cannot appear in a run folder name (new_run_dir allows letters, digits, . _ -) or an ISO time.
    return re.sub(r"['\\\\]", "_", f"{Path(run_dir).name}@{summary.get('started', '')}")


def log_run(run_dir: Path, uri: str, experiment: str | None = None, parent: str | None = None,
            client: MlflowClient | None = None, extra_tags: dict | None = None) -> tuple[str, bool]:
    """Copy one run folder into the MLflow store at `uri`; -> (MLflow run id, True if it was already there).

    params: config.yaml flattened to dotted keys; metrics: each history.csv column per logged epoch
    (step = epoch, timestamp = start + seconds), then final.<split>.cost/accuracy and diagnosis.* from
    metrics.json; tags: dataset, status, stop_reason, dltrain_version, data_fingerprint, diagnosis;
    artifacts: the plots, config.yaml, model.h5 and the record files. `parent`: an MLflow run id to nest under.
    """
    run_dir = Path(run_dir)
    record = load_run(run_dir)
    summary, config = record.summary, record.config
    with quiet_store():
        client = client or MlflowClient(tracking_uri=uri)
        exp = experiment_id(client, uri, experiment or summary.get("name") or config.get("name") or "dltrain")
        key = run_key(run_dir, summary)
        done = existing_run(client, exp, key)
        if done is not None:
            # Files the folder gained since (model.onnx after an export, a TensorBoard file) are added.
            there = {a.path for a in client.list_artifacts(done.info.run_id)}
            for name in artifact_names(run_dir):
                if name not in there:
                    client.log_artifact(done.info.run_id, str(run_dir / name))
            return done.info.run_id, True
        tags = {"dltrain_run": key, "run_folder": str(run_dir.resolve()), "dataset": str(config.get("data", {}).get("dataset", "")),
                "status": str(summary.get("status", "")), "stop_reason": str(summary.get("stop_reason", "")),
                "dltrain_version": str(summary.get("versions", {}).get("dltrain", __version__)),
                "data_fingerprint": str(summary.get("data_fingerprint", "")), "mlflow.source.name": "dltrain",
                **(extra_tags or {})}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        diagnosis = record.metrics.get("diagnosis", {})
        if diagnosis.get("problem"):
            tags["diagnosis"] = diagnosis["problem"]
        start = millis(summary.get("started"))
        run = client.create_run(exp, start_time=start, tags=tags, run_name=run_dir.name)
        run_id = run.info.run_id
        t0 = start or run.info.start_time
        metrics = []
        for row in record.history:
            stamp = t0 + int(1000 * (row.get("seconds") or 0.0))
            metrics += [Metric(k, float(v), stamp, int(row["epoch"])) for k, v in row.items() if k not in NOT_METRICS and v is not None]
        end = t0 + int(1000 * float(summary.get("duration_seconds") or 0.0))
        last = int(summary.get("epochs_run") or 1) - 1
        for split in ("train", "dev", "test"):
            for name in ("cost", "accuracy"):
                if isinstance(record.metrics.get(split, {}).get(name), (int, float)):
                    metrics.append(Metric(f"final.{split}.{name}", float(record.metrics[split][name]), end, last))
        for name, value in diagnosis.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(f"diagnosis.{name}", float(value), end, last))
        params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
        batched(client, run_id, metrics, params)
        for name in artifact_names(run_dir):
            client.log_artifact(run_id, str(run_dir / name))
        client.set_tag(run_id, "dltrain_upload", "complete")
        client.set_terminated(run_id, "FINISHED" if summary.get("status") == "completed" else "FAILED", end_time=end)
    return run_id, False


def log_search(search_dir: Path, uri: str, experiment: str | None = None) -> tuple[str, list[str]]:
    """A search folder as a parent MLflow run (the space, the best trial's metrics, leaderboard and plot)
    with each finished trial's run folder nested under it; -> (parent run id, trial run ids)."""
    search_dir = Path(search_dir)
    spec = read_json_file(search_dir / "search.json") or {}
    name = experiment or spec.get("config", {}).get("name") or "dltrain"
    with quiet_store():
        client = MlflowClient(tracking_uri=uri)
        exp = experiment_id(client, uri, name)
        key = re.sub(r"['\\\\]", "_", f"search:{search_dir.resolve()}")
        found = client.search_runs([exp], filter_string=f"tags.dltrain_run = '{key}'", max_results=1)
        if found:
            parent = found[0].info.run_id
        else:
            parent = client.create_run(exp, tags={"dltrain_run": key, "run_folder": str(search_dir.resolve()), "kind": "search",
                                                  "dltrain_version": __version__, "mlflow.source.name": "dltrain"},
                                       run_name=search_dir.name).info.run_id
            params = [Param(f"space.{k}", str(v)) for k, v in spec.get("space", {}).items()]
            params += [Param(k, str(spec[k])) for k in ("metric", "trials", "rounds", "seed") if k in spec]
            batched(client, parent, params=params)
        children = []
        for trial in sorted((search_dir / "trials").glob("trial-*")):
            if trial.is_dir() and (trial / "summary.json").is_file():
                record = read_json_file(trial.with_suffix(".json")) or {}
                tags = {"trial": str(record.get("trial", trial.name.rsplit("-", 1)[-1].lstrip("0") or "0"))}
                children.append(log_run(trial, uri, name, parent, client, tags)[0])
        best = leaderboard_best(search_dir)
        if best:
            batched(client, parent, metrics=[Metric(f"best.{k}", v, millis(datetime.now().isoformat()), 0) for k, v in best.items()])
        for artifact in SEARCH_ARTIFACTS:
            if (search_dir / artifact).is_file():
                client.log_artifact(parent, str(search_dir / artifact))
        client.set_terminated(parent, "FINISHED")
    return parent, children


def leaderboard_best(search_dir: Path) -> dict[str, float]:
    """The first (best) completed row of leaderboard.csv: its dev/train accuracy and cost."""
    path = search_dir / "leaderboard.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("status") == "completed":
                out = {}
                for k in ("dev_accuracy", "dev_cost", "train_accuracy", "train_cost"):
                    try:
                        out[k] = float(row[k])
                    except (KeyError, TypeError, ValueError):
                        pass
                return out
    return {}

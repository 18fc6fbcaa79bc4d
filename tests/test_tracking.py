"""MLflow and TensorBoard copies of runs: written from the run folder, read back with MlflowClient and
TensorBoard's own event reader, and compared with history.csv, metrics.json, summary.json and config.yaml."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from dltrain.commands.log import log
from dltrain.errors import DltrainError, TrackingWarning
from dltrain.runs import load_run

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("tensorboard")
from mlflow import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata as hparams_metadata  # noqa: E402

from dltrain.mlflow_runs import flatten  # noqa: E402

runner = CliRunner()
PLANAR = {"name": "planar", "seed": 2, "data": {"dataset": "planar", "dev_fraction": 0.25},
          "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
          "optimizer": {"name": "gd", "learning_rate": 1.2}, "training": {"epochs": 60, "log_every": 20}}
HISTORY_METRICS = ("cost", "data_cost", "dev_cost", "dev_accuracy", "learning_rate")


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    """One local store for the module (creating one runs MLflow's migrations, seconds); each test has its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def only_run(client: MlflowClient, experiment: str):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def assert_run_matches_folder(client: MlflowClient, mlrun, run_dir):
    record = load_run(run_dir)
    assert mlrun.info.run_name == run_dir.name and mlrun.info.status == "FINISHED"
    assert mlrun.data.params == flatten(record.config)  # every resolved config key, dotted
    assert mlrun.data.params["optimizer.learning_rate"] == "1.2" and mlrun.data.params["model.layers"] == "[2, 4, 1]"
    for column in HISTORY_METRICS:
        history = client.get_metric_history(mlrun.info.run_id, column)
        assert sorted((m.step, m.value) for m in history) == [(row["epoch"], row[column]) for row in record.history]
    for split in ("train", "dev"):
        for name in ("cost", "accuracy"):
            assert mlrun.data.metrics[f"final.{split}.{name}"] == record.metrics[split][name]
    assert mlrun.data.metrics["diagnosis.variance"] == record.metrics["diagnosis"]["variance"]
    tags = mlrun.data.tags
    assert tags["diagnosis"] == record.metrics["diagnosis"]["problem"]
    assert (tags["dataset"], tags["status"], tags["dltrain_version"], tags["data_fingerprint"]) == (
        "planar", "completed", dltrain.__version__, record.summary["data_fingerprint"])
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"cost.png", "decision_boundary.png", "config.yaml", "model.h5", "history.csv", "metrics.json"} <= artifacts


def test_train_logs_to_mlflow_and_tensorboard_and_they_read_back(tmp_path, uri):
    run = dltrain.train({**PLANAR, "tracking": {"mlflow": uri, "tensorboard": True}}, runs_dir=tmp_path / "runs", progress=False)
    client = MlflowClient(tracking_uri=uri)
    mlrun = only_run(client, "planar")
    assert_run_matches_folder(client, mlrun, run.path)
    assert "events.out.tfevents.dltrain" in {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    # The local store keeps its artifacts beside the database, not in the working folder.
    assert (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / "planar").is_dir()
    # Logging the same folder again finds the run instead of copying it twice.
    again = log(run.path, uri)
    assert again.already and again.mlflow_run == mlrun.info.run_id
    only_run(client, "planar")

    record = load_run(run.path)
    events = EventAccumulator(str(run.path))
    events.Reload()
    for column in HISTORY_METRICS:
        scalars = events.Scalars(column)
        assert [s.step for s in scalars] == [row["epoch"] for row in record.history]
        assert [s.value for s in scalars] == pytest.approx([row[column] for row in record.history], rel=1e-6)
    assert events.Scalars("final/dev/accuracy")[0].value == pytest.approx(record.metrics["dev"]["accuracy"], rel=1e-6)
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["optimizer.learning_rate"].number_value == 1.2
    assert start.hparams["model.hidden_activation"].string_value == "tanh"
    assert start.hparams["model.layers"].string_value == "[2, 4, 1]"


def test_search_logs_a_parent_run_with_its_trials_nested(tmp_path, uri):
    space = {"optimizer.learning_rate": "log(0.1, 2)"}
    base = {**PLANAR, "tracking": {"experiment": "search"}}
    outcome = dltrain.search(base, space, tmp_path / "s", trials=2, workers=1, seed=1, mlflow=uri)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("search").experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "search"]
    assert len(parents) == 1 and len(runs) == 3
    parent = parents[0]
    assert parent.data.params["space.optimizer.learning_rate"] == "log(0.1, 2.0)" and parent.info.status == "FINISHED"
    assert parent.data.metrics["best.dev_accuracy"] == outcome.best["metrics"]["dev_accuracy"]
    children = {r.data.tags["run_folder"]: r for r in runs if r is not parent}
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    for record in outcome.ranked:
        run_dir = (tmp_path / "s" / "trials" / f"trial-{record['trial']:03d}").resolve()
        child = children[str(run_dir)]
        assert child.data.tags["trial"] == str(record["trial"])
        assert child.data.metrics["final.dev.accuracy"] == record["metrics"]["dev_accuracy"]
        assert child.data.params["optimizer.learning_rate"] == str(record["values"]["optimizer.learning_rate"])
    # The trials themselves do not log (they are nested by the search), and the store is not part of
    # the search's identity: the same search with another --mlflow resumes it.
    assert yaml.safe_load((tmp_path / "s" / "trials" / "trial-001" / "config.yaml").read_text())["tracking"]["mlflow"] is None
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    res = runner.invoke(app, ["search", str(tmp_path / "base.yaml"), "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "s"),
                              "--trials", "2", "--workers", "1", "--seed", "1", "-q", "--mlflow", uri])
    assert res.exit_code == 0, res.output
    # Logging the search again (here from the CLI, resuming it) finds the parent and its trials: still three runs.
    assert len(client.search_runs([client.get_experiment_by_name("search").experiment_id])) == 3


def test_unreachable_store_is_one_warning_and_the_run_uploads_later(tmp_path, monkeypatch, uri):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(PLANAR))
    res = runner.invoke(app, ["train", str(cfg), "-q", "--runs-dir", str(tmp_path / "runs"), "--mlflow", "http://127.0.0.1:9"])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "http://127.0.0.1:9" in warnings[0] and "dltrain log" in warnings[0]
    run_dir = tmp_path / "runs" / res.output.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert load_run(run_dir).summary["status"] == "completed" and (run_dir / "model.h5").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["tracking"]["mlflow"] == "http://127.0.0.1:9"
    # Later, with the store reachable: dltrain log uploads the finished folder.
    res = runner.invoke(app, ["log", str(run_dir), "--mlflow", uri, "--experiment", "later"])
    assert res.exit_code == 0, res.output
    client = MlflowClient(tracking_uri=uri)
    mlrun = only_run(client, "later")
    assert res.output.strip().splitlines()[-1] == mlrun.info.run_id
    assert_run_matches_folder(client, mlrun, run_dir)


def test_failing_store_or_missing_extra_never_fails_the_run(tmp_path, monkeypatch, uri):
    (tmp_path / "junk.db").write_text("not a database")
    bad = f"sqlite:///{tmp_path / 'junk.db'}"
    with pytest.warns(TrackingWarning, match="failed"):
        run = dltrain.train({**PLANAR, "tracking": {"mlflow": bad}}, runs_dir=tmp_path / "runs", progress=False)
    assert run.status == "completed" and run.metrics["dev"]["accuracy"] > 0
    with pytest.raises(DltrainError) as e:
        log(run.path, bad)
    assert e.value.exit_code == 1 and bad in str(e.value)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.delitem(sys.modules, "dltrain.mlflow_runs", raising=False)
    with pytest.warns(TrackingWarning, match=r"pip install 'dltrain\[mlflow\]'"):
        run = dltrain.train({**PLANAR, "tracking": {"mlflow": uri}}, runs_dir=tmp_path / "runs", progress=False)
    assert run.status == "completed"
    with pytest.raises(DltrainError, match=r"pip install 'dltrain\[mlflow\]'"):
        log(run.path)  # the run's own tracking.mlflow is the default store


def test_diverged_run_is_logged_as_failed(tmp_path, uri):
    with pytest.raises(DltrainError, match="diverged"):
        dltrain.train({**PLANAR, "optimizer": {"name": "gd", "learning_rate": 1e6}, "tracking": {"mlflow": uri, "experiment": "diverged"}},
                      runs_dir=tmp_path / "runs", progress=False)
    mlrun = only_run(MlflowClient(tracking_uri=uri), "diverged")
    assert mlrun.info.status == "FAILED" and mlrun.data.tags["status"] == "diverged"


def test_log_needs_a_destination_and_tracking_keys_are_checked(tmp_path):
    run = dltrain.train(PLANAR, runs_dir=tmp_path / "runs", progress=False)
    # Without tracking, config.yaml is as it was before the section existed (reproduce compares it).
    assert "tracking" not in yaml.safe_load((run.path / "config.yaml").read_text())
    with pytest.raises(DltrainError) as e:
        log(run.path)
    assert e.value.exit_code == 2 and "--mlflow" in str(e.value)
    files = log(run.path, tensorboard=True).event_files
    assert [f.name for f in files] == ["events.out.tfevents.dltrain"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**PLANAR, "tracking": {"mlfow": "x"}}))
    res = runner.invoke(app, ["train", str(cfg), "-q", "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "tracking.mlfow" in res.output
    assert json.loads((run.path / "summary.json").read_text())["status"] == "completed"


def test_relative_sqlite_store_keeps_artifacts_beside_it_and_relogging_adds_new_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = dltrain.train({**PLANAR, "tracking": {"mlflow": "sqlite:///rel.db"}}, runs_dir="runs", progress=False)
    client = MlflowClient(tracking_uri="sqlite:///rel.db")
    mlrun = only_run(client, "planar")
    assert mlrun.info.artifact_uri.startswith((tmp_path / "mlartifacts" / "planar").as_uri())
    assert (tmp_path / "mlartifacts" / "planar" / mlrun.info.run_id / "artifacts" / "model.h5").is_file()
    assert "events.out.tfevents.dltrain" not in {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    logged = log(run.path, tensorboard=True)  # the run's own store; the new event file is added to the same run
    assert logged.already and logged.mlflow_run == mlrun.info.run_id
    assert "events.out.tfevents.dltrain" in {a.path for a in client.list_artifacts(mlrun.info.run_id)}

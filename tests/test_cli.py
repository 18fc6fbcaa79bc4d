import csv
import io
import json
from types import SimpleNamespace

import h5py
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from dltrain.cli import app

runner = CliRunner()
PLANAR = {"name": "p", "seed": 2, "rng": "course", "data": {"dataset": "planar"},
          "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
          "init": {"scheme": "random"}, "optimizer": {"name": "gd", "learning_rate": 1.2},
          "training": {"epochs": 30, "log_every": 10}}


def write(tmp_path, tree, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree))
    return path


def test_train_writes_run_folder(tmp_path):
    cfg = write(tmp_path, PLANAR)
    res = runner.invoke(app, ["train", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--set", "data.dev_fraction=0.25"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / res.output.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock", "config.yaml", "cost.png", "curve.csv", "decision_boundary.png", "history.csv", "metrics.json", "model.h5", "report.html",
        "summary.json"]
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 10, 20, 29]
    assert {"epoch", "cost", "learning_rate", "dev_cost", "dev_accuracy"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "dev", "diagnosis"} and metrics["train"]["examples"] == 300
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["layers"] == [2, 4, 1] and resolved["init"]["scale"] == 0.01
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    with h5py.File(run / "model.h5") as f:
        assert f["params/W1"].shape == (4, 2)
        assert json.loads(f.attrs["config"])["name"] == "p"


def test_train_says_why_it_stopped_early(tmp_path):
    tree = {**PLANAR, "data": {"dataset": "planar", "dev_fraction": 0.25},
            "regularization": {"early_stopping": {"patience": 3, "min_delta": 10.0}}}
    res = runner.invoke(app, ["train", str(write(tmp_path, tree)), "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    table_end = res.output.index("accuracy")
    reason = res.output.index("early stopping: dev_cost did not improve by more than 10 for 3 epochs")
    assert table_end < reason
    assert "stopped after epoch 3 (4 of 30 epochs); the model keeps epoch 0's weights (restore_best)" in res.output
    plain = runner.invoke(app, ["train", str(write(tmp_path, PLANAR)), "--run-dir", str(tmp_path / "plain")])
    assert "early stopping" not in plain.output and "finished all epochs" not in plain.output


def test_run_dir_is_never_overwritten(tmp_path):
    cfg = write(tmp_path, PLANAR)
    target = tmp_path / "exact"
    assert runner.invoke(app, ["train", str(cfg), "--run-dir", str(target), "-q"]).exit_code == 0
    res = runner.invoke(app, ["train", str(cfg), "--run-dir", str(target), "-q"])
    assert res.exit_code == 1 and "already exists" in res.output


@pytest.mark.parametrize(
    "override,code,message",
    [
        ("optimizer.learning_rate=-1", 2, "optimizer.learning_rate: got -1"),
        ("model.hidden_activation=tanhh", 2, "did you mean 'tanh'?"),
        ("model.layers=[12288,4,1]", 2, "X has 2 features but layer 1 expects 12288"),
        ("model.output_activation=softmax", 2, "softmax needs at least 2 output units"),
        ("data.dataset=cat", 1, "train_catvnoncat.h5 not found"),
    ],
)
def test_bad_input_exits_cleanly(tmp_path, override, code, message):
    cfg = write(tmp_path, PLANAR)
    args = ["train", str(cfg), "--runs-dir", str(tmp_path), "--set", override]
    if override.startswith("data.dataset"):
        args += ["--set", f"data.dir={tmp_path / 'nowhere'}"]
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_sigmoid_on_more_classes_names_both_sizes(tmp_path, monkeypatch):
    import numpy as np

    from dltrain.data import core

    monkeypatch.setitem(core.LOADERS, "planar", lambda d: (np.zeros((2, 6)), np.arange(6) % 3, None, None,
                                                          ["a", "b", "c"], None))
    res = runner.invoke(app, ["train", str(write(tmp_path, PLANAR)), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 1 and "the data (dataset planar) has 3 classes (labels 0..2) but the output layer is 1 sigmoid unit" in res.output


def test_config_show_and_schema(tmp_path):
    res = runner.invoke(app, ["config", "show", str(write(tmp_path, PLANAR))])
    assert res.exit_code == 0
    shown = yaml.safe_load(res.output)
    assert shown["optimizer"] == {"learning_rate": 1.2, "name": "gd"} and shown["init"]["scale"] == 0.01
    schema = json.loads(runner.invoke(app, ["config", "schema"]).output)
    assert "model" in schema["properties"]


def test_load_trained_round_trip(tmp_path):
    from dltrain.commands.trained import load_trained
    from dltrain.data.generated import planar_flower
    from dltrain.data.prepare import targets
    from dltrain.engine.model import evaluate

    cfg = write(tmp_path, PLANAR)
    assert runner.invoke(app, ["train", str(cfg), "--run-dir", str(tmp_path / "r"), "-q"]).exit_code == 0
    t = load_trained(tmp_path / "r")
    X, y = planar_flower(1)
    cost, acc = evaluate(X, targets(y, 1), t.params, t.net, t.state)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())["train"]
    assert (cost, acc) == (metrics["cost"], metrics["accuracy"])
    with pytest.raises(Exception, match="no model.h5"):
        load_trained(tmp_path)


def test_live_progress_bar_redraws_as_epochs_end():
    """On a terminal the bar is redrawn by each epoch's update, not left to rich's once-a-second clock;
    it shows no cost before the first epoch, then the cost, dev metrics and an ETA, with logged rows above it."""
    from dltrain.progress import TerminalProgress

    screen = io.StringIO()
    progress = TerminalProgress(5, Console(file=screen, force_terminal=True, width=150))
    try:
        assert "nan" not in screen.getvalue() and "cost" not in screen.getvalue()
        row = {"epoch": 2, "cost": 0.123456789, "learning_rate": 0.5, "dev_cost": 0.25, "dev_accuracy": 0.875}
        progress(SimpleNamespace(epoch=2, cost=0.123456789), row)
        shown = screen.getvalue()
        assert "epoch 3/5" in shown and "cost 0.123457" in shown and "dev_acc 0.8750" in shown and "eta" in shown
        assert "epoch      2  cost 0.123457  lr 0.5  dev_cost 0.250000  dev_accuracy 0.8750" in shown  # the logged row, above
    finally:
        progress.close()

"""Dead ReLU layers in the diagnosis: the engine's ever_active, the report and recipe, and runs that
kill their units (zeros init, a huge learning rate) against a healthy one (no false alarm)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from dltrain.commands.build import prepare_data
from dltrain.engine.activations import ACTIVATIONS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import LayerSpec, Network, ever_active
from dltrain.evaluation import DEAD_RECIPE, DEAD_SHARE, LEAKY_FIX, RECIPES, dead_unit_report, diagnose

runner = CliRunner()


def test_ever_active_finds_the_units_no_example_turns_on():
    relu = ACTIVATIONS["relu"]
    net = Network(2, (LayerSpec(3, relu), LayerSpec(1, ACTIVATIONS["sigmoid"])), LOSSES["sigmoid"])
    # Unit 0 sees x0, unit 1 sees -x0 - 10 (negative for every example below), unit 2 sees x1.
    params = {"W1": np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), "b1": np.array([[0.0], [-10.0], [0.0]]),
              "W2": np.ones((1, 3)), "b2": np.zeros((1, 1))}
    X = np.random.default_rng(0).uniform(-1, 1, (2, 50))
    X[1] = -np.abs(X[1])  # x1 <= 0: unit 2 never activates either
    (active,) = ever_active(X, params, net)
    assert active.tolist() == [True, False, False]
    # Chunks change nothing: an example activates a unit or not whatever else is evaluated with it.
    assert [a.tolist() for a in ever_active(X, params, net, batch_size=7)] == [active.tolist()]


def dead(layer, share, units=10, activation="relu"):
    return {"layer": layer, "activation": activation, "units": units, "dead": round(share * units), "share": share}


def test_report_and_recipe():
    report = dead_unit_report([np.array([True, False, False, False]), np.ones(2, bool)], "relu")
    assert report == [dead(1, 0.75, units=4), dead(2, 0.0, units=2)]
    # A whole dead layer: its fixes replace "bigger network" (which would only die too).
    d = diagnose(0.5, 0.5, dead_units=[dead(1, 0.1), dead(2, 1.0)])
    assert d["problem"] == "high bias" and d["dead_layers"] == [2] and d["dead_share"] == DEAD_SHARE
    assert d["recipe"] == DEAD_RECIPE + [LEAKY_FIX] and not set(RECIPES["bias"]) & set(d["recipe"])
    # Half dead: the fixes come first, the bias/variance recipe still follows.
    d = diagnose(0.15, 0.30, dead_units=[dead(1, DEAD_SHARE, activation="leaky_relu")])
    assert d["dead_layers"] == [1] and d["recipe"][:3] == DEAD_RECIPE and LEAKY_FIX not in d["recipe"]
    assert set(RECIPES["bias"] + RECIPES["variance"]) <= set(d["recipe"])
    # A few dead units are normal; tanh nets have none to report; old callers pass nothing.
    for units in ([dead(1, 0.4), dead(2, 0.2)], [], None):
        d = diagnose(0.15, 0.16, dead_units=units)
        assert d["dead_layers"] == [] and d["recipe"] == RECIPES["bias"] and d["dead_units"] == units


def moons(tmp_path, name, **change):
    cfg = {"name": name, "seed": 1, "data": {"dataset": "moons", "dev_fraction": 0.2, "normalize": "standardize"},
           "model": {"layers": ["auto", 16, 16, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
           "optimizer": {"name": "adam", "learning_rate": 0.01}, "training": {"epochs": 300, "log_every": 100}}
    for key, value in change.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return dltrain.train(cfg, run_dir=tmp_path / name, progress=False)


@pytest.mark.parametrize(
    "change,dead_layers",
    [
        ({"init": {"scheme": "zeros"}}, [1, 2]),  # every Z is 0: no unit ever fires, none gets a gradient
        ({"optimizer": {"learning_rate": 3.0}}, [2]),  # 300x the rate: the first steps kill layer 2
    ],
)
def test_killed_relus_are_diagnosed_in_metrics_and_evaluate(tmp_path, change, dead_layers):
    run = moons(tmp_path, "dead", **change)
    d = run.metrics["diagnosis"]
    assert run.metrics["train"]["cost"] == pytest.approx(np.log(2), abs=1e-3)  # stuck at chance
    assert d["problem"] == "high bias" and d["dead_layers"] == dead_layers
    assert all(d["dead_units"][l - 1] == dead(l, 1.0, units=16) for l in dead_layers)
    assert "bigger network: more hidden units or more layers" not in d["recipe"] and d["recipe"][0] == DEAD_RECIPE[0]
    res = runner.invoke(app, ["evaluate", str(run.path)])
    assert res.exit_code == 0, res.output
    assert f"diagnosis: high bias, dead units in layer{'s' if len(dead_layers) > 1 else ''}" in res.output
    assert f"layer {dead_layers[-1]} has 16 of 16 units (100.00%) that never activate on the training set" in res.output
    assert "He initialization" in res.output and "bigger network" not in res.output
    assert json.loads((run.path / "evaluation.json").read_text())["diagnosis"]["dead_layers"] == dead_layers


def test_healthy_relus_raise_no_alarm(tmp_path):
    run = moons(tmp_path, "ok")
    d = run.metrics["diagnosis"]
    assert run.metrics["train"]["accuracy"] > 0.9 and d["dead_layers"] == [] and len(d["dead_units"]) == 2
    assert all(layer["share"] < DEAD_SHARE for layer in d["dead_units"])
    res = runner.invoke(app, ["evaluate", str(run.path)])
    assert res.exit_code == 0 and "dead" not in res.output and "He initialization" not in res.output


# ---- evaluate on data changed since training -------------------------------------------------------


def test_evaluate_warns_when_the_data_changed_since_training(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), np.arange(60) % 2
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    cfg = {"name": "f", "data": {"dataset": "file", "path": str(tmp_path / "d.npz")},
           "model": {"layers": ["auto", 4, 1]}, "training": {"epochs": 20, "log_every": 10}}
    run = dltrain.train(cfg, run_dir=tmp_path / "run", progress=False)
    recorded = json.loads((run.path / "summary.json").read_text())["data_fingerprint"]
    res = runner.invoke(app, ["evaluate", str(run.path)])
    assert res.exit_code == 0 and "warning" not in res.output
    assert json.loads((run.path / "evaluation.json").read_text())["warnings"] == []

    np.savez(tmp_path / "d.npz", x_train=x, y_train=1 - y)  # the same file name, other labels
    current = prepare_data(run.config).fingerprint
    res = runner.invoke(app, ["evaluate", str(run.path)])
    assert res.exit_code == 0, res.output
    warning = (f"warning: the data are not those {run.path} was trained on: their fingerprint is {current[:19]}, "
               f"summary.json records {recorded[:19]} (data files changed")
    assert warning in " ".join(res.output.split())
    report = json.loads((run.path / "evaluation.json").read_text())
    assert len(report["warnings"]) == 1 and f"is {current[:19]}, summary.json records {recorded[:19]}" in report["warnings"][0]
    assert report["splits"]["train"]["accuracy"] == pytest.approx(1 - run.metrics["train"]["accuracy"])
    # --json keeps stdout JSON (the warning goes to stderr) and holds the warning too.
    res = runner.invoke(app, ["evaluate", str(run.path), "--json"])
    assert json.loads(res.stdout)["warnings"] == report["warnings"] and "warning:" in res.stderr
    # Other data, named on purpose, are not the run's: no warning.
    assert dltrain.evaluate(run.path, data=str(tmp_path / "d.npz"))["warnings"] == []

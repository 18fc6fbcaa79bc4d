"""curve.csv: every epoch's learning rate and costs, and the curves drawn from it (issue 18)."""

import csv

import numpy as np
import pytest

from dltrain import plots
from dltrain.commands import runs as runs_command
from dltrain.commands.run import Run
from dltrain.commands.train import train
from dltrain.config import validate_config
from dltrain.runs import read_curve

TREE = {"name": "c", "seed": 2, "rng": "course", "data": {"dataset": "planar", "dev_fraction": 0.25},
        "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"}, "init": {"scheme": "random"},
        "optimizer": {"name": "gd", "learning_rate": 1.2}, "schedule": {"name": "step", "rates": {12: 0.6}},
        "regularization": {"l2": 0.5}, "training": {"epochs": 30, "log_every": 10}}


def config(**sections):
    return validate_config({**TREE, **sections})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return train(config(), run_dir=tmp_path_factory.mktemp("curve") / "run", progress=False)


def lines(figure) -> dict:
    """label -> Line2D of every axis of a figure."""
    return {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}


def test_curve_csv_has_every_epoch(run):
    curve = read_curve(run.path / "curve.csv")
    assert list(curve) == ["epoch", "learning_rate", "cost", "data_cost", "dev_cost", "dev_accuracy"]
    assert curve["epoch"].tolist() == list(range(30))
    # the step schedule from its listed epoch on, in the loop itself
    assert curve["learning_rate"].tolist() == [1.2] * 12 + [0.6] * 18
    assert np.all(curve["data_cost"] < curve["cost"])  # l2 penalty
    # the dev set is evaluated on logged epochs only (no early stopping)
    assert np.flatnonzero(~np.isnan(curve["dev_cost"])).tolist() == [0, 10, 20, 29]
    # logged epochs carry history.csv's exact values
    rows = {r["epoch"]: r for r in csv.DictReader((run.path / "history.csv").open())}
    for line in (run.path / "curve.csv").read_text().splitlines()[1:]:
        epoch, lr, cost, data_cost, dev_cost, dev_accuracy = line.split(",")
        if epoch in rows:
            assert [lr, cost, data_cost, dev_cost, dev_accuracy] == [rows[epoch][k] for k in (
                "learning_rate", "cost", "data_cost", "dev_cost", "dev_accuracy")]


def test_run_curve_api(run):
    curve = run.curve
    assert len(curve) == 30 and curve.columns[:4] == ["epoch", "learning_rate", "cost", "data_cost"]
    assert curve["epoch"].dtype == np.int64 and curve["cost"][0] == pytest.approx(run.history["cost"][0], rel=0)
    with pytest.raises(KeyError, match="'norm_W1': the curve has the columns epoch, learning_rate"):
        curve["norm_W1"]


def test_cost_plot_draws_every_epoch_and_the_rate_as_steps(run):
    drawn = lines(run.plot("cost"))
    assert list(drawn["train cost (with penalty)"].get_xdata()) == list(range(30))
    assert list(drawn["train data cost (no penalty)"].get_ydata()) == list(run.curve["data_cost"])
    assert list(drawn["dev cost"].get_xdata()) == [0, 10, 20, 29]
    rate = drawn["learning rate"]
    assert rate.get_drawstyle() == "steps-post" and list(rate.get_ydata()) == [1.2] * 12 + [0.6] * 18
    assert (run.path / "cost.png").read_bytes()[:4] == b"\x89PNG"


def test_without_a_penalty_one_train_line():
    curve = {"epoch": np.arange(3), "cost": np.array([0.7, 0.6, 0.5]), "data_cost": np.array([0.7, 0.6, 0.5]),
             "learning_rate": np.full(3, 0.1)}
    assert "train cost" in lines(plots.cost_curve(curve, "t")) and "train data cost (no penalty)" not in lines(plots.cost_curve(curve, "t"))


def test_early_stopping_evaluates_dev_every_epoch(tmp_path):
    es = {"early_stopping": {"patience": 3, "min_delta": 10.0}}
    curve = train(config(regularization=es), run_dir=tmp_path / "es", progress=False).curve
    assert curve["epoch"].tolist() == [0, 1, 2, 3] and not np.isnan(curve["dev_cost"]).any()


def test_compare_plots_every_epoch(run, tmp_path):
    assert list(lines(runs_command.compare_figure([run.path]))[f"{run.name} train"].get_xdata()) == list(range(30))
    assert runs_command.compare_runs([run.path], tmp_path / "c.png").is_file()


def test_a_run_without_curve_csv_plots_its_logged_epochs(run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run.path, old)
    (old / "curve.csv").unlink()
    assert Run(old).curve["epoch"].tolist() == [0, 10, 20, 29]
    assert list(lines(Run(old).plot("cost"))["train cost (with penalty)"].get_xdata()) == [0, 10, 20, 29]


def test_docs_describe_the_curve_columns_and_batch_norm_variance():
    from pathlib import Path

    from dltrain.commands.train import curve_columns

    text = (Path(__file__).parent.parent / "docs" / "training.md").read_text()
    table = text[text.index("## Every epoch's curve"):text.index("## `cost.png`")]
    documented = [c for line in table.splitlines() if line.startswith("| `") for c in line.split("|")[1].replace("`", "").strip().split(", ")]
    assert documented == curve_columns(True)
    assert "running variance averages the biased batch variance" in " ".join(text.split())

"""Plotting after training is bounded: the decision boundary's grid shrinks, and is left out (with a
note in summary.json) for a model too costly to evaluate on it; the grid is evaluated in chunks whose
activations fit a fixed size (a 50,000-layer net of 2 units took 3.6 GB and crashed in this plot)."""

import json

import numpy as np
import pytest

import dltrain
from dltrain.commands import trained
from dltrain.commands.build import build_network
from dltrain.config import validate_config
from dltrain.errors import DltrainError


def network(hidden: list[int]):
    return build_network(validate_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", *hidden, 1]}}), 2)


def test_the_grid_shrinks_with_the_model_and_a_huge_model_gets_none():
    assert trained.boundary_grid(network([4])) == trained.GRID_SIDE  # the course's planar net: the full grid
    side = trained.boundary_grid(network([300, 300]))  # 90,900 multiply-adds a point
    assert trained.MIN_GRID_SIDE <= side < trained.GRID_SIDE
    deep = network([2] * 50_000)
    assert "decision_boundary.png not drawn" in trained.boundary_grid(deep)
    # Its activations at once stay within MAX_PLOT_BYTES: 50,000 layers of 2 units, 4 arrays of float64.
    assert trained.plot_chunk(deep) * 100_001 * 32 <= trained.MAX_PLOT_BYTES


def test_a_model_too_costly_for_the_grid_completes_without_it_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(trained, "MAX_PLOT_WORK", 10_000)  # this small net now counts as too costly
    cfg = {"data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]}, "training": {"epochs": 2}}
    run = dltrain.train(cfg, run_dir=tmp_path / "run", progress=False)
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["status"] == "completed" and not (run.path / "decision_boundary.png").exists()
    assert len(summary["notes"]) == 1 and summary["notes"][0].startswith("decision_boundary.png not drawn")
    with pytest.raises(DltrainError, match="decision_boundary.png not drawn"):
        run.plot("decision_boundary")


def test_the_grid_is_evaluated_in_bounded_chunks(tmp_path, monkeypatch):
    cfg = {"data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]}, "training": {"epochs": 2}}
    run = dltrain.train(cfg, run_dir=tmp_path / "run", progress=False)
    monkeypatch.setattr(trained, "MAX_PLOT_BYTES", 32 * 5 * 100)  # 100 examples of 5 units at once
    monkeypatch.setattr(trained, "MAX_PLOT_WORK", 100 * 100 * 12 + 100 * 2 * trained.LAYER_CALL_WORK)
    widths = []
    real = trained.evaluation_forward

    def counting(X, params, net, state=None, batch_size=4096):
        widths.append((X.shape[1], batch_size))
        return real(X, params, net, state, batch_size)

    monkeypatch.setattr(trained, "evaluation_forward", counting)
    figure = run.plot("decision_boundary")
    assert widths == [(100 * 100, 100)]  # the grid shrank to 100 x 100, evaluated 100 columns at a time
    assert np.asarray(figure.axes[0].collections[0].get_paths()[0].vertices).size > 0

"""`dltrain gradcheck` and gradcheck: the configured model's backprop against numeric gradients."""

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.commands.build import prepare_data
from dltrain.commands.gradcheck import gradcheck
from dltrain.commands.train import train
from dltrain.commands.trained import load_trained
from dltrain.config import load_config, validate_config
from dltrain.data import load_dataset
from dltrain.engine import model
from dltrain.engine.model import backward, forward
from dltrain.errors import DltrainError
from tests.conftest import COURSE_DATA, REPO

runner = CliRunner()
PLANAR = {"name": "p", "seed": 2, "data": {"dataset": "planar"},
          "model": {"layers": ["auto", 4, 3, 1], "hidden_activation": "relu"},
          "optimizer": {"name": "gd", "learning_rate": 0.5}, "training": {"epochs": 10}}


def write(tmp_path, tree=PLANAR):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_pass_table_and_json(tmp_path):
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "verdict: pass" in res.output and "worst parameter" in res.output
    for name in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert f"\n│ {name} " in res.output
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--json", "--examples", "7"])
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["verdict"] == "pass" and report["examples"] == 7
    assert report["overall"] < 2e-7 and report["dtype"] == "float64"
    assert [p["name"] for p in report["parameters"]] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert [(p["checked"], p["size"]) for p in report["parameters"]] == [(8, 8), (4, 4), (12, 12), (3, 3), (3, 3), (1, 1)]
    worst = max(report["parameters"], key=lambda p: p["relative_difference"])
    assert report["worst"]["parameter"] == worst["name"] and report["worst"]["index"] == worst["worst_index"]


def course_bug(real):
    """The course's broken backward, injected into the engine: dW2 doubled, db1 computed with 4/m."""

    def dense_backward(dZ, cache, need_dA_prev=True, dW_out=None):
        dA_prev, dW, db = real(dZ, cache, need_dA_prev, dW_out)
        if cache.W.shape == (3, 4):  # layer 2 of the 2-4-3-1 net
            dW = 2 * dW
        if cache.W.shape == (4, 2):  # layer 1
            db = 4 * db
        return dA_prev, dW, db

    return dense_backward


def test_injected_backward_bug_fails_and_names_the_array(tmp_path, monkeypatch):
    monkeypatch.setattr(model, "dense_backward", course_bug(model.dense_backward))
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--json"])
    assert res.exit_code == 1
    report = json.loads(res.output)
    assert report["verdict"] == "fail" and report["overall"] > 1e-5
    assert report["worst"]["parameter"] in {"W2", "b1"}
    assert {p["name"] for p in report["parameters"] if p["relative_difference"] > 1e-5} == {"W2", "b1"}
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path))])
    assert res.exit_code == 1 and "verdict: fail" in res.output and "start with" in res.output


def test_suspicious_exits_1_and_a_looser_threshold_passes(tmp_path):
    path = str(write(tmp_path))
    overall = json.loads(runner.invoke(app, ["gradcheck", path, "--json"]).output)["overall"]
    res = runner.invoke(app, ["gradcheck", path, "--threshold", f"{overall / 2:g}"])
    assert res.exit_code == 1 and "verdict: suspicious" in res.output
    assert runner.invoke(app, ["gradcheck", path, "--threshold", f"{overall * 2:g}"]).exit_code == 0


def test_after_epochs_checks_the_parameters_train_reaches(tmp_path):
    # course streams, mini-batches, dropout and Adam: every piece of train's wiring shapes the params
    tree = {**PLANAR, "rng": "course", "optimizer": {"name": "adam", "learning_rate": 0.01},
            "regularization": {"keep_prob": 0.8}, "training": {"epochs": 7, "batch_size": 64}}
    cfg = validate_config(tree)
    outcome = gradcheck(cfg, examples=400, after_epochs=7)  # every example: no subset to pick
    trained = load_trained(train(cfg, run_dir=tmp_path / "run").path)
    data = prepare_data(cfg)
    AL, cache = forward(data.X["train"], trained.params, trained.net, trained.state, training=False)  # no dropout
    grads = backward(AL, data.Y["train"], cache, trained.params, trained.net, 400)
    b3 = next(a for a in outcome.report.arrays if a.name == "b3")
    assert b3.worst_analytic == pytest.approx(grads["b3"][0, 0], rel=1e-12)
    assert outcome.verdict == "pass" and outcome.after_epochs == 7


def test_max_per_param_samples_and_says_so(tmp_path):
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--max-per-param", "2", "--json"])
    report = json.loads(res.output)
    assert [(p["checked"], p["size"]) for p in report["parameters"]] == [(2, 8), (2, 4), (2, 12), (2, 3), (2, 3), (1, 1)]
    assert any("a seeded sample of 11 of the 31 entries" in n for n in report["notices"])
    assert report["max_per_param"] == 2


def test_float32_config_is_checked_in_float64(tmp_path):
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--set", "dtype=float32"])
    assert res.exit_code == 0, res.output
    assert "note: the config's dtype is float32; the check runs in float64" in res.output


def test_dropout_is_switched_off_with_a_notice(tmp_path):
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--set", "regularization.keep_prob=[0.5,0.7]",
                              "--after-epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "note: dropout is off for the check (keep_prob 1 in every layer)" in res.output


def test_batch_norm_and_penalties_are_checked(tmp_path, monkeypatch):
    args = ["gradcheck", str(write(tmp_path)), "--json", "--set", "model.batch_norm=true", "--set", "regularization.l2=0.7",
            "--set", "regularization.l1=0.05", "--after-epochs", "3"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert [p["name"] for p in report["parameters"]] == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    # a penalty counted twice in the cost but not in the gradient, or a wrong dgamma, must fail
    for target, bug, culprit in (("l2_penalty", doubled, "W"), ("l1_penalty", doubled, "W"),
                                 ("batchnorm_backward", tripled_dgamma, "gamma")):
        with monkeypatch.context() as patch:
            patch.setattr(model, target, bug(getattr(model, target)))
            res = runner.invoke(app, args)
        assert res.exit_code == 1, target
        assert json.loads(res.output)["worst"]["parameter"].startswith(culprit), target


def doubled(real):
    return lambda *args: 2 * real(*args)


def tripled_dgamma(real):
    def batchnorm_backward(dZt, cache):
        dZ, dgamma, dbeta = real(dZt, cache)
        return dZ, 3 * dgamma, dbeta

    return batchnorm_backward


def zero_columns_loader(monkeypatch, m, zero):
    """Planar replaced by m standard-normal examples of which the columns `zero` are all 0."""
    X = np.random.default_rng(0).standard_normal((2, m))
    X[:, zero] = 0.0
    monkeypatch.setitem(__import__("dltrain.data.core", fromlist=["LOADERS"]).LOADERS, "planar",
                        lambda d: (X, np.arange(m) % 2, None, None, ["a", "b"], None))


def test_relu_kink_is_warned_about(monkeypatch):
    # An all-zero input column gives Z1 = W1 @ 0 + b1 = 0 exactly (biases start at zero), so A1 = 0
    # and Z2 = b2 = 0 too: every hidden unit sits on the kink for that example, and perturbing a
    # bias moves it across.
    # With only 6 examples, all are used and the one on the kink cannot be replaced.
    zero_columns_loader(monkeypatch, 6, [3])
    outcome = gradcheck(validate_config(PLANAR))
    assert [(k.layer, k.near) for k in outcome.kinks] == [(1, 4), (2, 3)]
    assert all(k.crossings > 0 for k in outcome.kinks)
    assert outcome.warnings[0].startswith("layer 1 (relu): 4 pre-activations within epsilon")


def test_examples_on_a_kink_are_replaced(monkeypatch):
    zero_columns_loader(monkeypatch, 20, list(range(0, 20, 2)))
    outcome = gradcheck(validate_config(PLANAR), examples=6)
    assert outcome.examples == 6 and not outcome.warnings and outcome.verdict == "pass"
    assert [k.near for k in outcome.kinks] == [0, 0]
    assert "of the examples drawn had a relu pre-activation within epsilon of the kink" in outcome.notices[0]


def test_bad_options_exit_2(tmp_path):
    for args in (["--epsilon", "0"], ["--threshold", "-1"], ["--examples", "0"], ["--max-per-param", "0"],
                 ["--threshold", "nan"], ["--epsilon", "inf"]):
        res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), *args])
        assert res.exit_code == 2, args
    res = runner.invoke(app, ["gradcheck", str(write(tmp_path)), "--set", "model.hidden_activation=rleu"])
    assert res.exit_code == 2 and "did you mean 'relu'?" in res.output


CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_passes(path):
    overrides = [f"data.dir={COURSE_DATA}"] if COURSE_DATA and "dir" in (yaml.safe_load(path.read_text())["data"]) else []
    try:
        load_dataset(load_config(path, overrides).data)
    except DltrainError as e:
        pytest.skip(f"data not present: {e}")
    args = ["gradcheck", str(path), "--max-per-param", "10", "--json"]
    res = runner.invoke(app, args + [x for o in overrides for x in ("--set", o)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["verdict"] == "pass"

"""Full-batch gradient descent accumulated over chunks of examples (engine.accumulate): the same
gradients as the single product up to summation order, gradient-checked, the same training, and
the choice made from the memory budget (DLTRAIN_MEMORY_BUDGET) and recorded in summary.json."""

import json

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.engine import accumulate
from dltrain.engine.accumulate import accumulated_step, dropout_masks
from dltrain.engine.gradcheck import gradient_check, verdict
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.model import backward, compute_cost, forward, init_params
from dltrain.engine.optimizers import OPTIMIZERS
from dltrain.engine.train import train_epochs
from tests.test_model import data, make_net

runner = CliRunner()


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


CASES = [
    dict(output="sigmoid", n_out=1),
    dict(output="softmax", n_out=3, l2=0.7),
    dict(output="sigmoid", n_out=1, l2=0.3, l1=0.1, keep_prob=0.8),
    dict(output="softmax", n_out=4, keep_prob=0.6, hidden="relu"),
]


def case_net(case, n_x=7):
    c = dict(case)
    n_out = c.pop("n_out")
    return make_net([n_x, 6, 5, n_out], c.pop("hidden", "tanh"), c.pop("output"), **c), n_out


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chunk", [1, 10, 52])
def test_accumulated_gradient_equals_the_single_product(case, chunk, monkeypatch):
    # Masks are drawn a couple of rows at a time here, to show the block draws equal forward's one draw.
    monkeypatch.setattr(accumulate, "MASK_DRAW_BYTES", 8 * 53 * 2)
    rng = np.random.default_rng(4)
    net, n_out = case_net(case)
    X, Y = data(rng, 7, n_out, 53)
    params, state = init_params(net, INITIALIZERS["xavier"], rng, 1.0)
    AL, cache = forward(X, params, net, state, training=True, dropout_rng=np.random.RandomState(3))
    data_cost, pen = compute_cost(AL, cache, Y, params, net, 53)
    single = backward(AL, Y, cache, params, net, 53)
    acc_cost, acc_pen, acc = accumulated_step(X, Y, params, net, chunk, np.random.RandomState(3))
    assert acc.keys() == single.keys()
    for k in single:
        assert relative(acc[k], single[k]) < 1e-12, k
    assert abs(acc_cost - data_cost) <= 1e-13 * abs(data_cost) and acc_pen == pen


def test_dropout_masks_are_the_forward_pass_masks():
    net, _ = case_net(dict(output="sigmoid", n_out=1, keep_prob=0.5))
    X = np.ones((7, 9))
    masks = dropout_masks(net, 9, np.random.default_rng(8))
    _, cache = forward(X, init_params(net, INITIALIZERS["xavier"], np.random.default_rng(0), 1.0)[0], net,
                       training=True, dropout_rng=np.random.default_rng(8))
    assert sorted(masks) == [1, 2]
    for l, mask in masks.items():
        assert mask.dtype == bool and np.array_equal(mask, cache.layers[l - 1].dropout.mask)


@pytest.mark.parametrize("case", CASES)
def test_accumulated_path_passes_the_gradient_check(case):
    rng = np.random.default_rng(5)
    net, n_out = case_net(case, n_x=4)
    X, Y = data(rng, 4, n_out, 23)
    params, _ = init_params(net, INITIALIZERS["xavier"], rng, 1.0)
    for l in range(1, net.L + 1):
        # Biases off 0: with zero biases, an example whose every input to a ReLU layer was dropped has Z = 0 exactly, a kink.
        params[f"b{l}"] += rng.normal(0, 0.1, params[f"b{l}"].shape)

    def cost():
        data_cost, pen, _ = accumulated_step(X, Y, params, net, 5, np.random.RandomState(1))  # the same masks every time
        return data_cost + pen

    grads = {k: g.copy() for k, g in accumulated_step(X, Y, params, net, 5, np.random.RandomState(1))[2].items()}
    report = gradient_check(cost, params, grads)
    assert verdict(report.overall, 1e-7) == "pass", report


def test_batch_norm_is_not_accumulated():
    net = make_net([3, 4, 1], batch_norm=True)
    params, _ = init_params(net, INITIALIZERS["xavier"], np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="batch normalization"):
        accumulated_step(np.zeros((3, 8)), np.zeros((1, 8)), params, net, 4)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_accumulated_training_follows_the_single_product(optimizer):
    rng = np.random.default_rng(6)
    net, n_out = case_net(dict(output="softmax", n_out=3, l2=0.2, keep_prob=0.9))
    X, Y = data(rng, 7, n_out, 61)
    runs = []
    for chunk in (None, 8):
        params, state = init_params(net, INITIALIZERS["xavier"], np.random.default_rng(1), 1.0)
        dropout = np.random.default_rng(2)
        costs = [r.cost for r in train_epochs(X, Y, params, state, net, OPTIMIZERS[optimizer](), lambda e: 0.05, 30,
                                              dropout_rng=lambda d=dropout: d, accumulate=chunk)]
        runs.append((costs, params))
    (costs, params), (acc_costs, acc_params) = runs
    assert costs != acc_costs  # the summation order differs ...
    np.testing.assert_allclose(acc_costs, costs, rtol=1e-10)  # ... by rounding only
    for k in params:
        np.testing.assert_allclose(acc_params[k], params[k], rtol=1e-9, atol=1e-12)


# ---- the choice, made from the memory budget, through `dltrain train` -------------------------------------


def images_file(path, m=300, side=16):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["train_set_x"] = rng.integers(0, 256, (m, side, side, 3), dtype=np.uint8)
        f["train_set_y"] = np.arange(m) % 2
        f["list_classes"] = np.array([b"a", b"b"])
    return path


# 300 images of 16x16x3 = 768 features: 230 KB of uint8 pixels, held raw (1.84 MB as float64, more than the
# budget), and one full-batch step's normalized copy with its float64 staging and activations would be
# 300 x 7,072 = 2.12 MB: accumulated over chunks of 1,500,000 / 8 // 7,072 = 26 examples.
BUDGET = "1500000"


def write_config(tmp_path, name="c.yaml", **model):
    tree = {"name": "acc", "data": {"dataset": "images", "path": str(images_file(tmp_path / "i.h5")), "augment": {"hflip": True}},
            "model": {"layers": ["auto", 4, 1], **model}, "optimizer": {"name": "gd", "learning_rate": 0.05},
            "regularization": {"l2": 0.5, "keep_prob": 0.9}, "training": {"epochs": 6, "log_every": 1}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree))
    return path


def test_a_full_batch_over_the_budget_is_accumulated_and_recorded(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "one")])
    assert res.exit_code == 0, res.output
    assert "accumulated" not in res.output
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", BUDGET)
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "acc")])
    assert res.exit_code == 0, res.output
    assert "full batch accumulated over 12 chunks of up to 26 examples" in " ".join(res.output.split())
    one, acc = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "acc"))
    assert "gradient_accumulation" not in one
    assert acc["gradient_accumulation"] == {"chunks": 12, "examples_per_chunk": 26}
    history = [np.loadtxt(tmp_path / d / "history.csv", delimiter=",", skiprows=1, usecols=(3, 4, 5)) for d in ("one", "acc")]
    assert not np.array_equal(*history)  # accumulated, so rounded differently ...
    np.testing.assert_allclose(history[1], history[0], rtol=1e-11)  # ... to the same costs
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text())["train"]["cost"] for d in ("one", "acc")]
    assert metrics[1] == pytest.approx(metrics[0], rel=1e-11)


def test_batch_norm_over_the_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", BUDGET)
    config = write_config(tmp_path, batch_norm=True)
    res = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    line = " ".join(res.output.split())
    assert "model.batch_norm with training.batch_size null on 300 examples" in line and "set training.batch_size" in line
    # Mini-batches are never accumulated, batch norm or not.
    res = runner.invoke(app, ["train", str(config), "--set", "training.batch_size=64", "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output


def test_an_accumulated_run_resumes_bit_identically(tmp_path, monkeypatch):
    from dltrain import resume, train
    from dltrain.errors import Interrupted
    from tests.test_reliability import assert_same_results, stop_at

    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", BUDGET)
    config = write_config(tmp_path)
    whole = train(config, run_dir=tmp_path / "whole", progress=False)
    assert whole.summary["gradient_accumulation"]["chunks"] == 12
    progress, event = stop_at(2)
    with pytest.raises(Interrupted):
        train(config, run_dir=tmp_path / "cut", progress=progress, interrupt=event)
    assert resume(tmp_path / "cut", progress=False).summary["gradient_accumulation"]["chunks"] == 12
    assert_same_results(tmp_path / "whole", tmp_path / "cut")


def test_uint8_pixels_are_budgeted_as_held(tmp_path, monkeypatch):
    from dltrain.data.files import features
    from dltrain.data.h5 import course_images
    from dltrain.errors import DltrainError

    path = images_file(tmp_path / "i.h5")  # 300 x 768 uint8: 230 KB as held, 1.84 MB as float64
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "1000000")
    assert course_images(path, "train")[0].dtype == np.uint8
    with pytest.raises(DltrainError, match=r"as float64 would need about"):  # converted: columns layout
        features(np.zeros((768, 300), np.uint8), "columns", "x")
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "200000")
    with pytest.raises(DltrainError, match=r"train_set_x \(shape \(300, 16, 16, 3\)\) would need about"):
        course_images(path, "train")


def test_an_accumulated_step_makes_no_float_copy_of_the_split():
    import tracemalloc

    from dltrain.data.examples import ArrayRows, Examples

    rng = np.random.default_rng(0)
    m, n_x = 2000, 500  # the split as float64: 8 MB
    X = Examples(ArrayRows(rng.integers(0, 256, (m, n_x), dtype=np.uint8)), None, {"scale": 255.0}, np.float64)
    Y = (rng.random((1, m)) < 0.5).astype(float)
    net = make_net([n_x, 8, 1], "relu")
    peaks = {}
    for chunk in (None, 100):
        params, state = init_params(net, INITIALIZERS["he"], np.random.default_rng(1), 1.0)
        tracemalloc.start()
        for _ in train_epochs(X, Y, params, state, net, OPTIMIZERS["gd"](), lambda e: 0.1, 2, accumulate=chunk):
            pass
        peaks[chunk] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[None] > 8 * m * n_x  # the single product holds the normalized copy
    assert peaks[100] < 8 * m * n_x / 8  # chunks of 100 examples: under 1 MB

"""Issues 4 and 5 through the config: mini-batches, dropout, L2, early stopping, augmentation, batch norm."""

import csv
import json

import h5py
import numpy as np
import pytest

from dltrain.commands.build import Prepared, build_augment, build_network, build_permutation, hflip_columns, prepare_data
from dltrain.commands.train import train
from dltrain.commands.trained import load_trained
from dltrain.config import validate_config
from dltrain.engine.activations import ACTIVATIONS
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import LayerSpec, Network, evaluate, evaluation_forward, forward, init_params
from dltrain.errors import DltrainError

BASE = {"name": "t", "seed": 3, "data": {"dataset": "planar"}, "model": {"layers": ["auto", 6, 4, 1]},
        "optimizer": {"name": "adam", "learning_rate": 0.01}, "training": {"epochs": 12, "log_every": 4}}


def config(**sections):
    tree = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return validate_config(tree)


def history(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


def test_history_separates_data_cost_and_penalty(tmp_path):
    out = train(config(regularization={"l2": 0.7}), run_dir=tmp_path / "r")
    for row in history(out.path):
        assert float(row["penalty"]) > 0
        assert float(row["cost"]) == pytest.approx(float(row["data_cost"]) + float(row["penalty"]), rel=1e-12)


def test_minibatch_epoch_cost_is_average_of_per_example_costs(tmp_path):
    # with a zero learning rate every batch sees the same weights, so the epoch's average of the
    # per-example costs must equal the full-batch cost of the same weights
    full = train(config(optimizer={"name": "gd", "learning_rate": 1e-300}, training={"epochs": 1}), run_dir=tmp_path / "a")
    mini = train(config(optimizer={"name": "gd", "learning_rate": 1e-300}, training={"epochs": 1, "batch_size": 64}),
                 run_dir=tmp_path / "b")
    assert float(history(mini.path)[0]["cost"]) == pytest.approx(float(history(full.path)[0]["cost"]), rel=1e-12)
    assert int(history(mini.path)[0]["iteration"]) == 7  # ceil(400 / 64) updates


def test_course_shuffle_stream():
    perm = build_permutation(config(rng="course", training={"shuffle_seed": 10}), None, 300)
    np.testing.assert_array_equal(perm(0), np.random.RandomState(11).permutation(300))
    np.testing.assert_array_equal(perm(4), np.random.RandomState(15).permutation(300))


def test_optimizer_state_saved_with_step_count(tmp_path):
    out = train(config(training={"epochs": 3, "batch_size": 100}), run_dir=tmp_path / "r")
    with h5py.File(out.path / "model.h5") as f:
        assert int(f["optimizer/t"][()]) == 12
        assert f["optimizer/v|W1"].shape == f["params/W1"].shape and f["optimizer/s|b3"].shape == (1, 1)


def test_course_dropout_masks_layer_by_layer():
    relu = ACTIVATIONS["relu"]
    net = Network(2, (LayerSpec(5, relu, False, 0.86), LayerSpec(3, relu, False, 0.86), LayerSpec(1, ACTIVATIONS["sigmoid"])),
                  LOSSES["sigmoid"])
    params, _ = init_params(net, INITIALIZERS["xavier"], np.random.RandomState(3), 1.0)
    X = np.random.RandomState(0).randn(2, 7)
    _, cache = forward(X, params, net, {}, training=True, dropout_rng=np.random.RandomState(1))
    rs = np.random.RandomState(1)  # the notebook: np.random.seed(1); D1 = rand(...) < kp; ...; D2 = rand(...) < kp
    np.testing.assert_array_equal(cache.layers[0].dropout.mask, rs.rand(5, 7) < 0.86)
    np.testing.assert_array_equal(cache.layers[1].dropout.mask, rs.rand(3, 7) < 0.86)
    assert cache.layers[2].dropout is None
    # evaluation never drops: the same weights give the same output as a network without dropout
    plain = net._replace(layers=tuple(s._replace(keep_prob=1.0) for s in net.layers))
    np.testing.assert_array_equal(evaluation_forward(X, params, net)[0], evaluation_forward(X, params, plain)[0])


def test_keep_prob_per_layer():
    cfg = config(regularization={"keep_prob": [0.5, 1.0]})

    assert [s.keep_prob for s in build_network(cfg, 2).layers] == [0.5, 1.0, 1.0]
    with pytest.raises(DltrainError, match="keep_prob lists 3 values but the model has 2 hidden layers"):
        config(regularization={"keep_prob": [0.5, 1.0, 1.0]})
    with pytest.raises(DltrainError, match=r"keep_prob must be in \(0, 1\]"):
        config(regularization={"keep_prob": 0})


def test_early_stopping_stops_and_restores_best(tmp_path):
    es = {"early_stopping": {"patience": 2, "min_delta": 10.0}}  # nothing improves by 10: best stays epoch 0
    out = train(config(data={"dev_fraction": 0.2}, regularization=es), run_dir=tmp_path / "es")
    summary = json.loads((out.path / "summary.json").read_text())
    assert (summary["stopped_epoch"], summary["best_epoch"], summary["epochs_run"]) == (2, 0, 3)
    assert summary["stop_reason"].startswith("early stopping: dev_cost did not improve by more than 10 for 2 epochs after its best, ")
    assert summary["stop_reason"].endswith("at epoch 0; stopped after epoch 2 (3 of 12 epochs); the model keeps epoch 0's weights (restore_best)")
    assert [int(r["epoch"]) for r in history(out.path)] == [0, 2]
    one = train(config(data={"dev_fraction": 0.2}, training={"epochs": 1}), run_dir=tmp_path / "one")
    with h5py.File(out.path / "model.h5") as a, h5py.File(one.path / "model.h5") as b:
        assert all(np.array_equal(a[f"params/{k}"][()], b[f"params/{k}"][()]) for k in b["params"])


def test_early_stopping_without_restore_says_the_last_weights_are_kept(tmp_path):
    es = {"early_stopping": {"patience": 2, "min_delta": 10.0, "restore_best": False}}
    out = train(config(data={"dev_fraction": 0.2}, regularization=es), run_dir=tmp_path / "es")
    assert out.summary["stop_reason"].endswith("the model keeps the last epoch's weights, epoch 2's (restore_best is false)")


def test_early_stopping_needs_dev_set(tmp_path):
    with pytest.raises(DltrainError, match="needs? a dev set|there is none") as e:
        train(config(regularization={"early_stopping": {"patience": 2}}), run_dir=tmp_path / "r")
    assert e.value.exit_code == 2


def test_hflip_mirrors_a_random_half_horizontally():
    image = np.arange(2 * 3 * 2).reshape(2, 3, 2)  # (h, w, c)
    order = hflip_columns((2, 3, 2))
    np.testing.assert_array_equal(image.reshape(-1)[order].reshape(2, 3, 2), image[:, ::-1, :])
    X = np.random.RandomState(0).rand(12, 10)
    data = Prepared({}, {}, {}, {}, [], (2, 3, 2), 12, "sha256:")
    augment = build_augment(config(data={"augment": {"hflip": True}}), data, np.random.default_rng(0))
    Xa = augment(0, X)
    flipped = [j for j in range(10) if not np.array_equal(Xa[:, j], X[:, j])]
    assert len(flipped) == 5
    for j in flipped:
        np.testing.assert_array_equal(Xa[:, j].reshape(2, 3, 2), X[:, j].reshape(2, 3, 2)[:, ::-1, :])


def test_augment_needs_images(tmp_path):
    with pytest.raises(DltrainError, match="needs an image dataset"):
        train(config(data={"augment": {"hflip": True}}), run_dir=tmp_path / "r")


def test_batch_norm_model_reloads_and_evaluates_per_example(tmp_path):
    cfg = config(model={"batch_norm": True}, data={"dev_fraction": 0.1}, training={"epochs": 5, "batch_size": 32})
    out = train(cfg, run_dir=tmp_path / "bn")
    t = load_trained(out.path)
    assert {"gamma1", "beta1", "gamma2", "beta2"} <= set(t.params) and "b1" not in t.params
    assert not np.allclose(t.state["mean1"], 0)  # running statistics were learned and saved
    from dltrain.data.generated import planar_flower

    X, _ = planar_flower(1)
    all_at_once = evaluation_forward(X, t.params, t.net, t.state)[0]
    one_by_one = np.concatenate([evaluation_forward(X[:, [i]], t.params, t.net, t.state)[0] for i in range(40)], axis=1)
    np.testing.assert_allclose(one_by_one, all_at_once[:, :40], rtol=1e-12, atol=0)
    assert t.net.bn_momentum == 0.9 and all(s.batch_norm for s in t.net.layers[:-1])
    data = prepare_data(t.cfg)  # the reloaded model reproduces the saved metrics exactly
    saved = json.loads((out.path / "metrics.json").read_text())["dev"]
    assert evaluate(data.X["dev"], data.Y["dev"], t.params, t.net, t.state) == (saved["cost"], saved["accuracy"])

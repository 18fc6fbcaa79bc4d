"""data.stream: training from an HDF5 file without loading it (dltrain.data.stream)."""

import json
import os
import threading
import tracemalloc

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain import resume, train
from dltrain.cli import app
from dltrain.commands.build import build_training, prepare_data
from dltrain.commands.reproduce import reproduce
from dltrain.config import load_config
from dltrain.data import stream
from dltrain.data.examples import ArrayRows
from dltrain.engine.train import train_epochs
from dltrain.errors import Interrupted
from dltrain.runs import read_model

runner = CliRunner()


def images_file(path, m=300, side=8, test=60, seed=0, **create):
    """m random side x side RGB uint8 images (2 classes) in the course layout, plus a test part."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("train_set_x", data=rng.integers(0, 256, (m, side, side, 3), dtype=np.uint8), **create)
        f["train_set_y"] = rng.integers(0, 2, m)
        if test:
            f.create_dataset("test_set_x", data=rng.integers(0, 256, (test, side, side, 3), dtype=np.uint8), **create)
            f["test_set_y"] = rng.integers(0, 2, test)
        f["list_classes"] = np.array([b"no", b"yes"])
    return path


def config(path, stream_setting=True, **training):
    return {
        "name": "s", "seed": 3,
        "data": {"dataset": "images", "path": str(path), "dev_fraction": 0.1, "normalize": "standardize", "stream": stream_setting},
        "model": {"layers": ["auto", 8, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "training": {"epochs": 4, "batch_size": 32, **training},
    }


def invoke_train(tmp_path, tree):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    return runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "r"), "-q"])


def arrays(run_dir):
    model = read_model(run_dir / "model.h5")
    return {(group, k): np.asarray(v).tobytes() for group, values in model.items() if isinstance(values, dict) for k, v in values.items()}


def same_results(a, b):
    assert arrays(a) == arrays(b)
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
    assert (a / "curve.csv").read_bytes() == (b / "curve.csv").read_bytes()


@pytest.mark.parametrize("create", [{}, {"chunks": (16, 8, 8, 3), "compression": "gzip"}], ids=["contiguous", "gzip-chunks"])
@pytest.mark.parametrize("dtype,hflip", [("float64", False), ("float32", True)])
def test_streamed_and_in_memory_training_give_the_same_bits(tmp_path, create, dtype, hflip):
    path = images_file(tmp_path / "x.h5", **create)
    runs = {}
    for setting in (False, True):
        cfg = config(path, setting)
        cfg["dtype"] = dtype
        cfg["data"]["augment"] = {"hflip": hflip}
        runs[setting] = train(cfg, run_dir=tmp_path / f"run-{setting}", progress=False)
    assert isinstance(prepare_data(load_config(config(path, True))).X["train"].store, stream.H5Rows)
    same_results(runs[False].path, runs[True].path)
    assert runs[False].summary["data_fingerprint"] == runs[True].summary["data_fingerprint"]


def test_a_file_dataset_streams_uint8_and_float_features(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "arrays.h5"
    with h5py.File(path, "w") as f:
        f["x_train"] = rng.normal(size=(200, 5)).astype(np.float32)
        f["y_train"] = rng.integers(0, 3, 200)
        f["x_test"] = rng.normal(size=(40, 5)).astype(np.float32)
        f["y_test"] = rng.integers(0, 3, 40)
    runs = {}
    for setting in (False, True):
        cfg = {"name": "f", "data": {"dataset": "file", "path": str(path), "normalize": "standardize", "dev_size": 20, "stream": setting},
               "model": {"layers": ["auto", 6, 3], "output_activation": "softmax"}, "optimizer": {"name": "adam", "learning_rate": 0.01},
               "training": {"epochs": 3, "batch_size": 16}}
        runs[setting] = train(cfg, run_dir=tmp_path / f"run-{setting}", progress=False)
    same_results(runs[False].path, runs[True].path)
    # float features are converted to float64 in memory and hashed in another layout than a pass in blocks can
    assert runs[True].summary["data_fingerprint"] != runs[False].summary["data_fingerprint"]


def test_a_file_with_nan_features_is_refused_when_streamed(tmp_path):
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        x = np.ones((50, 4))
        x[17, 2] = np.nan
        f["x_train"], f["y_train"] = x, np.arange(50) % 2
    res = invoke_train(tmp_path, {"data": {"dataset": "file", "path": str(path), "stream": True},
                                  "model": {"layers": ["auto", 1], "output_activation": "sigmoid"}, "training": {"batch_size": 8}})
    assert res.exit_code == 1, res.output
    assert f"data file {path}: x_train has NaN/inf values (first at example 17)" in res.output


def test_rows_are_read_in_any_order_with_repeats(tmp_path):
    for create in ({}, {"chunks": (4, 8, 8, 3), "compression": "gzip"}):
        path = images_file(tmp_path / f"x{len(create)}.h5", m=50, test=0, **create)
        rows = stream.H5Rows(path, "train_set_x")
        with h5py.File(path) as f:
            expected = f["train_set_x"][()].reshape(50, -1)
        for idx in (np.arange(50), np.array([7]), np.array([9, 3, 4, 5, 3, 49, 0, 1]), np.random.default_rng(0).permutation(50)):
            out = np.full((60, rows.shape[1]), 7, np.uint8)
            assert np.array_equal(rows.take(idx, out), expected[idx])
        assert (rows.fd is None) == bool(create)  # contiguous: preadv from the file; chunked: h5py


def test_auto_streams_when_the_data_exceed_the_memory_budget(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5", m=300, test=60)  # 360 images x 192 bytes = 69,120 bytes held raw
    cfg = load_config(config(path, "auto"))
    assert stream.held_bytes(cfg.data) == 360 * 192
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "69120")
    assert not stream.wants_stream(cfg.data, 32)
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "69119")
    assert stream.wants_stream(cfg.data, 32)
    assert not stream.wants_stream(cfg.data, None)  # full batch: never streamed by auto
    assert isinstance(prepare_data(cfg).X["train"].store, stream.H5Rows)
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "1G")
    assert isinstance(prepare_data(cfg).X["train"].store, ArrayRows)


def test_stream_auto_is_not_recorded_and_true_is(tmp_path):
    path = images_file(tmp_path / "x.h5")
    auto = train(config(path, "auto", epochs=1), run_dir=tmp_path / "auto", progress=False)
    assert "stream" not in yaml.safe_load((auto.path / "config.yaml").read_text())["data"]
    streamed = train(config(path, True, epochs=1), run_dir=tmp_path / "true", progress=False)
    assert yaml.safe_load((streamed.path / "config.yaml").read_text())["data"]["stream"] is True


@pytest.mark.parametrize("tree_change,field", [
    (lambda t: t["training"].update(batch_size=None), "data.stream"),
    (lambda t: t["data"].update(dataset="file", path="x.npz"), "data.stream"),
    (lambda t: t["data"].update(dataset="file", path="x.h5", layout="columns"), "data.stream"),
])
def test_stream_true_where_it_cannot_apply_is_a_config_error(tmp_path, tree_change, field):
    tree = config(tmp_path / "x.h5", True)
    tree_change(tree)
    res = invoke_train(tmp_path, tree)
    assert res.exit_code == 2 and field in res.output, res.output


def test_interrupted_and_resumed_streamed_run_is_bit_identical(tmp_path):
    path = images_file(tmp_path / "x.h5")
    whole = train(config(path, True, epochs=6), run_dir=tmp_path / "whole", progress=False)
    event = threading.Event()
    with pytest.raises(Interrupted):
        train(config(path, True, epochs=6), run_dir=tmp_path / "cut", interrupt=event,
              progress=lambda r, row: event.set() if r.epoch == 2 else None)
    resumed = resume(tmp_path / "cut", progress=False)
    assert resumed.summary["status"] == "completed"
    same_results(whole.path, tmp_path / "cut")
    again = reproduce(whole.path, progress=False)
    assert again.difference is None


def test_a_streamed_epoch_allocates_no_float_array_of_the_splits_size(tmp_path):
    # 1,500 images of 32x32x3: the training split as float64 would take 33 MB; a batch of 16 takes 0.4 MB.
    path = images_file(tmp_path / "x.h5", m=1500, side=32, test=0)
    cfg = load_config(config(path, True, epochs=1, batch_size=16))
    cfg.data.normalize = "scale"
    data = prepare_data(cfg)
    t = build_training(cfg, data)
    X = data.X["train"]
    split_bytes = 8 * X.shape[0] * X.shape[1]
    tracemalloc.start()
    base = 0
    try:
        for r in train_epochs(X, data.Y["train"], t.params, t.state, t.net, t.optimizer, lambda e: 0.01, 2, 16,
                              lambda e: t.rng.permutation(X.shape[1])):
            if r.epoch == 0:  # epoch 0 imports the engine's lazily loaded kernels: measured from epoch 1
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1] - base  # what epoch 1 allocated at most at any time
    finally:
        tracemalloc.stop()
    assert split_bytes > 30e6 and peak < split_bytes / 20, (peak, split_bytes)


# ---- bad input during training: one line naming the file and the epoch, run failed, checkpoint kept, exit 1 ----


def cli_train(tmp_path, path, **training):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config(path, True, epochs=5, checkpoint_every=1, **training)))
    return runner.invoke(app, ["train", str(cfg), "--run-dir", str(tmp_path / "run"), "-q"])


def assert_failed_with(res, tmp_path, path, *words):
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if str(path) in line]
    assert len(lines) == 1 and all(w in lines[0] for w in words), res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and str(path) in summary["stop_reason"]
    assert (tmp_path / "run" / "checkpoint.h5").is_file()
    return summary


def after_reads(monkeypatch, n, action):
    """Run action() once the store has served n reads (mini-batches or chunks)."""
    calls = {"n": 0}
    take = stream.H5Rows.take

    def counting(self, idx, out):
        calls["n"] += 1
        if calls["n"] == n:
            action(self)
        return take(self, idx, out)

    monkeypatch.setattr(stream.H5Rows, "take", counting)


def probe_reads(tmp_path, monkeypatch, path):
    calls = []
    take = stream.H5Rows.take
    monkeypatch.setattr(stream.H5Rows, "take", lambda self, idx, out: (calls.append(self.epoch), take(self, idx, out))[1])
    train(config(path, True, epochs=5), run_dir=tmp_path / "probe", progress=False)
    monkeypatch.setattr(stream.H5Rows, "take", take)
    return calls.index(2) + 2  # the second read in epoch 2


def test_a_file_truncated_mid_epoch_stops_the_run(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5")
    n = probe_reads(tmp_path, monkeypatch, path)
    after_reads(monkeypatch, n, lambda store: os.truncate(path, store.offset + 10 * store.row_bytes))
    summary = assert_failed_with(cli_train(tmp_path, path), tmp_path, path, "truncated", "epoch 2")
    assert summary["epochs_run"] == 2


def test_a_file_changed_between_epochs_stops_the_run(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5")
    n = probe_reads(tmp_path, monkeypatch, path)

    def rewrite(store):
        with open(path, "r+b") as f:  # same size, one pixel changed
            f.seek(store.offset)
            f.write(bytes([(f.read(1)[0] + 1) % 256]))
    after_reads(monkeypatch, n, rewrite)
    assert_failed_with(cli_train(tmp_path, path), tmp_path, path, "changed during training", "before epoch 3")


def test_labels_that_no_longer_match_the_images_stop_the_run(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5")
    n = probe_reads(tmp_path, monkeypatch, path)

    def relabel(store):  # the file re-created with 120 labels for its 300 images
        images_file(tmp_path / "new.h5")
        with h5py.File(tmp_path / "new.h5", "a") as f:
            del f["train_set_y"]
            f["train_set_y"] = np.zeros(120, np.int64)
        os.replace(tmp_path / "new.h5", path)
    after_reads(monkeypatch, n, relabel)
    assert_failed_with(cli_train(tmp_path, path), tmp_path, path, "changed during training", "epoch 3")
    # ... and such a file is refused before training starts
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "again"), "-q"])
    assert res.exit_code == 1 and f"data file {path}: expected train_set_x of shape (m, height, width, channels)" in res.output


def test_a_read_error_mid_epoch_stops_the_run(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5")
    n = probe_reads(tmp_path, monkeypatch, path)
    def failing(store):
        def broken(fd, buffers, offset):
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(stream.os, "preadv", broken)
    after_reads(monkeypatch, n, failing)
    assert_failed_with(cli_train(tmp_path, path), tmp_path, path, "read error in epoch 2", "Input/output error")


def test_evaluate_and_gradcheck_read_streamed_data(tmp_path):
    path = images_file(tmp_path / "x.h5")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(config(path, True, epochs=2)))
    run = train(cfg, run_dir=tmp_path / "run", progress=False)
    res = runner.invoke(app, ["evaluate", str(run.path)])
    assert res.exit_code == 0, res.output
    evaluation = json.loads((run.path / "evaluation.json").read_text())
    metrics = json.loads((run.path / "metrics.json").read_text())
    for split in ("train", "dev", "test"):
        assert evaluation["splits"][split]["cost"] == metrics[split]["cost"]
    res = runner.invoke(app, ["gradcheck", str(cfg)])
    assert res.exit_code == 0 and "verdict: pass" in res.output, res.output


def test_uint8_images_are_held_raw_within_the_budget_and_full_batch_copies_are_accumulated(tmp_path, monkeypatch):
    # 360 images of 192 bytes: 69 KB raw, 553 KB as float64. A budget of 200 KB loads them (held raw) ...
    path = images_file(tmp_path / "x.h5", m=300, test=60)
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "200K")
    data = prepare_data(load_config(config(path, False)))
    assert isinstance(data.X["train"].store, ArrayRows) and data.X["train"].store.dtype == np.uint8
    # ... and full-batch training, whose float copy of the training split would not fit, accumulates over chunks.
    res = invoke_train(tmp_path, config(path, False, batch_size=None))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["gradient_accumulation"]["chunks"] > 1


def test_a_read_error_in_a_compressed_file_stops_the_run(tmp_path, monkeypatch):
    path = images_file(tmp_path / "x.h5", chunks=(16, 8, 8, 3), compression="gzip")
    n = probe_reads(tmp_path, monkeypatch, path)

    def failing(store):
        def broken(self, key):
            raise OSError("Can't synchronously read data (inflate() failed)")
        monkeypatch.setattr(h5py.Dataset, "__getitem__", broken)
    after_reads(monkeypatch, n, failing)
    assert_failed_with(cli_train(tmp_path, path), tmp_path, path, "read error in epoch 2", "inflate() failed")


def test_an_exported_models_config_fingerprint_does_not_depend_on_stream():
    from dltrain.commands.export import config_fingerprint

    tree = {"data": {"dataset": "images", "path": "/a.h5"}, "model": {"layers": [3, 1]}}
    assert config_fingerprint(tree) == config_fingerprint({**tree, "data": {**tree["data"], "stream": True}})

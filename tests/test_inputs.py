"""Inputs that used to end in a traceback end in one line naming the field (issue #20)."""

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app

runner = CliRunner()
BASE = {"data": {"dataset": "moons", "n_samples": 40}, "model": {"layers": ["auto", 3, 1]}, "training": {"epochs": 2}}


def one_line(res, code):
    assert res.exit_code == code and isinstance(res.exception, SystemExit), res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


@pytest.mark.parametrize("override, expected", [
    ("data.split_seed=-1", "data.split_seed"), ("data.split_seed=1e20", "data.split_seed"), ("seed=4294967296", "seed"),
    ("training.epochs=" + "9" * 5000, "--set training.epochs"),
])
def test_bad_overrides(config, tmp_path, override, expected):
    res = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--set", override, "-q"])
    assert expected in one_line(res, 2)


@pytest.mark.parametrize("data", [{"dataset": "cat", "dir": "a\0b"}, {"dataset": "file", "path": "x\0.npz"}])
def test_a_nul_byte_in_a_path(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "data": data}))
    line = one_line(runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]), 2)
    assert "data.dir" in line or "data.path" in line


def test_a_csv_field_over_the_csv_limit(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n" + "1," + "2" * 140_000 + ",0\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "data": {"dataset": "file", "path": str(data), "label_column": "label"}}))
    line = one_line(runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]), 1)
    assert f"data file {data}, line 2: field larger than field limit" in line


def images_file(path, channels=3, classes=(b"no", b"yes")):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["train_set_x"] = rng.integers(0, 255, (20, 4, 4, channels), dtype=np.uint8)
        f["train_set_y"] = np.arange(20) % 2
        f["list_classes"] = np.array(classes)
    return path


def test_five_channel_images_are_refused_before_training(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "data": {"dataset": "images", "path": str(images_file(tmp_path / "i.h5", 5))}}))
    line = one_line(runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]), 1)
    assert "train_set_x has 5 channels per pixel" in line
    assert not (tmp_path / "runs").exists()


def test_a_class_name_is_length_limited(tmp_path):
    path = tmp_path / "c.yaml"
    data = images_file(tmp_path / "i.h5", 3, (b"no", b"y" * 1_000_000))
    path.write_text(yaml.safe_dump({**BASE, "data": {"dataset": "images", "path": str(data)}}))
    line = one_line(runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]), 1)
    assert "class names are at most 200 characters" in line


def test_a_run_that_fails_while_plotting_is_failed_with_its_model_kept(tmp_path, config, monkeypatch):
    import json

    from dltrain import plots

    def broken(*args, **kwargs):
        raise ValueError("Invalid shape for image data")

    monkeypatch.setattr(plots, "decision_boundary", broken)
    run = tmp_path / "run"
    line = one_line(runner.invoke(app, ["train", str(config), "--run-dir", str(run), "-q"]), 1)
    assert "training finished but writing its results failed (ValueError: Invalid shape for image data)" in line
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert (run / "model.h5").is_file()


def test_a_run_diverging_at_epoch_0_keeps_that_row(tmp_path):
    import csv

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "moons", "n_samples": 200}, "model": {"layers": ["auto", 8, 1]},
                                    "optimizer": {"name": "gd", "learning_rate": 1e4},
                                    "training": {"epochs": 5, "batch_size": 8, "log_every": 1}}))
    line = one_line(runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"]), 1)
    assert "training diverged at epoch 0" in line
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["0"]


def test_predict_escapes_control_characters_in_class_names(tmp_path, config):
    import json

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(config), "--run-dir", str(run), "-q"]).exit_code == 0
    with h5py.File(run / "model.h5", "r+") as f:
        f.attrs["classes"] = json.dumps(["no\nreally\\", "yes\tplease\x1b[31m"])
    np.savez(tmp_path / "x.npz", x=np.array([[-5.0, 5.0], [5.0, -5.0], [0.0, 0.0]]))
    res = runner.invoke(app, ["predict", str(run), str(tmp_path / "x.npz")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 3 for line in lines), lines
    assert {line.split("\t")[1] for line in lines} <= {"no\\x0areally\\x5c", "yes\\x09please\\x1b[31m"}


def test_a_model_over_the_memory_budget_is_refused_before_allocating(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "model": {"layers": ["auto", 20000, 20000, 20000, 1]}}))
    line = one_line(runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]), 1)
    assert "training this model would need about" in line and "model.layers" in line and "DLTRAIN_MEMORY_BUDGET" in line
    # The budget is the variable's: a small model over a tiny budget is refused, and a bad value is a usage error.
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "1K")
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(BASE))
    assert "more than the memory budget of" in one_line(runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q"]), 1)
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "lots")
    assert "DLTRAIN_MEMORY_BUDGET='lots'" in one_line(runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q"]), 2)


def test_a_data_array_over_the_budget_as_floats_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "x.npz", x=np.zeros((2000, 2), dtype=np.uint8))
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "20K")  # 4,000 bytes as uint8, 32,000 as float64
    from dltrain.data.files import read_single_array
    from dltrain.errors import DltrainError

    with pytest.raises(DltrainError, match="as float64 would need about"):
        read_single_array(tmp_path / "x.npz", "x")

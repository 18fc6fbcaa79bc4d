"""dltrain evaluate / runs / compare on real run folders trained in tmp_path, and the plots train writes."""

import csv
import hashlib
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.data import core
from tests.conftest import COURSE_DATA, needs_course_data
from tests.test_plots import assert_png

runner = CliRunner()
PLANAR = {"name": "p", "seed": 2, "rng": "course", "data": {"dataset": "planar", "dev_fraction": 0.25, "normalize": "standardize"},
          "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
          "init": {"scheme": "random"}, "optimizer": {"name": "gd", "learning_rate": 1.2},
          "training": {"epochs": 40, "log_every": 10}}


def train(tmp_path, tree, name="run", *overrides):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(tree))
    args = ["train", str(cfg), "--run-dir", str(tmp_path / name)]
    for o in overrides:
        args += ["--set", o]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return tmp_path / name, res.output


def evaluate(*args):
    res = runner.invoke(app, ["evaluate", *map(str, args)])
    assert "Traceback" not in res.output
    return res


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def planar_run(tmp_path_factory):
    run, output = train(tmp_path_factory.mktemp("planar"), PLANAR, "run", "training.log_norms=true")
    return run, output


def test_evaluate_reproduces_metrics_and_keeps_training_files(planar_run, tmp_path):
    run, _ = planar_run
    before = digests(run)
    res = evaluate(run, "--json", "--errors", tmp_path / "errors.csv")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(report["splits"]) == ["train", "dev"]
    for split, m in report["splits"].items():
        assert abs(m["cost"] - metrics[split]["cost"]) <= 1e-12
        assert m["accuracy"] == metrics[split]["accuracy"] and m["examples"] == metrics[split]["examples"]
        assert {"precision", "recall", "f1", "confusion_matrix"} <= set(m)
        assert sum(map(sum, m["confusion_matrix"])) == m["examples"]
    assert report["diagnosis"] == metrics["diagnosis"]
    assert json.loads((run / "evaluation.json").read_text()) == report
    after = digests(run)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == [
        "evaluation.json", "evaluation_dev_decision_boundary.png", "evaluation_train_decision_boundary.png"]
    assert {"cost.png", "decision_boundary.png", "norms.png", "evaluation_dev_decision_boundary.png"} <= set(report["plots"])

    rows = list(csv.DictReader((tmp_path / "errors.csv").open()))
    for split, m in report["splits"].items():
        wrong = [r for r in rows if r["split"] == split]
        assert len(wrong) == round((1 - m["accuracy"]) * m["examples"])
        assert all(r["true_label"] != r["predicted_label"] and float(r["probability"]) >= 0.5 for r in wrong)
        assert {r["true_class"] for r in wrong} <= {"red", "blue"}


def test_evaluate_one_split_and_human_error(planar_run):
    run, _ = planar_run
    res = evaluate(run, "--split", "dev", "--human-error", "0.5", "--json")
    report = json.loads(res.output)
    assert list(report["splits"]) == ["dev"]
    # The previous evaluation's plots (train, dev) are replaced, not left behind and listed.
    assert not (run / "evaluation_train_decision_boundary.png").exists()
    assert [p for p in report["plots"] if p.startswith("evaluation_")] == ["evaluation_dev_decision_boundary.png"]
    assert report["diagnosis"]["human_error"] == 0.5 and report["diagnosis"]["dev_split"] == "dev"
    res = evaluate(run, "--split", "test")
    assert res.exit_code == 1 and "no test split (it has train, dev)" in res.output


def test_evaluate_tables(planar_run):
    res = evaluate(planar_run[0])
    assert res.exit_code == 0, res.output
    for text in ("blue as positive: precision", "diagnosis:", "avoidable bias", "plots: cost.png", "evaluation.json"):
        assert text in res.output


def test_train_prints_diagnosis_and_records_norms(planar_run):
    run, output = planar_run
    assert "diagnosis: " in output and "avoidable bias" in output
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert {"norm_W1", "norm_W2", "norm_dW1", "norm_dW2"} <= set(rows[0])
    assert all(float(r["norm_W1"]) > 0 and float(r["norm_dW2"]) > 0 for r in rows)
    assert_png((run / "norms.png").read_bytes())
    assert_png((run / "decision_boundary.png").read_bytes())
    metrics = json.loads((run / "metrics.json").read_text())
    d = metrics["diagnosis"]
    assert d["train_error"] == pytest.approx(1 - metrics["train"]["accuracy"])
    assert d["dev_error"] == pytest.approx(1 - metrics["dev"]["accuracy"])


def test_evaluate_with_other_data_and_test_as_dev(tmp_path):
    moons = {**PLANAR, "data": {"dataset": "moons", "test": {"seed": 5, "n_samples": 60}}}
    run, _ = train(tmp_path, moons)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["diagnosis"]["dev_split"] == "test"  # no dev set: test plays its part, labelled so
    report = json.loads(evaluate(run, "--split", "test", "--json").output)
    assert abs(report["splits"]["test"]["cost"] - metrics["test"]["cost"]) <= 1e-12
    other = json.loads(evaluate(run, "--data", "{test: {seed: 6, n_samples: 50}}", "--split", "test", "--json").output)
    assert other["splits"]["test"]["examples"] == 50 and other["data"]["test"]["seed"] == 6
    res = evaluate(run, "--data", "{tset: 1}")
    assert res.exit_code == 2 and "data.tset: unknown key" in res.output


def test_evaluate_on_another_data_file(tmp_path):
    rs = np.random.RandomState(0)
    for name, m in (("a", 80), ("b", 30)):
        X = rs.normal(size=(m, 2))
        np.savez(tmp_path / f"{name}.npz", x_train=X, y_train=(X[:, 0] > 0).astype(int))
    tree = {**PLANAR, "data": {"dataset": "file", "path": str(tmp_path / "a.npz"), "dev_fraction": 0.25}}
    run, _ = train(tmp_path, tree)
    metrics = json.loads((run / "metrics.json").read_text())
    same = json.loads(evaluate(run, "--json", "--data", tmp_path / "a.npz").output)
    assert {k: v["cost"] for k, v in same["splits"].items()} == {k: metrics[k]["cost"] for k in ("train", "dev")}
    other = json.loads(evaluate(run, "--json", "--data", tmp_path / "b.npz").output)
    assert other["data"]["path"] == str(tmp_path / "b.npz") and other["data"]["dev_fraction"] == 0.25
    assert other["splits"]["train"]["examples"] + other["splits"]["dev"]["examples"] == 30


def test_evaluate_failures_exit_1(tmp_path, planar_run, monkeypatch):
    res = evaluate(tmp_path)
    assert res.exit_code == 1 and "not a finished dltrain run" in res.output
    (tmp_path / "model.h5").write_bytes(b"not hdf5")
    res = evaluate(tmp_path)
    assert res.exit_code == 1 and "is not a readable dltrain model" in res.output
    res = evaluate(planar_run[0], "--errors", tmp_path / "no" / "such" / "dir.csv")
    assert res.exit_code == 1 and "cannot write" in res.output and "dir.csv" in res.output
    monkeypatch.setitem(core.LOADERS, "planar", lambda d: (np.zeros((3, 8)), np.arange(8) % 2, None, None, ["a", "b"], None))
    res = evaluate(planar_run[0])
    assert res.exit_code == 1
    assert "on this data: X has 3 features (X.shape=(3, 8)) but the trained model's input size is 2" in res.output


def test_evaluate_on_data_the_model_does_not_fit_asks_for_other_data(tmp_path, planar_run):
    """The model of a finished run cannot change, so the advice is about the data (both sizes), never about model.layers."""
    rs = np.random.RandomState(0)
    np.savez(tmp_path / "wide.npz", x_train=rs.normal(size=(30, 5)), y_train=np.arange(30) % 2)
    np.savez(tmp_path / "three.npz", x_train=rs.normal(size=(30, 2)), y_train=np.arange(30) % 3)
    res = evaluate(planar_run[0], "--data", tmp_path / "wide.npz")
    assert res.exit_code == 1 and "model.layers" not in res.output
    assert res.output.strip() == (
        f"error: cannot evaluate {planar_run[0] / 'model.h5'} on this data: X has 5 features (X.shape=(5, 30)) but the trained "
        "model's input size is 2; evaluate it on data with 2 features, such as the data the run was trained on (dataset planar)")
    res = evaluate(planar_run[0], "--data", tmp_path / "three.npz")
    assert res.exit_code == 1 and "output_activation" not in res.output
    assert ("has 3 classes (labels 0..2) but the output layer is 1 sigmoid unit; "
            "evaluate it on data with 2 classes, such as the data the run was trained on (dataset planar)") in res.output


def blobs(n_x, classes, m=60, seed=0):
    rs = np.random.RandomState(seed)
    y = np.arange(m) % len(classes)
    centers = rs.uniform(0, 255, (n_x, len(classes)))
    return centers[:, y] + rs.normal(0, 40, (n_x, m)), y


def test_multiclass_images_confusion_and_misclassified(tmp_path, monkeypatch):
    classes = ["circle", "square", "star"]
    X, y = blobs(4 * 4 * 3, classes)
    Xt, yt = blobs(4 * 4 * 3, classes, 30, 1)
    monkeypatch.setitem(core.LOADERS, "planar", lambda d: (X, y, Xt, yt, classes, (4, 4, 3)))
    tree = {**PLANAR, "data": {"dataset": "planar", "normalize": "scale"},
            "model": {"layers": ["auto", 3], "output_activation": "softmax"}, "optimizer": {"learning_rate": 0.1}, "training": {"epochs": 3}}
    run, _ = train(tmp_path, tree)
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert_png((run / name).read_bytes())
    report = json.loads(evaluate(run, "--json").output)
    test = report["splits"]["test"]
    assert list(test["per_class"]) == classes and np.array(test["confusion_matrix"]).shape == (3, 3)
    assert [v["support"] for v in test["per_class"].values()] == [10, 10, 10]
    assert {"evaluation_test_confusion_matrix.png", "evaluation_test_misclassified.png"} <= set(report["plots"])
    res = evaluate(run, "--split", "test")
    assert "test: confusion matrix" in res.output and "predicted" in res.output and "square" in res.output


@needs_course_data
def test_cat_writes_misclassified_grid(tmp_path):
    from tests.conftest import REPO

    tree = yaml.safe_load((REPO / "configs" / "cat_logreg.yaml").read_text())
    run, _ = train(tmp_path, tree, "cat", f"data.dir={COURSE_DATA}", "training.epochs=20")
    pixels = assert_png((run / "misclassified.png").read_bytes())
    assert pixels.shape[1] >= 1000  # a grid of 6 columns of 64x64 images
    report = json.loads(evaluate(run, "--split", "test", "--json").output)
    assert report["splits"]["test"]["positive_class"] == "cat"


@needs_course_data
def test_signs_writes_confusion_matrix_with_class_names(tmp_path):
    from tests.conftest import REPO

    tree = yaml.safe_load((REPO / "configs" / "signs.yaml").read_text())
    run, _ = train(tmp_path, tree, "signs", f"data.dir={COURSE_DATA}", "training.epochs=2", "training.batch_size=null",
                   "data.dev_fraction=0.1")
    assert_png((run / "confusion_matrix.png").read_bytes())
    assert_png((run / "misclassified.png").read_bytes())
    report = json.loads(evaluate(run, "--split", "test", "--json").output)
    test = report["splits"]["test"]
    assert list(test["per_class"]) == ["0", "1", "2", "3", "4", "5"]
    assert sum(v["support"] for v in test["per_class"].values()) == test["examples"] == 120


def test_runs_table_and_compare(tmp_path, planar_run):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    train(runs_dir, PLANAR, "slow", "optimizer.learning_rate=0.01", "training.epochs=5")
    train(runs_dir, PLANAR, "fast")
    (runs_dir / "stray").mkdir()
    res = runner.invoke(app, ["runs", str(runs_dir), "--sort", "dev_accuracy", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    dev = {name: json.loads((runs_dir / name / "metrics.json").read_text())["dev"]["accuracy"] for name in ("slow", "fast")}
    assert dev["slow"] != dev["fast"]
    assert [r["run"] for r in rows] == sorted(dev, key=dev.get, reverse=True)
    assert [r["dev_accuracy"] for r in rows] == sorted(dev.values(), reverse=True)
    by_lr = json.loads(runner.invoke(app, ["runs", str(runs_dir), "--sort", "learning_rate", "--json"]).output)
    assert [(r["run"], r["learning_rate"]) for r in by_lr] == [("slow", 0.01), ("fast", 1.2)]
    assert by_lr[1]["layers"] == "2-4-1" and by_lr[0]["epochs"] == 5 and by_lr[1]["status"] == "completed"
    table = runner.invoke(app, ["runs", str(runs_dir)])
    assert table.exit_code == 0 and "fast" in table.output and "2 runs" in table.output
    res = runner.invoke(app, ["runs", str(runs_dir), "--sort", "dev_acc"])
    assert res.exit_code == 2 and "not a column" in res.output

    # A search folder keeps its runs in trials/: `runs` lists them and its title names that folder.
    search = tmp_path / "search"
    (search / "trials").mkdir(parents=True)
    train(search / "trials", PLANAR, "trial-001", "training.epochs=5")
    (search / "leaderboard.csv").write_text("rank,trial\n")
    table = runner.invoke(app, ["runs", str(search)])
    assert table.exit_code == 0 and "trial-001" in table.output and f"1 runs in {search / 'trials'}" in table.output
    assert [r["run"] for r in json.loads(runner.invoke(app, ["runs", str(search), "--json"]).output)] == ["trial-001"]

    out = tmp_path / "cmp.png"
    res = runner.invoke(app, ["compare", str(runs_dir / "fast"), str(runs_dir / "slow"), str(planar_run[0]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert_png(out.read_bytes())
    res = runner.invoke(app, ["compare", str(runs_dir / "stray"), "--out", str(out)])
    assert res.exit_code == 1 and "not a dltrain run folder" in res.output

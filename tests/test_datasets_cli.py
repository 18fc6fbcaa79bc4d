"""`datasets list/info/import`, `predict`, and data failures through `train`: exit codes and messages."""

import json

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dltrain.cli import app
from tests.conftest import COURSE_DATA, needs_course_data

runner = CliRunner()


def write_config(tmp_path, data, layers=("auto", 1), output="sigmoid", **extra):
    tree = {"name": "t", "data": data, "model": {"layers": list(layers), "output_activation": output},
            "optimizer": {"name": "gd", "learning_rate": 0.5}, "training": {"epochs": 5, "log_every": 5}, **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def invoke(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output
    return res


def error_lines(res):
    return [line for line in res.output.splitlines() if line.startswith("error:")]


def moons_npz(path, **change):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(40, 2)), "y_train": np.arange(40) % 2}
    arrays.update(change)
    np.savez(path, **arrays)
    return path


# ---- data failures through `dltrain train` ----------------------------------------------------------


@pytest.mark.parametrize(
    "change,message",
    [
        ({}, "has no y; its keys are: x_train, y_train"),
        ({"y": np.arange(39) % 2}, "x_train has 40 examples but y has 39"),
        ({"y": np.arange(40) % 2 - 1}, "y must hold class labels 0..C-1, found -1 (example 0)"),
        ({"y": np.arange(40) % 2 + 0.5}, "y must hold class labels 0..C-1, found 0.5 (example 0)"),
        ({"y": np.arange(40) % 3}, "d.npz) has 3 classes (labels 0..2) but the output layer is 1 sigmoid unit"),
        # Labels 1..C (MATLAB's numbering) are no reason for a softmax with C + 1 units.
        ({"y": np.arange(40) % 2 + 1}, "d.npz) has labels 1, 2, but class labels must start at 0 (0..C-1 for C classes): "
                                       "subtract 1 from them, or map them to 0..C-1"),
        ({"y": np.arange(40) % 2, "x_train": np.full((40, 2), np.nan)}, "x_train has 80 NaN/inf values"),
    ],
)
def test_bad_data_file_exits_1_with_one_line(tmp_path, change, message):
    path = moons_npz(tmp_path / "d.npz", **change)
    res = invoke("train", write_config(tmp_path, {"dataset": "file", "path": str(path), "y_train": "y"}),
                 "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 1, res.output
    assert len(error_lines(res)) == 1 and message in res.output


@pytest.mark.parametrize("content,message", [(None, "not found (looked in"), (b"\x89HDF garbage", "is not a readable HDF5 file")])
def test_missing_or_corrupt_images_h5_through_train(tmp_path, content, message):
    path = tmp_path / "imgs.h5"
    if content is not None:
        path.write_bytes(content)
    res = invoke("train", write_config(tmp_path, {"dataset": "images", "path": str(path)}), "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 1 and len(error_lines(res)) == 1 and message in res.output


def test_split_counts_are_recorded(tmp_path):
    path = moons_npz(tmp_path / "d.npz")
    cfg = write_config(tmp_path, {"dataset": "file", "path": str(path), "dev_size": 4, "test_fraction": 0.25,
                                  "normalize": "standardize"})
    res = invoke("train", cfg, "--run-dir", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["split_counts"] == {"train": 26, "dev": 4, "test": 10}
    with h5py.File(tmp_path / "run" / "model.h5") as f:
        assert f["normalization/mean"].shape == (2, 1) and json.loads(f.attrs["image_shape"]) is None


# ---- datasets list / info -----------------------------------------------------------------------------


def test_datasets_list_says_what_is_found(tmp_path):
    (tmp_path / "football.mat").write_bytes(b"")
    res = invoke("datasets", "list", "--dir", tmp_path)
    assert res.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in res.output.splitlines() if line.count("│") > 2}
    assert "found" in rows["football"] and "missing" in rows["cat"] and "missing" in rows["signs"]
    assert {"planar", "moons", "circles", "your arrays", "your images"} <= set(rows)


def test_datasets_info_of_a_name_and_of_a_config(tmp_path):
    res = invoke("datasets", "info", "moons", "--set", "data.dev_fraction=0.1", "--set", "data.test_fraction=0.2")
    assert res.exit_code == 0, res.output
    assert "dataset moons: 2 features, 2 classes" in res.output
    counts = {line.split("│")[1].strip(): line.split("│")[2:5] for line in res.output.splitlines() if line.count("│") == 5}
    assert {k: [int(c) for c in v] for k, v in counts.items()} == {
        "train": [210, 105, 105], "dev": [30, 15, 15], "test": [60, 30, 30]}
    path = moons_npz(tmp_path / "d.npz")
    res = invoke("datasets", "info", write_config(tmp_path, {"dataset": "file", "path": str(path)}))
    assert res.exit_code == 0 and "dataset file: 2 features, 2 classes" in res.output


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["nope"], 2, "'nope' is neither a config file (.yaml) nor a dataset name"),
        (["file"], 2, "dataset file: data.path: required key is missing"),
        (["cat", "--set", "data.dir=/nowhere"], 1, "train_catvnoncat.h5 not found"),
    ],
)
def test_datasets_info_errors(args, code, message):
    res = invoke("datasets", "info", *args)
    assert res.exit_code == code and message in res.output


@needs_course_data
def test_datasets_info_of_real_signs():
    res = invoke("datasets", "info", "signs", "--set", f"data.dir={COURSE_DATA}")
    assert res.exit_code == 0 and "12288 features (images 64x64x3), 6 classes" in res.output
    assert "1071 │ 178 │ 179 │ 176 │ 179 │ 179 │ 180" in res.output


@needs_course_data
def test_datasets_info_of_the_listed_football_file():
    res = invoke("datasets", "info", "football", "--set", f"data.path={COURSE_DATA / 'football.mat'}")
    assert res.exit_code == 0 and "2 features, 2 classes" in res.output
    assert "train │      211" in res.output and "test  │      200" in res.output


# ---- image folders: import -> train -> predict -----------------------------------------------------


def make_image_folder(root):
    """Two classes of tiny noisy images, reddish and bluish, of assorted sizes and formats."""
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (30, 40, 220)), ("red", (220, 30, 40))):
        (root / name).mkdir(parents=True)
        for i in range(6):
            h, w = 10 + i, 12
            pixels = np.clip(rng.normal(colour, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)
            suffix = ".jpg" if i == 5 else ".PNG" if i == 4 else ".png"
            Image.fromarray(pixels).save(root / name / f"{i}{suffix}")
        (root / name / "notes.txt").write_text("not an image")
    return root


def test_image_folder_round_trip(tmp_path):
    folder = make_image_folder(tmp_path / "photos")
    out = tmp_path / "photos.h5"
    res = invoke("datasets", "import", folder, out, "--size", 8, "--test-fraction", 0.33, "--seed", 3)
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        assert f["train_set_x"].shape == (8, 8, 8, 3) and f["train_set_x"].dtype == np.uint8
        assert f["test_set_x"].shape == (4, 8, 8, 3)
        assert [c.decode() for c in f["list_classes"][()]] == ["blue", "red"]
        assert np.bincount(f["test_set_y"][()]).tolist() == [2, 2]
    assert invoke("datasets", "import", folder, out).exit_code == 1  # never overwrites

    cfg = write_config(tmp_path, {"dataset": "images", "path": str(out)}, training={"epochs": 40, "log_every": 10})
    res = invoke("train", cfg, "--run-dir", tmp_path / "run")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["examples"] == 8 and metrics["test"]["examples"] == 4

    res = invoke("predict", tmp_path / "run", folder / "red" / "5.jpg", folder / "blue" / "0.png")
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.output.splitlines()]
    assert [r[0] for r in rows] == [str(folder / "red" / "5.jpg"), str(folder / "blue" / "0.png")]
    assert [r[1] for r in rows] == ["red", "blue"] and all(float(r[2]) > 0.5 for r in rows)

    res = invoke("predict", tmp_path / "run", out, "--key", "test_set_x")
    assert res.exit_code == 0 and res.output.count("photos.h5[") == 4


def test_import_errors(tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    res = invoke("datasets", "import", tmp_path / "one", tmp_path / "o.h5")
    assert res.exit_code == 1 and "has 1 class sub-folder(s); expected at least 2" in res.output
    (tmp_path / "one" / "empty").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "one" / "only" / "a.png")
    res = invoke("datasets", "import", tmp_path / "one", tmp_path / "o.h5")
    assert res.exit_code == 1 and "class folder" in res.output and "has no jpg/jpeg/png images" in res.output
    (tmp_path / "one" / "empty" / "bad.jpg").write_bytes(b"not a jpeg")
    # Images are read while the file is written (a block at a time), after the split is checked.
    res = invoke("datasets", "import", tmp_path / "one", tmp_path / "o.h5", "--test-fraction", "0")
    assert res.exit_code == 1 and "bad.jpg cannot be read as an image" in res.output
    assert not list(tmp_path.glob("*o.h5*"))  # no output, no temporary file left
    assert invoke("datasets", "import", tmp_path / "one", tmp_path / "o.txt").exit_code == 2
    for seed in ("-1", str(2**70)):
        assert invoke("datasets", "import", tmp_path / "one", tmp_path / "o.h5", "--seed", seed).exit_code == 2
    (tmp_path / "one" / "empty" / "bad.jpg").unlink()
    Image.new("RGB", (4, 4)).save(tmp_path / "one" / "empty" / "b.png")
    (tmp_path / "file").write_text("")
    res = invoke("datasets", "import", tmp_path / "one", tmp_path / "file" / "o.h5", "--test-fraction", "0")
    assert res.exit_code == 1 and "cannot create the folder of" in res.output


# ---- predict errors -----------------------------------------------------------------------------------


@pytest.fixture
def moons_run(tmp_path):
    path = moons_npz(tmp_path / "d.npz")
    res = invoke("train", write_config(tmp_path, {"dataset": "file", "path": str(path)}), "--run-dir", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    return tmp_path / "run"


def test_predict_arrays_and_errors(tmp_path, moons_run):
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 2)))
    res = invoke("predict", moons_run, tmp_path / "x.npz")
    assert res.exit_code == 0 and res.output.count("x.npz[") == 3
    np.savez(tmp_path / "cols.npz", x=np.zeros((2, 5)))
    assert invoke("predict", moons_run, tmp_path / "cols.npz", "--layout", "columns").output.count("cols.npz[") == 5

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    np.savez(tmp_path / "wide.npz", x=np.zeros((3, 5)))
    for args, code, message in [
        ([tmp_path / "a.png"], 1, "was not trained on images"),
        ([tmp_path / "two.npz"], 1, "has 2 arrays (a, b); choose one with --key"),
        ([tmp_path / "wide.npz"], 1, "5 features per example but the model expects 2"),
        ([tmp_path / "c.yaml"], 2, "expected an image (.jpg, .jpeg, .png) or an array file (.npz, .h5, .hdf5, .mat) or a csv table (.csv)"),
        ([tmp_path / "x.npz", "--layout", "diagonal"], 2, "diagonal"),
        ([tmp_path / "x.npz", "--key", "nope"], 1, "has no nope; its keys are: x"),
    ]:
        res = invoke("predict", moons_run, *args)
        assert res.exit_code == code and message in res.output, (args, res.output)
    res = invoke("predict", tmp_path, tmp_path / "x.npz")
    assert res.exit_code == 1 and "is not a finished dltrain run" in res.output


# ---- csv tables: train -> predict -----------------------------------------------------------------


def write_csv(path, x, y=None, label="label"):
    """x (m, 2) and labels y (m,) as a csv table with the label column between the two features."""
    lines = ["a,b"] if y is None else [f"a,{label},b"]
    lines += [f"{a!r},{b!r}" if y is None else f"{a!r},{c},{b!r}" for (a, b), c in zip(x.tolist(), [None] * len(x) if y is None else y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_predict_csv_like_training_reads_it(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    train_csv = write_csv(tmp_path / "train.csv", x, y)
    config = write_config(tmp_path, {"dataset": "file", "path": str(train_csv), "label_column": "label"})
    assert invoke("train", config, "--run-dir", tmp_path / "run", "-q").exit_code == 0
    np.savez(tmp_path / "x.npz", x=x[:5])
    expected = [line.split("\t")[1:] for line in invoke("predict", tmp_path / "run", tmp_path / "x.npz").output.splitlines()]
    # The training table itself (its label column left out) and a table of features only.
    features_csv = write_csv(tmp_path / "new.csv", x[:5])
    for table in (train_csv, features_csv):
        res = invoke("predict", tmp_path / "run", table)
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        assert [line.split("\t")[0] for line in lines][:2] == [f"{table}[0]", f"{table}[1]"]
        assert [line.split("\t")[1:] for line in lines[:5]] == expected
    import dltrain

    api = dltrain.predict(tmp_path / "run", [features_csv])
    assert [[p.label, f"{p.probability:.4f}"] for p in api] == expected

    (tmp_path / "wide.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,x\n")
    for path, message in [
        (tmp_path / "wide.csv", "wide.csv: 3 feature columns ('a', 'b', 'c') but the model expects 2; "
                                "a column named 'label' (the run's label column) would be left out"),
        (tmp_path / "text.csv", "text.csv, line 3, column 'b': 'x' is not a number"),
        (tmp_path / "none.csv", "none.csv not found"),
    ]:
        res = invoke("predict", tmp_path / "run", path)
        assert res.exit_code == 1 and message in res.output and len(error_lines(res)) == 1, res.output


def test_csv_text_labels_train_predict_and_evaluate(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    answers = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    train_csv = write_csv(tmp_path / "train.csv", x, answers)
    config = write_config(tmp_path, {"dataset": "file", "path": str(train_csv), "label_column": "label"},
                          training={"epochs": 200, "log_every": 100})
    res = invoke("train", config, "--run-dir", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "run" / "model.h5") as f:
        assert json.loads(f.attrs["classes"]) == ["no", "yes"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]["accuracy"] > 0.9
    res = invoke("predict", tmp_path / "run", write_csv(tmp_path / "new.csv", np.array([[2.0, 2.0], [-2.0, -2.0]])))
    assert [line.split("\t")[1] for line in res.output.splitlines()] == ["yes", "no"]
    # A table holding only 'yes' rows keeps the run's classes: 'yes' is still class 1.
    only_yes = write_csv(tmp_path / "yes.csv", x[answers == "yes"], answers[answers == "yes"])
    res = invoke("evaluate", tmp_path / "run", "--data", only_yes, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    (tn, fp), (fn, tp) = report["splits"]["train"]["confusion_matrix"]
    assert tn + fp == 0 and tp + fn == int((answers == "yes").sum()) and tp > 0.9 * (tp + fn)
    res = invoke("evaluate", tmp_path / "run", "--data", write_csv(tmp_path / "odd.csv", x[:3], ["no", "yes", "maybe"]))
    assert res.exit_code == 1 and "line 4, column 'label': 'maybe' is not one of the classes 'no', 'yes'" in res.output


def test_softmax_labels_1_to_C_are_told_to_start_at_0(tmp_path):
    path = moons_npz(tmp_path / "d.npz", y_train=np.arange(40) % 3 + 1)
    res = invoke("train", write_config(tmp_path, {"dataset": "file", "path": str(path)}, layers=("auto", 3), output="softmax"),
                 "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 1 and len(error_lines(res)) == 1
    assert "has labels 1, 2, 3, but class labels must start at 0 (0..C-1 for C classes): subtract 1" in res.output
    assert "softmax output layer has 3 units" not in res.output


@pytest.mark.parametrize("n_classes, per_class_rows", [(3, False), (10, True)])
def test_counts_table_turns_to_a_row_per_class_when_the_columns_do_not_fit(monkeypatch, n_classes, per_class_rows):
    import io

    from rich.console import Console

    from dltrain import render

    screen = Console(width=80, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(render, "out", screen)
    classes = [f"class-{i:02d}-long" for i in range(n_classes)]
    counts = {"train": [100 + i for i in range(n_classes)], "test": [10 + i for i in range(n_classes)]}
    screen.print(render.counts_table(counts, classes))
    text = screen.file.getvalue().replace("┃", "│")  # the header row has heavy bars
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    if per_class_rows:
        for i, name in enumerate(classes):  # a class's line holds its train and test counts
            assert f" {100 + i} " in lines[name] and f" {10 + i} " in lines[name]
        assert sum(counts["train"]) == int(lines["examples"].split("│")[2])
    else:
        assert all(name in lines["split"] for name in classes)
        assert lines["train"].split("│")[2].strip() == str(sum(counts["train"]))

"""dltrain export: the ONNX graph computes what `dltrain predict` computes, on every example, in ONNX Runtime."""

import json
import sys

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from dltrain.commands.export import config_fingerprint, export
from dltrain.commands.predict import predict
from dltrain.commands.trained import load_trained, probabilities
from dltrain.data import load_dataset
from dltrain.data.images import import_image_folder, read_image
from dltrain.errors import DltrainError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

runner = CliRunner()

PLANAR = {"name": "planar", "seed": 2, "rng": "course", "data": {"dataset": "planar"},
          "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
          "init": {"scheme": "random"}, "optimizer": {"name": "gd", "learning_rate": 1.2},
          "training": {"epochs": 300, "log_every": 100}}
# Batch norm's running statistics and dropout (off at inference) both matter here; leaky ReLU's slope is not the default.
MOONS_BN = {"name": "moons-bn", "dtype": "float32", "data": {"dataset": "moons", "dev_fraction": 0.2, "normalize": "standardize"},
            "model": {"layers": ["auto", 8, 5, 1], "batch_norm": True, "hidden_activation": "leaky_relu", "leaky_relu_slope": 0.2},
            "regularization": {"keep_prob": 0.8}, "optimizer": {"name": "adam", "learning_rate": 0.01},
            "training": {"epochs": 40, "batch_size": 32, "log_every": 10}}
MOONS_BN64 = {**MOONS_BN, "name": "moons-bn64", "dtype": "float64",
              "model": {"layers": ["auto", 8, 5, 1], "batch_norm": True, "hidden_activation": "sigmoid"}}


def softmax_config(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 4)) * 3 + y[:, None] * np.array([2.0, -1.0, 0.5, 10.0])
    np.savez(tmp_path / "three.npz", x_train=x, y_train=y)
    return {"name": "three", "data": {"dataset": "file", "path": str(tmp_path / "three.npz"), "normalize": "standardize",
                                      "classes": ["a", "b", "c"]},
            "model": {"layers": ["auto", 6, 3], "hidden_activation": "sigmoid", "output_activation": "softmax", "batch_norm": True},
            "optimizer": {"name": "adam", "learning_rate": 0.05}, "training": {"epochs": 60, "batch_size": 16, "log_every": 20}}


def images_config(tmp_path):
    """A tiny images dataset made as a user would: class folders of PNGs, `dltrain datasets import`."""
    rng = np.random.default_rng(1)
    for name, tint in (("day", 200), ("night", 40)):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(tint, 50, size=(10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.png")
    import_image_folder(tmp_path / "photos", tmp_path / "photos.h5", 8, 0.25, 0)
    return {"name": "photos", "dtype": "float32", "data": {"dataset": "images", "path": str(tmp_path / "photos.h5")},
            "model": {"layers": ["auto", 6, 1], "hidden_activation": "relu"},
            "optimizer": {"name": "adam", "learning_rate": 0.01}, "training": {"epochs": 30, "log_every": 10}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    configs = {"planar": PLANAR, "moons_bn": MOONS_BN, "moons_bn64": MOONS_BN64,
               "softmax": softmax_config(tmp), "images": images_config(tmp)}
    return {k: dltrain.train(c, runs_dir=tmp / "runs", progress=False).path for k, c in configs.items()}


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def all_examples(run_dir) -> np.ndarray:
    """Every example of the run's data, train and test, raw (pixels 0-255): X (n_x, m)."""
    ds = load_dataset(load_trained(run_dir).cfg.data)
    return np.concatenate([ds.X_train] + ([ds.X_test] if ds.X_test is not None else []), axis=1)


TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.mark.parametrize("kind", ["planar", "moons_bn", "moons_bn64", "softmax", "images"])
def test_onnx_runtime_equals_predict_on_every_example(runs, kind, tmp_path):
    run_dir = runs[kind]
    t = load_trained(run_dir)
    exported = export(run_dir, out=tmp_path / "model.onnx")
    assert exported.element_type == t.cfg.dtype
    X = all_examples(run_dir)
    rows = X.T.astype(t.cfg.dtype)  # examples as rows; image pixels flattened (h, w, c) as predict flattens them
    probs, label = session(exported.out).run(None, {"X": rows})
    assert probs.dtype == np.dtype(t.cfg.dtype) and label.dtype == np.int64
    expected = probabilities(t, X).T
    assert probs.shape == expected.shape == (X.shape[1], t.net.layers[-1].units)
    assert np.abs(probs - expected).max() <= TOLERANCE[t.cfg.dtype]
    # `dltrain predict` on the same examples from an array file: its label and its probability of that label.
    np.savez(tmp_path / "examples.npz", x=X.T)
    predicted = predict(run_dir, [tmp_path / "examples.npz"])
    assert [p.label for p in predicted] == [t.classes[i] for i in label]
    p_label = probs[:, 0] if probs.shape[1] == 1 else probs.max(axis=1)
    p_label = np.where(label == 1, p_label, 1 - p_label) if probs.shape[1] == 1 else p_label
    assert np.abs(np.array([p.probability for p in predicted]) - p_label).max() <= TOLERANCE[t.cfg.dtype] * 2


def test_an_image_file_served_with_onnx_runtime_as_predict_sees_it(runs, tmp_path):
    run_dir = runs["images"]
    with h5py.File(load_trained(run_dir).cfg.data.path) as f:
        Image.fromarray(f["test_set_x"][0]).save(tmp_path / "one.png")
    out = export(run_dir).out
    assert out == run_dir / "model.onnx"
    pixels = read_image(tmp_path / "one.png", (8, 8, 3)).reshape(1, -1).astype(np.float32)
    probs, label = session(out).run(None, {"X": pixels})
    [p] = predict(run_dir, [tmp_path / "one.png"])
    classes = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}["classes"])
    assert p.label == classes[label[0]]
    assert abs(p.probability - (probs[0, 0] if label[0] == 1 else 1 - probs[0, 0])) <= 1e-6


def test_onnx_file_has_opset_names_and_metadata(runs, tmp_path):
    run_dir = runs["softmax"]
    model = onnx.load(export(run_dir, out=tmp_path / "m.onnx").out)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert [i.name for i in model.graph.input] == ["X"]
    assert [o.name for o in model.graph.output] == ["probabilities", "label"]
    x = model.graph.input[0].type.tensor_type
    assert x.elem_type == onnx.TensorProto.DOUBLE and [d.dim_param or d.dim_value for d in x.shape.dim] == ["m", 4]
    assert "one example per row" in model.graph.input[0].doc_string
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == ["a", "b", "c"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert meta["config_fingerprint"] == config_fingerprint(resolved) and meta["config_fingerprint"].startswith("sha256:")
    assert meta["data_fingerprint"] == json.loads((run_dir / "summary.json").read_text())["data_fingerprint"]
    assert meta["element_type"] == "float64" and meta["output"] == "softmax" and meta["dltrain_version"] == dltrain.__version__


def test_config_fingerprint_ignores_data_paths_only():
    tree = {"data": {"dataset": "cat", "dir": "/a"}, "model": {"layers": [3, 1]}}
    assert config_fingerprint(tree) == config_fingerprint({**tree, "data": {"dataset": "cat", "dir": "/b"}})
    assert config_fingerprint(tree) != config_fingerprint({**tree, "model": {"layers": [3, 2, 1]}})


def test_cli_export(runs, tmp_path):
    res = runner.invoke(app, ["export", str(runs["planar"]), "--out", str(tmp_path / "p.onnx")])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(tmp_path / "p.onnx")
    assert "float64" in res.output and (tmp_path / "p.onnx").is_file()
    res = runner.invoke(app, ["export", str(runs["planar"]), "--format", "tflite"])
    assert res.exit_code == 2


def test_missing_extra_is_one_line_naming_pip(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    monkeypatch.delitem(sys.modules, "dltrain.onnx_graph", raising=False)
    with pytest.raises(DltrainError) as e:
        export(runs["planar"])
    assert e.value.exit_code == 1 and "pip install 'dltrain[export]'" in str(e.value)
    res = runner.invoke(app, ["export", str(runs["planar"])])
    assert res.exit_code == 1 and res.output.strip() == "error: ONNX export needs the onnx package: pip install 'dltrain[export]'"


def test_export_of_a_folder_without_model_says_so(tmp_path):
    with pytest.raises(DltrainError, match="no model.h5"):
        export(tmp_path)

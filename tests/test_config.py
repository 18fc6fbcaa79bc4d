import typing

import pytest

from dltrain import config as C
from dltrain.engine.activations import ACTIVATIONS
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.optimizers import OPTIMIZERS
from dltrain.engine.schedules import SCHEDULES
from dltrain.errors import DltrainError

BASE = {"data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]}}


def problems(tree):
    with pytest.raises(DltrainError) as e:
        C.validate_config(tree, source="cfg")
    assert e.value.exit_code == 2
    return str(e.value).splitlines()


def with_(path, value):
    tree = {"data": dict(BASE["data"]), "model": dict(BASE["model"])}
    C.set_path(tree, path, value)
    return tree


def tags(union) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["name"].annotation)[0] for m in members}


def test_registries_match_config_names():
    assert tags(C.OptimizerConfig) == set(OPTIMIZERS)
    assert tags(C.ScheduleConfig) == set(SCHEDULES)
    assert set(typing.get_args(C.InitConfig.model_fields["scheme"].annotation.__args__[0])) == set(INITIALIZERS)
    hidden = set(typing.get_args(C.ModelConfig.model_fields["hidden_activation"].annotation))
    output = set(typing.get_args(C.ModelConfig.model_fields["output_activation"].annotation))
    assert hidden | output <= set(ACTIVATIONS)


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("optimizer", {"name": "gd", "learning_rate": -0.1}, "cfg: optimizer.learning_rate: got -0.1; Input should be greater than 0"),
        ("model.hidden_activation", "rleu", "cfg: model.hidden_activation: got 'rleu'; allowed: relu, leaky_relu, tanh, sigmoid; did you mean 'relu'?"),
        ("model.layers", ["auto", 0, 1], "cfg: model.layers[1]: got 0; a whole number >= 1"),
        ("optimizr", {"name": "gd"}, "did you mean 'optimizer'?"),
        ("optimizer", {"name": "adamw"}, "cfg: optimizer.name: got 'adamw'; allowed: gd, momentum, rmsprop, adam; did you mean 'adam'?"),
        ("optimizer", {"name": "gd", "beta2": 0.9}, "cfg: optimizer.beta2: unknown key; allowed here: learning_rate, name"),
        ("model.output_activation", "softmax", "softmax needs at least 2 output units"),
        ("training.epochs", "many", "cfg: training.epochs: got 'many'"),
        ("name", "../escape", "cfg: name: got '../escape'"),
    ],
)
def test_errors_name_field_value_and_allowed(path, value, expected):
    lines = problems(with_(path, value))
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("training", {"batch_size": True}, "training.batch_size: got True; Input should be a valid integer"),
        ("seed", True, "seed: got True; Input should be a valid integer"),
        ("regularization", {"l2": "0.5"}, "regularization.l2: got '0.5'; Input should be a valid number"),
        ("model.layers", ["auto", True, 1], "model.layers[1]: got True; allowed: a valid integer or 'auto'"),
    ],
)
def test_no_coercion_of_booleans_or_strings_into_numbers(path, value, expected):
    """A YAML `true` or a quoted number is a mistake, not the integer 1 or a float."""
    assert any(expected in line for line in problems(with_(path, value)))


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("model.output_activation", "softmax", "cfg: model.layers[2]: got 1; softmax needs at least 2 output units (one per class)"),
        ("model.layers", [2, 4, 3], "cfg: model.layers[2]: got 3; a sigmoid output has exactly 1 unit; use output_activation: softmax"),
        ("model.layers", ["x", 4, 1], "cfg: model.layers[0]: got 'x'; allowed: a valid integer or 'auto'"),
        ("model.layers", [2, "auto", 1], "cfg: model.layers[1]: got 'auto'; a whole number >= 1 ('auto' only as the input size, layers[0])"),
        ("regularization.keep_prob", [0.5, 0.5], "cfg: regularization.keep_prob: got [0.5, 0.5]; keep_prob lists 2 values but the model "
                                                 "has 1 hidden layer (model.layers is ['auto', 4, 1]): give one value per hidden layer"),
        ("regularization.keep_prob", [1.5], "cfg: regularization.keep_prob[0]: got 1.5; keep_prob must be in (0, 1] (1 = no dropout)"),
        ("training", {"epochs": 10, "shuffle_seed": 2**32 - 5}, "cfg: training.shuffle_seed: got 4294967291; shuffle_seed + epochs must be at most"),
    ],
)
def test_cross_field_errors_name_the_field_and_its_value(path, value, expected):
    """A model validator's error names the offending field below its section, not the section with its whole mapping."""
    lines = problems(with_(path, value))
    assert any(line.startswith(expected) for line in lines), lines


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("regularization.keep_prob", "high", ["cfg: regularization.keep_prob: got 'high'; allowed: a valid number or a valid list"]),
        ("regularization.keep_prob", [0.5, "a"], ["cfg: regularization.keep_prob[1]: got 'a'; Input should be a valid number"]),
        ("model.layers", [2, 4.5, 1], ["cfg: model.layers[1]: got 4.5; allowed: a valid integer or 'auto'"]),
        ("optimizer", {"name": "adam", "beta2": "x"}, ["cfg: optimizer.beta2: got 'x'; Input should be a valid number"]),
    ],
)
def test_union_branches_are_not_in_the_path(path, value, expected):
    """pydantic's union branch names (.float, .int, .str) are not keys: one line at the user's key path says what is allowed."""
    assert problems(with_(path, value)) == expected


def test_exponents_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-4 as a string; dltrain's loader reads it as the float it means."""
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: planar}\nmodel: {layers: [auto, 4, 1]}\noptimizer: {learning_rate: 1e-4}\n")
    assert C.load_config(path, ["regularization.l2=5E-3"]).optimizer.learning_rate == 1e-4
    assert C.load_config(path, ["regularization.l2=5E-3"]).regularization.l2 == 5e-3


def test_one_line_per_problem():
    tree = with_("optimizer", {"name": "gd", "learning_rate": 0})
    tree["model"]["hidden_activation"] = "nope"
    assert len(problems(tree)) == 2


def test_defaults_resolved():
    cfg = C.validate_config(BASE)
    assert (cfg.init.scheme, cfg.init.scale, cfg.rng, cfg.dtype) == ("he", 1.0, "modern", "float64")
    tanh = C.validate_config(with_("model.hidden_activation", "tanh"))
    assert tanh.init.scheme == "xavier"
    assert C.validate_config(with_("init", {"scheme": "random"})).init.scale == 0.01


def test_overrides_and_paths(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: {dataset: planar}\nmodel: {layers: [auto, 4, 1]}\n")
    cfg = C.load_config(f, ["optimizer.learning_rate=0.5", "model.layers[1]=8", "training.batch_size=null"])
    assert (cfg.optimizer.learning_rate, cfg.model.layers, cfg.training.batch_size) == (0.5, ["auto", 8, 1], None)
    with pytest.raises(DltrainError, match="expected KEY.PATH=VALUE"):
        C.load_config(f, ["novalue"])
    with pytest.raises(DltrainError, match=r"no list entry \[7\]"):
        C.load_config(f, ["model.layers[7]=3"])


def test_unsafe_or_broken_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(DltrainError, match="not valid YAML"):
        C.load_config(f)
    f.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(DltrainError, match="not UTF-8"):
        C.load_config(f)
    with pytest.raises(DltrainError, match="not found"):
        C.load_config(tmp_path / "missing.yaml")


def test_dataset_names_match_loaders_and_catalog():
    from dltrain.data.core import CATALOG, LOADERS

    members = typing.get_args(typing.get_args(C.DataConfig)[0])
    names = {typing.get_args(m.model_fields["dataset"].annotation)[0] for m in members}
    assert names == set(LOADERS)
    assert names <= {select.split(",")[0].split()[1] for _, select, _ in CATALOG}


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"dataset": "moons", "dev_fraction": 0.1, "dev_size": 5}, "cfg: data.dev_size: got 5; give dev_fraction or dev_size, not both"),
        ({"dataset": "moons", "dev_size": 0}, "cfg: data.dev_size: got 0; Input should be greater than or equal to 1"),
        ({"dataset": "cat", "test_fraction": 0.1},
         "cfg: data.test_fraction: got 0.1; test_fraction is only for data without a test part, but cat has its own test file"),
        ({"dataset": "signs", "test_fraction": 0.1}, "signs has its own test file"),
        ({"dataset": "circles", "test_fraction": 0.1}, "set test: null to carve one instead"),
        ({"dataset": "images", "path": "a.h5", "test_path": "b.h5", "test_fraction": 0.1}, "test_path is set"),
        ({"dataset": "moons", "dev_fraction": 0.5, "test_fraction": 0.5}, "cfg: data.test_fraction: got 0.5; dev_fraction + test_fraction must be below 1"),
        ({"dataset": "file", "path": "d.txt"}, "cfg: data.path: got 'd.txt'; path must end in .npz, .h5, .hdf5, .mat, .csv"),
        ({"dataset": "file", "path": "d.csv"}, "cfg: data.label_column: a .csv file needs label_column"),
        ({"dataset": "file", "path": "d.npz", "label_column": "y"}, "cfg: data.label_column: got 'y'; label_column is only for .csv files"),
        ({"dataset": "file", "path": "d.csv", "label_column": "y", "x_test": "xv"}, "cfg: data.x_test: got 'xv'; a .csv file has one table: drop x_test"),
        ({"dataset": "file", "path": "d.npz", "y_test": None}, "cfg: data.y_test: got None; set both x_test and y_test, or both to null (x_test is 'x_test')"),
        ({"dataset": "file", "path": "d.npz", "classes": ["a", "a"]}, "cfg: data.classes: got ['a', 'a']; classes must be distinct names ('a' is repeated)"),
        ({"dataset": "file", "path": "d.npz", "layout": "cols"}, "cfg: data.layout: got 'cols'; allowed: rows, columns; did you mean 'columns'?"),
        ({"dataset": "file"}, "cfg: data.path: required key is missing"),
        ({"dataset": "images", "path": "a.npz"}, "cfg: data.path: got 'a.npz'; expected an .h5 or .hdf5 file"),
        ({"dataset": "sings"}, "cfg: data.dataset: got 'sings'; allowed: cat, signs, planar, moons, circles, file, images; did you mean 'signs'?"),
    ],
)
def test_data_errors(data, expected):
    lines = problems({"data": data, "model": BASE["model"]})
    assert any(expected in line for line in lines), lines


def test_data_splits_accepted():
    cfg = C.validate_config({"data": {"dataset": "circles", "test": None, "test_fraction": 0.01, "dev_fraction": 0.01},
                             "model": BASE["model"]})
    assert (cfg.data.test_fraction, cfg.data.dev_fraction, cfg.data.split_seed) == (0.01, 0.01, 0)
    # The resolved config (every key written out) validates again, as load_trained needs.
    csv = C.validate_config({"data": {"dataset": "file", "path": "d.csv", "label_column": "y"}, "model": BASE["model"]})
    assert C.validate_config(csv.model_dump(mode="json")).data == csv.data

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
        ("model.layers", ["auto", 0, 1], "cfg: model.layers: got ['auto', 0, 1]; layers[1] must be a whole number >= 1, got 0"),
        ("optimizr", {"name": "gd"}, "did you mean 'optimizer'?"),
        ("optimizer", {"name": "adamw"}, "cfg: optimizer: got 'adamw'; allowed: gd, momentum, rmsprop, adam; did you mean 'adam'?"),
        ("optimizer", {"name": "gd", "beta2": 0.9}, "cfg: optimizer.beta2: unknown key; allowed here: learning_rate, name"),
        ("model.output_activation", "softmax", "softmax needs at least 2 output units"),
        ("training.epochs", "many", "cfg: training.epochs: got 'many'"),
        ("name", "../escape", "cfg: name: got '../escape'"),
    ],
)
def test_errors_name_field_value_and_allowed(path, value, expected):
    lines = problems(with_(path, value))
    assert any(expected in line for line in lines), lines


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

"""Property test: any mutation of a valid config either trains or exits 1/2 with one-line messages, never a traceback."""

import copy
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dltrain.cli import app

runner = CliRunner()

# Every section present, so that mutations reach every key; two epochs keep a successful run short.
BASE = {
    "name": "fuzz", "seed": 1, "rng": "modern", "dtype": "float64",
    "data": {"dataset": "moons", "seed": 3, "n_samples": 60, "noise": 0.2, "dev_fraction": 0.2, "normalize": "standardize",
             "test": {"seed": 4, "n_samples": 20}},
    "model": {"layers": ["auto", 3, 1], "hidden_activation": "relu", "output_activation": "sigmoid", "batch_norm": False},
    "init": {"scheme": "he", "scale": 1.0},
    "optimizer": {"name": "adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "schedule": {"name": "interval", "decay_rate": 1.0, "time_interval": 1},
    "regularization": {"l2": 0.1, "keep_prob": 0.9, "dropout_seed": 1,
                       "early_stopping": {"monitor": "dev_cost", "patience": 1, "min_delta": 0.0}},
    "training": {"epochs": 2, "batch_size": 16, "log_every": 1, "shuffle_seed": 10, "checkpoint_every": 1},
}

JUNK = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2, 2**31, 2**32, 2**63, 10**30, -(10**30), 0.0, -0.5, 0.5, 1.5, 1e308,
                     float("inf"), float("-inf"), float("nan"), "", "auto", "relu", "softmax", "..", "../..", "a/b",
                     [], {}, [1], ["auto"], {"name": "gd"}, [1, 2, 3]]),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 40), max_size=4),
)


def paths(tree, prefix=()):
    """Every key path into the tree (mappings and lists)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def node_at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@st.composite
def mutated(draw):
    tree = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        targets = list(paths(tree))
        kind = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = node_at(tree, path[:-1])
        if kind == "replace":
            parent[path[-1]] = copy.deepcopy(draw(JUNK))
        elif kind == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = copy.deepcopy(draw(JUNK))
    training = tree.get("training")
    if isinstance(training, dict) and isinstance(training.get("epochs"), int) and training["epochs"] > 2:
        training["epochs"] = 2  # a valid epoch count is not what this test explores; a huge one would just run long
    return yaml.safe_dump(tree, allow_unicode=True)


RANDOM_YAML = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["a: &a [*a]", "{", "- - -", "!!python/object/apply:os.system ['true']", "training: !!binary AAAA",
                     "data: [" * 200, "? [a, b]\n: 1", "model: {layers: [auto, 1, 1]}\ndata: {dataset: planar}\ndata: {}"]),
)


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        res = runner.invoke(app, ["train", str(path), "--runs-dir", str(Path(tmp) / "runs"), "-q"])
    assert res.exception is None or isinstance(res.exception, SystemExit), (text, repr(res.exception), res.output)
    assert res.exit_code in (0, 1, 2), (text, res.exit_code, res.output)
    event(f"exit code {res.exit_code}")  # pytest --hypothesis-show-statistics shows how many trained
    assert "Traceback" not in res.output, (text, res.output)
    if res.exit_code:
        lines = res.output.strip().splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), (text, res.output)


def test_the_unmutated_base_config_trains(tmp_path):
    """So that the property tests below explore mutations of a config that works."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    res = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 0, res.output


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_configs_train_or_fail_cleanly(text):
    check(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RANDOM_YAML)
def test_random_yaml_fails_cleanly(text):
    check(text)

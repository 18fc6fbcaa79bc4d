"""A tampered run folder gives one line naming the file and the field, exit 1 (2 for a config
error), never a traceback: for runs, compare, reproduce, --resume, predict and evaluate. The
property test mutates each file of a real run folder and each attribute of model.h5."""

import json
import shutil
import threading

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dltrain import runs
from dltrain.cli import app
from dltrain.commands.train import train
from dltrain.errors import Interrupted

runner = CliRunner()

TREE = {
    "name": "tamper", "seed": 3,
    "data": {"dataset": "moons", "n_samples": 80, "dev_fraction": 0.25, "normalize": "standardize"},
    "model": {"layers": ["auto", 4, 3, 1], "batch_norm": True},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "training": {"epochs": 6, "batch_size": 16, "log_every": 1, "checkpoint_every": 2},
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A completed run (model.h5) and an interrupted one (checkpoint.h5), and an inputs file for predict."""
    where = tmp_path_factory.mktemp("orig")
    config = where / "c.yaml"
    config.write_text(yaml.safe_dump(TREE))
    assert runner.invoke(app, ["train", str(config), "--run-dir", str(where / "done"), "-q"]).exit_code == 0
    event = threading.Event()
    with pytest.raises(Interrupted):
        train(TREE, run_dir=where / "cut", progress=lambda r, row: r.epoch == 3 and event.set(), interrupt=event)
    assert (where / "cut" / "checkpoint.h5").is_file()
    np.savez(where / "x.npz", x=np.zeros((3, 2)))
    return where


def copy_runs(originals, tmp_path):
    for name in ("done", "cut"):
        shutil.copytree(originals / name, tmp_path / "runs" / name)
    return tmp_path / "runs" / "done", tmp_path / "runs" / "cut"


def commands(done, cut, tmp_path, inputs):
    return [["runs", str(done.parent)], ["compare", str(done), str(cut), "--out", str(tmp_path / "cmp.png")],
            ["train", "--resume", str(cut), "-q"], ["predict", str(done), str(inputs)], ["evaluate", str(done)]]


def assert_clean(res, args):
    assert res.exit_code in (0, 1, 2), (args, res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.output, repr(res.exception))
    if res.exit_code:
        lines = res.output.strip().splitlines()
        # One line, or for a config that fails validation one line per problem (exit 2).
        assert (len(lines) == 1 or res.exit_code == 2) and all(line.startswith("error: ") for line in lines), (args, res.output)
        return lines[0]
    return None


def failure(args):
    res = runner.invoke(app, args)
    line = assert_clean(res, args)
    assert res.exit_code in (1, 2) and line, (args, res.output)
    return line


def set_attr(path, name, value):
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def replace_array(path, name, array, checksum=True):
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = array
        if checksum:
            sums = json.loads(f.attrs["checksums"])
            sums[name] = runs.array_checksum(np.asarray(array))
            f.attrs["checksums"] = json.dumps(sums)


@pytest.mark.parametrize("classes, field", [
    ('"5"', "classes"), ('["a"]', "classes"), (json.dumps(["c"] * 1_000_000), "classes"), (json.dumps(["x" * 10_000, "y"]), "classes"),
    ("[[[[[[" * 20000, "classes"),
])
def test_bad_classes_attribute(originals, tmp_path, classes, field):
    done, _ = copy_runs(originals, tmp_path)
    set_attr(done / "model.h5", field, classes)
    for args in (["predict", str(done), str(originals / "x.npz")], ["evaluate", str(done)]):
        line = failure(args)
        assert "model.h5" in line and field in line, line


@pytest.mark.parametrize("shape", ["[40000,40000,3]", "[-8,8,3]", '"abc"', "[8.5,8,3]", "[8,8,4]", "[1,1,2]"])
def test_bad_image_shape_attribute(originals, tmp_path, shape):
    done, _ = copy_runs(originals, tmp_path)
    set_attr(done / "model.h5", "image_shape", shape)
    line = failure(["evaluate", str(done)])
    assert "model.h5" in line and "image_shape" in line, line


@pytest.mark.parametrize("name, array", [
    ("params/b3", None), ("params/b3", np.zeros((2, 1))), ("params/gamma1", np.zeros(4)), ("normalization/mean", np.zeros((3, 1))),
    ("state/var2", np.zeros((3, 1), dtype=np.int64)), ("params/W1", np.full((4, 2), np.nan)),
])
def test_missing_or_misshapen_arrays(originals, tmp_path, name, array):
    done, _ = copy_runs(originals, tmp_path)
    if array is None:
        with h5py.File(done / "model.h5", "r+") as f:
            del f[name]
            sums = json.loads(f.attrs["checksums"])
            del sums[name]
            f.attrs["checksums"] = json.dumps(sums)
    else:
        replace_array(done / "model.h5", name, array)
    line = failure(["predict", str(done), str(originals / "x.npz")])
    assert "model.h5" in line and name in line, line


def test_a_config_attribute_saying_batch_norm_where_the_params_have_none(originals, tmp_path):
    done, _ = copy_runs(originals, tmp_path)
    with h5py.File(done / "model.h5", "r+") as f:
        tree = json.loads(f.attrs["config"])
    tree["model"]["batch_norm"] = False
    set_attr(done / "model.h5", "config", json.dumps(tree))
    line = failure(["evaluate", str(done)])
    assert "model.h5" in line and "params/" in line, line


def test_a_replaced_array_or_a_flipped_bit_fails_its_checksum(originals, tmp_path):
    done, _ = copy_runs(originals, tmp_path)
    replace_array(done / "model.h5", "params/b3", np.ones((1, 1)), checksum=False)
    assert "params/b3 does not match its recorded checksum" in failure(["predict", str(done), str(originals / "x.npz")])
    done2 = tmp_path / "flip"
    shutil.copytree(originals / "done", done2)
    with h5py.File(done2 / "model.h5", "r+") as f:
        w = f["params/W1"][()]
        w.view(np.uint64)[0, 0] ^= 1
        f["params/W1"][...] = w
    assert "params/W1 does not match its recorded checksum" in failure(["evaluate", str(done2)])


def test_a_model_without_checksums_still_loads(originals, tmp_path):
    """Files written before checksums were recorded load as before."""
    done, _ = copy_runs(originals, tmp_path)
    with h5py.File(done / "model.h5", "r+") as f:
        del f.attrs["checksums"]
    assert runner.invoke(app, ["predict", str(done), str(originals / "x.npz")]).exit_code == 0


def test_external_links_and_external_storage_are_refused(originals, tmp_path):
    done, _ = copy_runs(originals, tmp_path)
    zero = tmp_path / "zero.bin"
    zero.write_bytes(bytes(8 * 4 * 2))
    with h5py.File(done / "model.h5", "r+") as f:
        del f["params/W1"]
        f["params"].create_dataset("W1", shape=(4, 2), dtype="f8", external=[(str(zero), 0, h5py.h5f.UNLIMITED)])
    assert "external storage" in failure(["predict", str(done), str(originals / "x.npz")])
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["W1"] = np.zeros((4, 2))
    with h5py.File(done / "model.h5", "r+") as f:
        del f["params/W1"]
        f["params/W1"] = h5py.ExternalLink(str(other), "W1")
    assert "is a link (ExternalLink)" in failure(["evaluate", str(done)])
    # A data file whose array is stored in another file (/etc/passwd in the attack) is refused too.
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f.create_dataset("x", shape=(3, 2), dtype="f8", external=[(str(zero), 0, h5py.h5f.UNLIMITED)])
    assert "external storage" in failure(["predict", str(originals / "done"), str(data)])


@pytest.mark.parametrize("name, text, field", [
    ("config.yaml", "[1, 2]", "config.yaml"), ("metrics.json", '{"train": 5}', "train"),
    ("metrics.json", "[" * 100_000 + "]" * 100_000, "metrics.json"), ("summary.json", '{"status": 5}', "status"),
    ("history.csv", "epoch,cost\n0," + "1" * 200_000 + "\n", "history.csv"), ("summary.json", "[]", "summary.json"),
])
def test_bad_text_files(originals, tmp_path, name, text, field):
    done, cut = copy_runs(originals, tmp_path)
    for run in (done, cut):
        (run / name).write_text(text)
    lines = []
    for args in [*commands(done, cut, tmp_path, originals / "x.npz"), ["reproduce", str(done), "--runs-dir", str(tmp_path / "r"), "-q"]]:
        res = runner.invoke(app, args)
        line = assert_clean(res, args)
        if line:
            lines.append(line)
    assert lines and any(name in line and field in line for line in lines), lines


# ---- property test: every mutation of every file and attribute --------------------------------

FILES = ["config.yaml", "summary.json", "metrics.json", "history.csv", "model.h5", "checkpoint.h5"]
TEXT_JUNK = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(["", "null", "[]", "{}", "5", '"x"', '{"status": []}', '{"train": {"accuracy": "x"}}', "[" * 5000,
                     "epoch,cost\n0,x\n", "a: [b, c]", "model: 5", "!!python/object:os.system {}"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), junk=TEXT_JUNK, how=st.sampled_from(["replace", "truncate", "append", "flip"]), at=st.floats(0, 1))
def test_mutated_run_files_fail_cleanly(originals, tmp_path_factory, name, junk, how, at):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    done, cut = copy_runs(originals, tmp_path)
    for run in (done, cut):
        path = run / name
        if not path.exists():
            continue
        data = path.read_bytes()
        i = int(at * len(data))
        junk_bytes = junk if isinstance(junk, bytes) else junk.encode()
        data = {"replace": junk_bytes, "truncate": data[:i], "append": data + junk_bytes,
                "flip": data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] if i < len(data) else data}[how]
        path.write_bytes(data)
    for args in commands(done, cut, tmp_path, originals / "x.npz"):
        assert_clean(runner.invoke(app, args), args)


ATTRIBUTE_JUNK = st.one_of(
    st.text(st.characters(blacklist_characters="\x00"), max_size=40),
    st.sampled_from(["null", "[]", "{}", "5", "-1", '"x"', "[2, 2, 2]", '["a"]', '["a", "b", "c"]', "[[]]", '{"model": 5}',
                     "[" * 3000, "1e999", "NaN"]),
    st.lists(st.integers(-3, 10), max_size=4).map(json.dumps),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["config", "classes", "image_shape", "optimizer", "checksums", "new"]), junk=ATTRIBUTE_JUNK)
def test_mutated_model_attributes_fail_cleanly(originals, tmp_path_factory, name, junk):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    done, cut = copy_runs(originals, tmp_path)
    set_attr(done / "model.h5", name, junk)
    for args in (["predict", str(done), str(originals / "x.npz")], ["evaluate", str(done)]):
        assert_clean(runner.invoke(app, args), args)

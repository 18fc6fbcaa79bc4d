"""Hostile input: YAML bombs and tags, non-UTF-8 configs, corrupt, truncated and oversized h5 files."""

import json
import os
import signal
import threading
import time

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.commands.build import build_training, prepare_data
from dltrain.commands.checkpoint import restore_checkpoint
from dltrain.commands.train import train
from dltrain.commands.trained import load_trained, run_config
from dltrain.config import validate_config
from dltrain.data.limits import survives
from dltrain.errors import DltrainError, Interrupted
from dltrain.runs import read_model
from tests.conftest import REPO

runner = CliRunner()

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize(
    "content,message",
    [
        (LAUGHS.encode(), "expands to more than 100000 values"),
        (b"data: &d {dataset: planar, x: *d}\n", "unconstructable recursive node"),
        (b"model: " + b"[" * 5000 + b"]" * 5000, "nests deeper than 50 levels"),
        (b"name: caf\xe9\n", "is not UTF-8 text (byte 9)"),
        (b"name: !!python/object/apply:os.system ['touch pwned']\n", "is not valid YAML"),
        (b"# padding\n" * 200_000, "the limit is 1000000"),
        (b"name: a\nname: b\n", "line 2, column 1: duplicate key 'name'"),
    ],
)
def test_hostile_config_files_exit_2_with_one_line(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_bytes(content)
    res = runner.invoke(app, ["train", "c.yaml", "--runs-dir", "runs"])
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "value,message",
    [
        ("[" + ", ".join(f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefg", "bcdefgh")).replace("*a", "1") + "]",
         "--set model.layers expands to more than 100000 values"),
        ("[" * 20000 + "]" * 20000, "--set model.layers nests deeper than 50 levels"),
    ],
)
def test_set_values_have_the_config_files_limits(tmp_path, value, message):
    res = runner.invoke(app, ["config", "show", str(REPO / "configs" / "planar.yaml"), "--set", f"model.layers={value}"])
    assert res.exit_code == 2 and res.output.strip().startswith(f"error: {message}") and len(res.output.strip().splitlines()) == 1


def test_messages_quoting_user_input_print_it_verbatim(tmp_path):
    """Rich markup in a file name or value is text, not a style tag (nor a crash)."""
    for name in ("[/bold].yaml", "[bold]x.yaml"):
        res = runner.invoke(app, ["train", str(tmp_path / name)])
        assert res.exit_code == 2 and res.output.strip() == f"error: config file {tmp_path / name} not found"


def test_a_model_too_large_for_memory_is_refused_before_allocating(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 10**12, 1]}}))
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 1 and "model.layers: W1 has shape (1000000000000, 2)" in res.output
    assert not (tmp_path / "runs").exists()


TINY = {"name": "tiny", "data": {"dataset": "moons", "n_samples": 40, "dev_fraction": 0.25},
        "model": {"layers": ["auto", 3, 1]}, "optimizer": {"name": "adam"},
        "regularization": {"early_stopping": {"patience": 5}}, "training": {"epochs": 3, "batch_size": 8}}


@pytest.fixture(scope="module")
def finished_and_interrupted(tmp_path_factory):
    """A completed run (model.h5) and an interrupted one (checkpoint.h5)."""
    tmp = tmp_path_factory.mktemp("runs")
    cfg = validate_config(TINY)
    train(cfg, run_dir=tmp / "done")
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        train(cfg, run_dir=tmp / "cut", interrupt=stop)
    return tmp / "done", tmp / "cut"


TRUNCATIONS = 7  # damaged_copies yields these first


def damaged_copies(data: bytes, seed: int):
    """Truncations at the start, middle and end, then copies with 1..50 random bytes overwritten."""
    yield from (data[:n] for n in (0, 7, 8, 100, 512, len(data) // 2, len(data) - 1))
    rng = np.random.default_rng(seed)
    for _ in range(40):
        damaged = bytearray(data)
        where = rng.integers(0, len(data), rng.integers(1, 51))
        damaged_values = rng.integers(0, 256, where.size)
        for i, v in zip(where, damaged_values):
            damaged[i] = v
        yield bytes(damaged)


def test_damaged_model_files_fail_cleanly(finished_and_interrupted, tmp_path):
    done, _ = finished_and_interrupted
    original = (done / "model.h5").read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    refused = []
    for i, damaged in enumerate(d for seed in range(3) for d in damaged_copies(original, seed)):
        (run / "model.h5").write_bytes(damaged)
        try:
            load_trained(run)
        except DltrainError as e:
            assert "\n" not in str(e) and "model.h5" in str(e)
            refused.append(i)
    assert set(range(TRUNCATIONS)) <= set(refused)  # a flipped byte may land in padding; a cut never does


def test_damaged_checkpoints_fail_cleanly(finished_and_interrupted, tmp_path):
    _, cut = finished_and_interrupted
    original = (cut / "checkpoint.h5").read_bytes()
    cfg = run_config(cut)
    data = prepare_data(cfg)
    refused = []
    for i, damaged in enumerate(d for seed in range(3, 6) for d in damaged_copies(original, seed)):
        (tmp_path / "checkpoint.h5").write_bytes(damaged)
        try:
            restore_checkpoint(build_training(cfg, data), tmp_path / "checkpoint.h5", cfg)
        except DltrainError as e:
            assert "\n" not in str(e) and "checkpoint" in str(e)
            refused.append(i)
    assert set(range(TRUNCATIONS)) <= set(refused)


def copy_run(source, target):
    """A copy of a run folder to damage."""
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_resume_with_a_truncated_checkpoint_exits_1(finished_and_interrupted, tmp_path):
    run = copy_run(finished_and_interrupted[1], tmp_path / "cut")
    (run / "checkpoint.h5").write_bytes((run / "checkpoint.h5").read_bytes()[:3000])
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 1 and "checkpoint" in res.output and "damaged" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_resume_refuses_a_checkpoint_past_the_runs_epochs(finished_and_interrupted, tmp_path):
    run = copy_run(finished_and_interrupted[1], tmp_path / "cut")
    with h5py.File(run / "checkpoint.h5", "a") as f:
        loop = json.loads(f.attrs["loop"])
        f.attrs["loop"] = json.dumps({**loop, "epoch": 10**9})
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 1 and "it ends with epoch 1000000000, but the run trains epochs 0 to" in res.output


def test_huge_declared_shapes_and_wrong_types_are_refused_before_reading(tmp_path):
    with h5py.File(tmp_path / "huge.h5", "w") as f:
        # Chunked and never written: a few hundred bytes on disk that declare 8 TB of float64.
        f.create_dataset("params/W1", shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))
    with pytest.raises(DltrainError, match=r"params/W1 has shape \(1000000, 1000000\)"):
        read_model(tmp_path / "huge.h5")
    with h5py.File(tmp_path / "text.h5", "w") as f:
        f.create_dataset("params/W1", data=np.array([b"not", b"numbers"]))
    with pytest.raises(DltrainError, match="params/W1 should be a numeric array"):
        read_model(tmp_path / "text.h5")


def test_config_yaml_of_a_run_is_loaded_safely(finished_and_interrupted, tmp_path):
    run = copy_run(finished_and_interrupted[1], tmp_path / "cut")
    (run / "config.yaml").write_text(LAUGHS)
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 2 and "expands to more than" in res.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"


def data_files(folder):
    """Small valid files of every format `dataset: file` reads, with their config's data section."""
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 3)), np.arange(12) % 2
    np.savez(folder / "d.npz", x_train=x, y_train=y)
    np.savez_compressed(folder / "z.npz", x_train=x, y_train=y)
    with h5py.File(folder / "d.h5", "w") as f:
        f["x_train"], f["y_train"] = x, y
    import scipy.io

    scipy.io.savemat(folder / "d.mat", {"x_train": x, "y_train": y.reshape(-1, 1).astype(float)})
    scipy.io.savemat(folder / "z.mat", {"x_train": x, "y_train": y.reshape(-1, 1).astype(float)}, do_compression=True)
    (folder / "d.csv").write_text("a,b,c,label\n" + "".join(f"{r[0]},{r[1]},{r[2]},{c}\n" for r, c in zip(x, y)))
    with h5py.File(folder / "images.h5", "w") as f:  # the course's layout, as the cat and SIGNS files have it
        f["train_set_x"] = rng.integers(0, 256, (12, 1, 1, 3), dtype=np.uint8)
        f["train_set_y"], f["list_classes"] = y, np.array([b"no", b"yes"])
    data = {name: {"dataset": "file", "path": str(folder / name), **({"label_column": "label"} if name.endswith(".csv") else {})}
            for name in ("d.npz", "z.npz", "d.h5", "d.mat", "z.mat", "d.csv")}
    return {**data, "images.h5": {"dataset": "images", "path": str(folder / "images.h5")}}


def prepare(data):
    return prepare_data(validate_config({"data": data, "model": {"layers": ["auto", 2, 1]}}))


def test_valid_data_files_load(tmp_path):
    for data in data_files(tmp_path).values():
        assert prepare(data).X["train"].shape == (3, 12)


@pytest.mark.parametrize("seed,name", list(enumerate(["d.npz", "z.npz", "d.h5", "d.mat", "z.mat", "d.csv", "images.h5"])))
def test_damaged_data_files_fail_cleanly(tmp_path, seed, name):
    data = data_files(tmp_path)[name]
    original = (tmp_path / name).read_bytes()
    refused = []
    for i, damaged in enumerate(damaged_copies(original, seed)):
        (tmp_path / name).write_bytes(damaged)
        try:
            prepare(data)
        except DltrainError as e:  # a damaged label can also make a valid-looking dataset the model does not fit
            assert "\n" not in str(e), (i, str(e))
            refused.append(i)
    assert {0, 1} <= set(refused)  # empty and 7 bytes (a cut CSV of a few rows may still be a dataset)


def test_a_folder_or_random_bytes_as_data_file_say_what_they_are(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(DltrainError, match=r"dir.npz is a folder; "):
        prepare({"dataset": "file", "path": str(tmp_path / "dir.npz")})
    (tmp_path / "noise.npz").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DltrainError, match=r"noise.npz is not a readable NumPy .npz file \(ValueError: it is not a zip archive") as e:
        prepare({"dataset": "file", "path": str(tmp_path / "noise.npz")})
    assert "pickle" not in str(e.value)


def test_runs_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("")
    res = runner.invoke(app, ["train", str(REPO / "configs" / "planar.yaml"), "--runs-dir", str(tmp_path / "f")])
    assert res.exit_code == 1 and f"{tmp_path / 'f'} is a file" in res.output and "already exists" not in res.output


def test_data_files_declaring_huge_arrays_are_refused_before_reading(tmp_path):
    with h5py.File(tmp_path / "huge.h5", "w") as f:
        f.create_dataset("x_train", shape=(10**7, 10**6), dtype="f8", chunks=(1, 1024))
        f["y_train"] = np.zeros(10**7 // 10**6)
    # An .npz member whose header declares 8 TB (the data are never written: only the header matters).
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**6, 10**6)
    import io
    import zipfile

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("x_train.npy", member.getvalue() + b"\0" * 64)
        z.writestr("y_train.npy", member.getvalue())
    for name in ("huge.h5", "huge.npz"):
        with pytest.raises(DltrainError, match=rf"{name}: x_train has shape \(\d+, 1000000\) \(\S+ GiB\)"):
            prepare({"dataset": "file", "path": str(tmp_path / name)})


def test_data_files_with_wrong_dtypes_or_no_examples_fail_cleanly(tmp_path):
    np.savez(tmp_path / "text.npz", x_train=np.array([["a", "b"], ["c", "d"]]), y_train=np.array([0, 1]))
    with pytest.raises(DltrainError, match="must hold numbers, got dtype <U1"):
        prepare({"dataset": "file", "path": str(tmp_path / "text.npz")})
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(DltrainError, match="Object arrays cannot be loaded when allow_pickle=False"):
        prepare({"dataset": "file", "path": str(tmp_path / "obj.npz")})
    np.savez(tmp_path / "empty.npz", x_train=np.zeros((0, 3)), y_train=np.zeros(0))
    with pytest.raises(DltrainError, match=r"x_train has shape \(0, 3\): no examples"):
        prepare({"dataset": "file", "path": str(tmp_path / "empty.npz")})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="trial parses need fork")
def test_a_reader_that_crashes_or_hangs_is_reported_not_fatal(tmp_path):
    path = tmp_path / "d.mat"
    path.write_bytes(b"")
    with pytest.raises(DltrainError, match=r"d.mat crashes the reader \(SIGSEGV\): the file is damaged"):
        survives(lambda: os.kill(os.getpid(), signal.SIGSEGV), path)
    with pytest.raises(DltrainError, match=r"d.mat hangs the reader \(no result after 1 s\)"):
        survives(lambda: time.sleep(30), path, seconds=1)
    survives(lambda: 1 / 0, path)  # an exception is the caller's to report when it parses for real


@pytest.mark.skipif(not hasattr(os, "fork"), reason="trial parses need fork")
def test_no_trial_parse_outside_the_main_thread(tmp_path):
    """A child forked from a worker thread could inherit a lock a sibling thread holds and hang."""
    path, marker = tmp_path / "d.mat", tmp_path / "parsed"
    path.write_bytes(b"")
    worker = threading.Thread(target=survives, args=(marker.touch, path))
    worker.start()
    worker.join()
    assert not marker.exists()
    survives(marker.touch, path)  # the main thread does run the trial, in a child
    assert marker.exists()

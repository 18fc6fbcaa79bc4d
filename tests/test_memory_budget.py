"""The memory budget holds for every command that reads arrays: decompression bombs given to
`predict --key` and `evaluate --data` (.npz, gzip .h5, .mat) and a model.h5 whose declared shapes
exceed it are refused with one line, before anything is allocated (no MemoryError traceback)."""

import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app

runner = CliRunner()
ROWS = 400_000  # (ROWS, 2) float64 = 6.4 MB, over the 4 MB budget these tests set; a few KB compressed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = {"data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]}, "training": {"epochs": 2}}
    return dltrain.train(cfg, run_dir=tmp_path_factory.mktemp("r") / "run", progress=False).path


def bomb(folder, suffix):
    """x (ROWS, 2) and y (ROWS, 1) of zeros, compressed: a few KB that expand to megabytes."""
    path = folder / f"bomb{suffix}"
    if suffix == ".npz":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, cols in (("x", 2), ("y", 1)):
                with z.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array_header_2_0(f, {"descr": "<f8", "fortran_order": False, "shape": (ROWS, cols)})
                    f.write(bytes(ROWS * cols * 8))
    elif suffix == ".h5":
        with h5py.File(path, "w") as f:  # gzip chunks of the fill value: declared, never stored
            f.create_dataset("x", shape=(ROWS, 2), dtype="f8", chunks=(4096, 2), compression="gzip")
            f.create_dataset("y", shape=(ROWS, 1), dtype="f8", chunks=(4096, 1), compression="gzip")
    else:
        scipy.io.savemat(path, {"x": np.zeros((ROWS, 2)), "y": np.zeros((ROWS, 1))}, do_compression=True)
    assert path.stat().st_size < 100_000
    return path


def one_line(res, code):
    assert res.exit_code == code and not isinstance(res.exception, MemoryError), res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    return res.output


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".mat"])
def test_decompression_bombs_are_refused_by_predict_and_evaluate(run, tmp_path, monkeypatch, suffix):
    path = bomb(tmp_path, suffix)
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "4M")
    line = one_line(runner.invoke(app, ["predict", str(run), str(path), "--key", "x"]), 1)
    assert f"{path}: x (shape ({ROWS}, 2)) as float64 would need about" in line and "DLTRAIN_MEMORY_BUDGET" in line
    data = f"{{dataset: file, path: {path}, x_train: x, y_train: y, x_test: null, y_test: null}}"
    line = one_line(runner.invoke(app, ["evaluate", str(run), "--data", data]), 1)
    assert "more than the memory budget" in line and f"{path}: x" in line


def test_a_model_file_declaring_more_than_the_budget_is_refused(run, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with h5py.File(copy / "model.h5", "r+") as f:  # W1 declared (2^16, 2^10): 512 MiB of fill value, 2 KB on disk
        del f["params/W1"]
        f["params"].create_dataset("W1", shape=(2**16, 2**10), dtype="f8", chunks=(2**12, 2**8), compression="gzip")
    monkeypatch.setenv("DLTRAIN_MEMORY_BUDGET", "64M")
    line = one_line(runner.invoke(app, ["predict", str(copy), str(bomb(tmp_path, ".h5")), "--key", "x"]), 1)
    assert f"model file {copy / 'model.h5'}" in line and "more than the memory budget" in line
    line = one_line(runner.invoke(app, ["evaluate", str(copy)]), 1)
    assert "more than the memory budget" in line

"""A full disk fails a run cleanly: one line naming the file and "no space left", the run marked
'failed', no temporary file left behind, and the run resumes once space is freed."""

import builtins
import errno
import json
import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from dltrain import runs
from dltrain.cli import app
from tests.conftest import REPO, FullDisk

runner = CliRunner()

# Batch norm, dropout and Adam, logged every epoch: the case that crashed libhdf5 (SIGSEGV after
# "Can't decrement id ref count") when its close failed on a full disk.
TREE = {
    "name": "full", "seed": 3,
    "data": {"dataset": "moons", "n_samples": 200},
    "model": {"layers": ["auto", 5, 2, 1], "batch_norm": True},
    "optimizer": {"name": "adam", "learning_rate": 0.0007},
    "regularization": {"keep_prob": 0.8},
}


def write_config(path, **training):
    path.write_text(yaml.safe_dump({**TREE, "training": {"batch_size": 64, "log_every": 1, **training}}))
    return path


def assert_failed_cleanly(res, run_dir, file_name):
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {run_dir}/"), res.output
    assert "no space left" in lines[0] and file_name in lines[0], res.output
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs at tmp_path/fs (root only), unmounted afterwards."""
    where = tmp_path / "fs"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_fails_the_run_cleanly_and_it_resumes_after(tmp_path, small_tmpfs):
    run_dir = small_tmpfs / "run"
    config = write_config(tmp_path / "c.yaml", epochs=3000, checkpoint_every=20)
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "-q"])
    assert_failed_cleanly(res, run_dir, "")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    res = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("victim", ["checkpoint.h5", "history.csv", "model.h5", "cost.png", "metrics.json"])
def test_an_injected_enospc_fails_the_run_cleanly(tmp_path, monkeypatch, victim):
    """ENOSPC from writing any one run file, whatever stage of the run writes it."""
    real_open = builtins.open

    def open_(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        # Files are written to a temporary name and renamed, except history.csv, which is appended to.
        hit = "w" in mode and f".{victim}.tmp-" in str(path) or "a" in mode and runs.Path(path).name == victim
        return FullDisk(f) if hit else f

    monkeypatch.setattr(runs, "open", open_, raising=False)
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", epochs=6, checkpoint_every=2)
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "-q"])
    assert_failed_cleanly(res, run_dir, victim)
    monkeypatch.undo()
    # The checkpoint of epoch 1 is there to resume from (history.csv is written first, so it fails first).
    if victim not in ("checkpoint.h5", "history.csv"):
        res = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
        assert res.exit_code == 0, res.output
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_full_disk_message_says_what_to_do():
    e = runs.write_error(runs.Path("r/x"), OSError(errno.ENOSPC, "No space left on device"))
    assert str(e) == "cannot write r/x: no space left on the device; free some space and resume the run"


def test_a_report_that_cannot_be_written_is_one_warning_and_the_run_completes(tmp_path):
    # The CLI showed warnings while still recording them, so a run whose report.html failed (a disk
    # full after model.h5) appended to the list it was showing, forever: 8 GB and a hang. In a
    # subprocess, with a timeout, because that failure never returns.
    config = write_config(tmp_path / "c.yaml", epochs=3)
    # Patched before the CLI starts, so its figures process (a fork) fails the same way and the run writes the report itself.
    code = ("import sys\nimport dltrain.commands.report as R\n"
            "def broken(*args, **kwargs):\n    raise OSError(28, 'No space left on device')\n"
            "R.write_run_report = broken\nfrom dltrain.cli import main\n"
            f"sys.argv = ['dltrain', 'train', {str(config)!r}, '--run-dir', {str(tmp_path / 'run')!r}, '-q']\nmain()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("report.html not written") == 1, res.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"

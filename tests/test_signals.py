"""Real `python -m dltrain train` processes stopped by SIGINT and SIGKILL, then resumed."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
import yaml

from tests.conftest import REPO, history_without_seconds

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

# Adam, dropout and mini-batches; a checkpoint after every epoch, so that a SIGKILL may well cut one
# short. About 10 ms per epoch, so a signal sent as training starts lands mid-run.
TREE = {
    "name": "sig", "seed": 5,
    "data": {"dataset": "moons", "n_samples": 240},
    "model": {"layers": ["auto", 16, 8, 1]},
    "optimizer": {"name": "adam", "learning_rate": 0.005},
    "regularization": {"keep_prob": 0.85},
    "training": {"epochs": 150, "batch_size": 16, "log_every": 1, "checkpoint_every": 1},
}


def dltrain(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "dltrain", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def start_and_wait_for(tmp_path, run_dir, ready: str, tree=TREE):
    """Start training into run_dir; return the process once run_dir/ready exists."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tree))
    proc = dltrain("train", str(config), "--run-dir", str(run_dir), "-q")
    deadline = time.monotonic() + 300
    while not (run_dir / ready).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


TAKEN = "is being trained by another process: wait for it to finish, or stop it (Ctrl-C) first"


def weights(path):
    with h5py.File(path) as f:
        return {k: f["params"][k][()].tobytes() for k in f["params"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    proc = start_and_wait_for(tmp, tmp / "run", "summary.json")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return tmp / "run"


def resume(run_dir):
    proc = dltrain("train", "--resume", str(run_dir), "-q")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == str(run_dir)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_exits_130_and_resumes_bit_identical(tmp_path, uninterrupted, sig):
    run = tmp_path / "run"
    proc = start_and_wait_for(tmp_path, run, "summary.json")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"resume with: dltrain train --resume {run}" in err
    assert out.strip().splitlines()[-1] == str(run)  # stdout's last line is the run folder, as after a finished run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["epochs_run"] < TREE["training"]["epochs"]
    with h5py.File(run / "checkpoint.h5") as f:
        assert json.loads(f.attrs["loop"])["epoch"] == summary["epochs_run"] - 1
    assert len(history_without_seconds(run)) == summary["epochs_run"] and (run / "metrics.json").exists()

    resume(run)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert weights(run / "model.h5") == weights(uninterrupted / "model.h5")
    assert history_without_seconds(run) == history_without_seconds(uninterrupted)


def parse(path):
    """Read a run-folder file completely with the reader its type calls for."""
    if path.suffix == ".csv":
        with open(path) as f:
            for row in csv.DictReader(f):
                assert None not in row and None not in row.values(), row  # every row has every column
                [float(v) for v in row.values()]
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".yaml":
        yaml.safe_load(path.read_text())
    elif path.suffix == ".h5":
        with h5py.File(path) as f:
            f.visititems(lambda name, node: node[()] if isinstance(node, h5py.Dataset) else None)
            dict(f.attrs)
    elif path.name == ".lock":
        assert path.stat().st_size == 0  # only ever locked, never written
    else:
        raise AssertionError(f"unexpected file {path.name}")


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_sigkill_leaves_only_complete_files_and_resumes_bit_identical(tmp_path, uninterrupted, delay):
    run = tmp_path / "run"
    proc = start_and_wait_for(tmp_path, run, "checkpoint.h5")
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    for path in run.iterdir():
        # A write cut off mid-way is a hidden temporary file next to its intact target; resume deletes it.
        if path.name.startswith(".") and ".tmp-" in path.name:
            assert (run / path.name[1:].split(".tmp-")[0]).exists()
            continue
        parse(path)

    resume(run)  # the killed process's lock went with it
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [".lock"]
    assert weights(run / "model.h5") == weights(uninterrupted / "model.h5")
    assert history_without_seconds(run) == history_without_seconds(uninterrupted)


def test_a_resume_is_refused_while_another_process_holds_the_lock(tmp_path):
    """The moment a pid check misses: another resume has taken the folder but not yet marked it running."""
    run = tmp_path / "run"
    proc = start_and_wait_for(tmp_path, run, "checkpoint.h5")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=600)
    before = (run / "summary.json").read_text()
    assert json.loads(before)["status"] == "interrupted"
    hold = "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run / ".lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        refused = dltrain("train", "--resume", str(run), "-q")
        out, err = refused.communicate(timeout=600)
        assert refused.returncode == 1 and out == ""
        assert err == f"error: {run} {TAKEN}\n"
        assert (run / "summary.json").read_text() == before
    finally:
        holder.communicate(input="", timeout=60)  # closing its stdin ends the holder, and the lock with it
    resume(run)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_of_two_resumes_started_together_one_trains_and_the_other_is_refused(tmp_path):
    run = tmp_path / "run"
    endless = {**TREE, "training": {**TREE["training"], "epochs": 10**6}}
    proc = start_and_wait_for(tmp_path, run, "checkpoint.h5", endless)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=600)
    assert proc.returncode == 130
    resumes = [dltrain("train", "--resume", str(run), "-q") for _ in range(2)]
    try:
        deadline = time.monotonic() + 300
        while all(p.poll() is None for p in resumes):
            assert time.monotonic() < deadline, "neither resume was refused"
            time.sleep(0.05)
        [refused] = [p for p in resumes if p.poll() is not None]
        [trains] = [p for p in resumes if p is not refused]
        out, err = refused.communicate()
        assert refused.returncode == 1 and out == ""
        assert err == f"error: {run} {TAKEN}\n"
        while json.loads((run / "summary.json").read_text()).get("pid") != trains.pid:
            assert trains.poll() is None, trains.communicate()
            time.sleep(0.05)
        trains.send_signal(signal.SIGINT)
        trains.communicate(timeout=600)
        assert trains.returncode == 130
    finally:
        for p in resumes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and len(summary["resumed"]) == 1


def test_signal_handlers_set_the_event_then_abort_and_are_restored():
    from dltrain.progress import stop_on_signals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

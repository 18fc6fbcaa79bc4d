"""Checkpoints and resume, interrupts, divergence, determinism and `dltrain reproduce`.

Runs are compared the way docs/robustness.md promises: every array of model.h5 byte for byte, history.csv on
every column except `seconds` (wall time), metrics.json exactly.
"""

import copy
import csv
import json
import os
import platform
import threading

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain import runs
from dltrain.cli import app
from dltrain.commands.checkpoint import rng_state, set_rng_state
from dltrain.commands.reproduce import first_difference, reproduce
from dltrain.commands.train import resume, still_running, train
from dltrain.commands.trained import run_config
from dltrain.config import validate_config
from dltrain.errors import DltrainError, Interrupted
from dltrain.runs import read_curve, read_history
from tests.conftest import history_without_seconds

runner = CliRunner()

# Mini-batches, dropout, Adam, batch norm, a decay schedule and early stopping on a dev set: every
# piece of state a resumed run must restore.
TREE = {
    "name": "rel", "seed": 3,
    "data": {"dataset": "moons", "n_samples": 200, "dev_fraction": 0.25},
    "model": {"layers": ["auto", 8, 6, 1], "batch_norm": True},
    "optimizer": {"name": "adam", "learning_rate": 0.02},
    "schedule": {"name": "inverse_time", "decay_rate": 0.05},
    "regularization": {"keep_prob": 0.8, "l2": 0.01, "early_stopping": {"patience": 4, "min_delta": 0.01}},
    "training": {"epochs": 40, "batch_size": 32, "log_every": 3},
}


def config(rng="modern", early_stopping=True, **training):
    tree = copy.deepcopy(TREE)
    tree["rng"] = rng
    tree["training"].update(training)
    if not early_stopping:
        del tree["regularization"]["early_stopping"]
    return validate_config(tree)


def arrays(path):
    """Every dataset of an h5 file as raw bytes, read independently of dltrain."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, node: out.__setitem__(name, node[()].tobytes()) if isinstance(node, h5py.Dataset) else None)
    return out


def assert_same_results(a, b):
    assert arrays(a / "model.h5") == arrays(b / "model.h5")
    assert history_without_seconds(a) == history_without_seconds(b)
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
    assert (a / "curve.csv").read_bytes() == (b / "curve.csv").read_bytes()  # every epoch, exact floats


def stop_at(epoch):
    """A progress callback and the event it sets after `epoch`, as the CLI's signal handler would."""
    event = threading.Event()

    def progress(r, row):
        if r.epoch == epoch:
            event.set()

    return progress, event


def interrupted_run(run_dir, cfg=None, epoch=1):
    """Train cfg (by default 6 epochs, no early stopping) into run_dir, interrupted after `epoch` as
    Ctrl-C would; -> run_dir."""
    progress, event = stop_at(epoch)
    with pytest.raises(Interrupted):
        train(cfg or config(early_stopping=False, epochs=6), run_dir=run_dir, progress=progress, interrupt=event)
    return run_dir


@pytest.mark.parametrize("rng", ["modern", "course"])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, rng):
    cfg = config(rng)
    whole = train(cfg, run_dir=tmp_path / "whole")
    # Interrupted two epochs after the dev cost's best, so that early stopping's best weights and
    # patience counter (4) must come back from the checkpoint for the run to stop where it did.
    cut = whole.summary["best_epoch"] + 2
    assert whole.summary["stopped_epoch"] == cut + 2
    progress, event = stop_at(cut)
    with pytest.raises(Interrupted, match="resume with: dltrain train --resume"):
        train(cfg, run_dir=tmp_path / "cut", progress=progress, interrupt=event)
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert (summary["status"], summary["epochs_run"]) == ("interrupted", cut + 1)
    assert set(json.loads((tmp_path / "cut" / "metrics.json").read_text())) == {"train", "dev", "diagnosis"}
    assert not (tmp_path / "cut" / "model.h5").exists()

    resumed = resume(tmp_path / "cut")
    assert resumed.summary["stopped_epoch"] == whole.summary["stopped_epoch"]
    assert resumed.summary["resumed"][0]["epoch"] == cut + 1 and resumed.summary["status"] == "completed"
    assert_same_results(tmp_path / "whole", tmp_path / "cut")
    assert not (tmp_path / "cut" / "checkpoint.h5").exists()


def test_checkpoint_every_writes_the_loop_position(tmp_path):
    seen = []

    def progress(r, row):
        path = tmp_path / "run" / "checkpoint.h5"
        seen.append(json.loads(h5py.File(path).attrs["loop"])["epoch"] if path.exists() else None)

    train(config(early_stopping=False, epochs=8, checkpoint_every=3), run_dir=tmp_path / "run", progress=progress)
    # progress sees epoch e before that epoch's checkpoint is written: checkpoints after epochs 2 and 5.
    assert seen == [None, None, None, 2, 2, 2, 5, 5]
    assert not (tmp_path / "run" / "checkpoint.h5").exists()  # a completed run keeps only model.h5


def test_checkpoint_holds_every_piece_of_state(tmp_path):
    interrupted_run(tmp_path / "run", config(), 4)
    with h5py.File(tmp_path / "run" / "checkpoint.h5") as f:
        loop = json.loads(f.attrs["loop"])
        assert {"W1", "gamma1", "beta1", "W3", "b3"} <= set(f["params"]) and {"mean1", "var2"} <= set(f["state"])
        assert {"t", "v|W1", "s|W1"} <= set(f["optimizer"]) and int(f["optimizer/t"][()]) == 5 * 5
        assert {"best", "wait", "best_epoch", "params|W1"} <= set(f["early_stopping"])
    assert loop["epoch"] == 4 and loop["rng"]["bit_generator"] == "PCG64"
    # The history is on disk, the checkpoint records how much of it: the rows of epochs 0 and 3.
    assert "history" not in loop and loop["history_bytes"] == (tmp_path / "run" / "history.csv").stat().st_size
    assert [row["epoch"] for row in read_history(tmp_path / "run" / "history.csv")] == [0, 3]


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    cfg = config(epochs=3, early_stopping=False)
    train(cfg, run_dir=tmp_path / "done")
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "done")])
    assert res.exit_code == 1 and "is completed: there is nothing to resume" in res.output
    res = runner.invoke(app, ["train", "c.yaml", "--resume", str(tmp_path / "done")])
    assert res.exit_code == 2 and "either a CONFIG file or --resume" in res.output
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "done"), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--runs-dir do not apply" in res.output
    res = runner.invoke(app, ["train", "c.yaml", "--run-dir", str(tmp_path / "x"), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--runs-dir does not apply" in res.output
    (tmp_path / "plain").mkdir()
    for args in (["train", "--resume"], ["reproduce"]):
        res = runner.invoke(app, [*args, str(tmp_path / "plain")])
        assert res.exit_code == 1 and "is not a dltrain run folder (it has no summary.json)" in res.output

    # Killed before its first checkpoint: summary says running, its process is gone.
    summary_path = tmp_path / "done" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "status": "running", "pid": 2**22 + 1}))
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "done")])
    assert res.exit_code == 1 and "before its first checkpoint" in res.output


def test_resume_refuses_changed_data(tmp_path, monkeypatch):
    interrupted_run(tmp_path / "run", config(), 1)
    from dltrain.data import core

    real = core.LOADERS["moons"]
    monkeypatch.setitem(core.LOADERS, "moons", lambda d: (real(d)[0] + 1e-9, *real(d)[1:]))
    with pytest.raises(DltrainError, match="not those .* was trained on"):
        resume(tmp_path / "run")


def test_learning_rate_1e6_diverges_with_history_kept(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "div", "data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]},
                                    "optimizer": {"learning_rate": 1e6}, "training": {"epochs": 50, "log_every": 1,
                                                                                      "checkpoint_every": 1}}))
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "training diverged at epoch 1" in res.output and "lower optimizer.learning_rate" in res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and "diverged at epoch 1" in summary["stop_reason"]
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]  # the epoch it diverged in included
    # The last checkpoint is from before the cost blew up, and it is kept.
    with h5py.File(tmp_path / "run" / "checkpoint.h5") as f:
        assert json.loads(f.attrs["loop"])["epoch"] == 0
        assert all(np.isfinite(f["params"][k][()]).all() for k in f["params"])


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_mini_batch_runs_diverge_too(tmp_path, optimizer):
    """With mini-batches, epoch 0's cost already averages blown-up batches: divergence is measured
    against the untrained model, not against epoch 0."""
    cfg = validate_config({"data": {"dataset": "moons"}, "model": {"layers": ["auto", 5, 2, 1]},
                           "optimizer": {"name": optimizer, "learning_rate": 1e6}, "training": {"epochs": 20, "batch_size": 64}})
    with pytest.raises(DltrainError, match=r"diverged at epoch 0: the cost grew to .* times the untrained model's 0\.69"):
        train(cfg, run_dir=tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_non_finite_weights_diverge_naming_the_array(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "moons"}, "model": {"layers": ["auto", 8, 8, 1]},
                                    "init": {"scale": 1e300}, "training": {"epochs": 5, "divergence_factor": None}}))
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 1 and "diverged at epoch 0" in res.output and "non-finite" in res.output
    assert len(res.output.strip().splitlines()) == 1  # no numpy overflow warnings
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_same_config_and_seed_give_identical_runs_and_reproduce_says_so(tmp_path):
    cfg = config("modern", epochs=12, early_stopping=False)
    a = train(cfg, run_dir=tmp_path / "runs" / "a")
    b = train(cfg, run_dir=tmp_path / "runs" / "b")
    assert_same_results(a.path, b.path)
    assert a.summary["data_fingerprint"].startswith("sha256:") and a.summary["data_fingerprint"] == b.summary["data_fingerprint"]

    res = runner.invoke(app, ["reproduce", str(a.path), "-q"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("identical: ")
    new = tmp_path / "runs" / res.output.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert new.parent == a.path.parent and new not in (a.path, b.path)
    assert_same_results(a.path, new)

    # A different seed is a different run, and the first difference is named.
    other = train(validate_config({**cfg.model_dump(), "seed": 4}), run_dir=tmp_path / "runs" / "c")
    assert first_difference(a.path, other.path).startswith("history.csv: epoch 0, cost: ")


def test_reproduce_names_the_first_difference(tmp_path):
    run = train(config(epochs=4, early_stopping=False), run_dir=tmp_path / "a").path
    with h5py.File(run / "model.h5", "r+") as f:  # another machine's model: different weights, recorded as such
        f["params/W2"][0, 0] += 1e-12
        checksums = json.loads(f.attrs["checksums"])
        checksums["params/W2"] = runs.array_checksum(f["params/W2"][()])
        f.attrs["checksums"] = json.dumps(checksums)
    res = runner.invoke(app, ["reproduce", str(run), "--runs-dir", str(tmp_path / "again"), "-q"])
    assert res.exit_code == 1
    assert "different: model.h5: params/W2: largest difference 1e-12" in res.output
    rows = (run / "history.csv").read_text().splitlines()
    first = rows[2].split(",")
    first[3] = repr(float(first[3]) * 2)
    (run / "history.csv").write_text("\n".join([*rows[:2], ",".join(first), *rows[3:]]) + "\n")
    assert first_difference(run, next((tmp_path / "again").iterdir())).startswith(
        f"history.csv: epoch 3, cost: {float(first[3])!r} vs ")
    # A column the original lacks is a difference too.
    (run / "history.csv").write_text("\n".join(",".join(r.split(",")[:3] + r.split(",")[4:]) for r in rows) + "\n")
    assert first_difference(run, next((tmp_path / "again").iterdir())).startswith("history.csv: epoch 0, cost: None vs ")
    # An epoch history.csv does not log (log_every 3) differs in curve.csv only.
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    curve = (run / "curve.csv").read_text().splitlines()
    curve[2] = curve[2].replace(",", ",9", 1)
    (run / "curve.csv").write_text("\n".join(curve) + "\n")
    assert first_difference(run, next((tmp_path / "again").iterdir())).startswith(f"curve.csv: epoch 1: {curve[2]} vs 1,")


def test_reproduce_needs_the_original_model_before_training(tmp_path):
    run = train(config(epochs=2, early_stopping=False), run_dir=tmp_path / "runs" / "a").path
    (run / "model.h5").unlink()
    res = runner.invoke(app, ["reproduce", str(run)])
    assert res.exit_code == 1 and "model.h5 not found" in res.output
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]


def test_config_yaml_records_absolute_data_paths(tmp_path, monkeypatch):
    """So that resume, reproduce and evaluate find the data from another working folder."""
    x = np.random.default_rng(0).standard_normal((40, 2))
    np.savez(tmp_path / "d.npz", x_train=x, y_train=(x[:, 0] > 0).astype(int))
    monkeypatch.chdir(tmp_path)
    cfg = validate_config({"data": {"dataset": "file", "path": "d.npz"}, "model": {"layers": ["auto", 1]},
                           "training": {"epochs": 2}})
    run = train(cfg, run_dir=tmp_path / "run").path
    assert run_config(run).data.path == str(tmp_path / "d.npz")
    monkeypatch.chdir(tmp_path / "run")
    assert reproduce(run, runs_dir=tmp_path / "again").difference is None


def test_a_second_ctrl_c_aborts_mid_epoch_and_resumes_from_the_last_checkpoint(tmp_path):
    def progress(r, row):
        if r.epoch == 4:
            raise KeyboardInterrupt  # what the CLI's handler raises on the second signal

    with pytest.raises(Interrupted, match=r"aborted during epoch 5 of 12; it resumes from its last checkpoint, after epoch 3"):
        train(config(epochs=12, early_stopping=False, checkpoint_every=2), run_dir=tmp_path / "cut", progress=progress)
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert (summary["status"], summary["stop_reason"]) == ("interrupted", "aborted during epoch 5")
    resume(tmp_path / "cut")
    whole = train(config(epochs=12, early_stopping=False), run_dir=tmp_path / "whole")
    assert_same_results(tmp_path / "cut", whole.path)


def test_resume_cuts_the_curve_back_to_its_checkpoint(tmp_path):
    # A killed process (kill -9: no handler runs) leaves curve rows after the checkpoint, the last one
    # half-written; the resumed run's curve.csv is the uninterrupted run's, byte for byte.
    interrupted_run(tmp_path / "cut", config(epochs=12, early_stopping=False), 5)
    curve = tmp_path / "cut" / "curve.csv"
    with h5py.File(tmp_path / "cut" / "checkpoint.h5") as f:
        assert json.loads(f.attrs["loop"])["curve_bytes"] == curve.stat().st_size
    with open(curve, "a") as f:
        f.write("6,0.01,0.5,0.5,,\n7,0.0")
    assert list(read_curve(curve)["epoch"]) == list(range(7))  # the partial last line is skipped
    resume(tmp_path / "cut")
    whole = train(config(epochs=12, early_stopping=False), run_dir=tmp_path / "whole")
    assert_same_results(tmp_path / "cut", whole.path)
    assert list(read_curve(curve)["epoch"]) == list(range(12))


def test_reproduce_checks_the_data_fingerprint(tmp_path, monkeypatch):
    run = train(config(epochs=2, early_stopping=False), run_dir=tmp_path / "a").path
    from dltrain.data import core

    real = core.LOADERS["moons"]
    monkeypatch.setitem(core.LOADERS, "moons", lambda d: (real(d)[0][:, ::-1].copy(), *real(d)[1:]))
    res = runner.invoke(app, ["reproduce", str(run)])
    assert res.exit_code == 1 and "the data are not those the run was trained on" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no folder for a run that cannot be compared
    interrupted_run(tmp_path / "cut", config(), 0)
    res = runner.invoke(app, ["reproduce", str(tmp_path / "cut")])
    assert res.exit_code == 1 and "is interrupted; only a completed run can be reproduced" in res.output


@pytest.mark.parametrize("make", [lambda: np.random.RandomState(7), lambda: np.random.default_rng(7)])
def test_rng_state_round_trips_through_json(make):
    rng = make()
    rng.standard_normal(3)  # RandomState then holds a cached second Gaussian
    state = json.loads(json.dumps(rng_state(rng)))
    expected = rng.standard_normal(5)
    other = make()
    set_rng_state(other, state)
    assert other.standard_normal(5).tobytes() == expected.tobytes()


def test_a_checkpoint_never_holds_non_finite_weights(tmp_path):
    """The epoch's cost is taken before its last update, which can overflow the weights: the
    checkpoint after that epoch is refused, and the run diverges naming the array."""
    cfg = validate_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1]}, "init": {"scale": 100.0},
                           "optimizer": {"learning_rate": 1e308}, "training": {"epochs": 5, "checkpoint_every": 1}})
    with pytest.raises(DltrainError, match=r"diverged at epoch 0: parameter \w+ has non-finite values"):
        train(cfg, run_dir=tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "run" / "checkpoint.h5").exists()


def test_resume_refuses_a_config_edited_after_the_checkpoint(tmp_path):
    interrupted_run(tmp_path / "cut", config(early_stopping=False), 2)
    path = tmp_path / "cut" / "config.yaml"
    tree = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**tree, "optimizer": {"name": "gd", "learning_rate": 0.1}}))
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "cut")])
    assert res.exit_code == 1 and "config.yaml was changed after the checkpoint was written" in res.output


def test_a_run_file_that_cannot_be_written_fails_the_run_cleanly(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "model_image", full)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "moons"}, "model": {"layers": ["auto", 3, 1]},
                                    "training": {"epochs": 4, "checkpoint_every": 2}}))
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert res.output.strip() == f"error: cannot write {tmp_path / 'run' / 'checkpoint.h5'}: no space left on the device; free some space and resume the run"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["status"], summary["epochs_run"]) == ("failed", 2)


@pytest.mark.skipif(runs.fcntl is None, reason="no fcntl.flock on this platform")
def test_a_locked_run_is_not_resumed(tmp_path):
    run = interrupted_run(tmp_path / "run")
    before = (run / "summary.json").read_text()
    with runs.training_lock(run):
        res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 1 and res.output == f"error: {run} is being trained by another process: wait for it to finish, or stop it (Ctrl-C) first\n"
    assert (run / "summary.json").read_text() == before
    assert resume(run).summary["status"] == "completed"


@pytest.mark.skipif(runs.fcntl is None, reason="no fcntl.flock on this platform")
def test_a_running_summary_whose_pid_now_names_another_process_resumes(tmp_path, monkeypatch):
    """A run killed before a reboot: its pid now belongs to an unrelated live process."""
    run = interrupted_run(tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    summary.update(status="running", host=platform.node(), pid=os.getppid())
    (run / "summary.json").write_text(json.dumps(summary))
    assert still_running(summary)
    with monkeypatch.context() as m:
        m.setattr(runs, "fcntl", None)  # no lock to go by: the pid check is all there is, and it is fooled
        with pytest.raises(DltrainError, match=f"still being trained by process {os.getppid()}: stop it first"):
            resume(run)
    assert resume(run).summary["status"] == "completed"


def test_the_lock_ends_with_the_training(tmp_path):
    done = train(config(early_stopping=False, epochs=2), run_dir=tmp_path / "done").path
    with pytest.raises(DltrainError, match="is completed: there is nothing to resume"):
        resume(done)
    assert resume(interrupted_run(tmp_path / "cut")).summary["status"] == "completed"
    diverging = validate_config({"data": {"dataset": "moons"}, "model": {"layers": ["auto", 5, 2, 1]},
                                 "optimizer": {"learning_rate": 1e6}, "training": {"epochs": 20, "checkpoint_every": 1}})
    with pytest.raises(DltrainError, match="diverged"):
        train(diverging, run_dir=tmp_path / "diverged")
    with pytest.raises(DltrainError, match="diverged and would diverge again"):
        resume(tmp_path / "diverged")
    for run_dir in ("done", "cut", "diverged"):
        with runs.training_lock(tmp_path / run_dir) as locked:
            assert locked == (runs.fcntl is not None)

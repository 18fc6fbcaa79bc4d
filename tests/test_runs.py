"""Reading run folders back (load_run, history parsing) and the evaluation-only writer."""

import errno
import json
import re

import pytest

from dltrain import runs
from dltrain.errors import DltrainError
from dltrain.runs import RunWriter, list_run_dirs, load_run, read_history, training_lock, write_evaluation_file

needs_flock = pytest.mark.skipif(runs.fcntl is None, reason="no fcntl.flock on this platform")


def make_run(folder, status="completed", metrics=True):
    run = RunWriter(folder, ["epoch", "iteration", "cost", "dev_cost"])
    run.write_yaml("config.yaml", {"data": {"dataset": "planar"}, "model": {"layers": [2, 4, 1]}})
    run.log({"epoch": 0, "iteration": 1, "cost": 0.69})
    run.log({"epoch": 10, "iteration": 11, "cost": 0.5, "dev_cost": 0.55})
    run.flush_history()
    if metrics:
        run.write_json("metrics.json", {"train": {"accuracy": 0.9}})
    run.write_json("summary.json", {"status": status})
    return run.dir


def test_load_run_parses_every_file(tmp_path):
    record = load_run(make_run(tmp_path / "r"))
    assert record.config["model"]["layers"] == [2, 4, 1]
    assert record.history == [{"epoch": 0, "iteration": 1, "cost": 0.69, "dev_cost": None},
                              {"epoch": 10, "iteration": 11, "cost": 0.5, "dev_cost": 0.55}]
    assert record.metrics == {"train": {"accuracy": 0.9}} and record.summary == {"status": "completed"}


def test_diverged_run_has_no_metrics(tmp_path):
    assert load_run(make_run(tmp_path / "r", "diverged", metrics=False)).metrics == {}


def test_bad_folders_and_files(tmp_path):
    with pytest.raises(DltrainError, match="not a dltrain run folder"):
        load_run(tmp_path)
    run = make_run(tmp_path / "r")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(DltrainError, match="metrics.json is not valid JSON"):
        load_run(run)
    (run / "history.csv").write_text("epoch,cost\n0,abc\n")
    with pytest.raises(DltrainError, match="history.csv is not a dltrain history file"):
        read_history(run / "history.csv")


def test_list_run_dirs_skips_other_folders(tmp_path):
    make_run(tmp_path / "b")
    make_run(tmp_path / "a")
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in list_run_dirs(tmp_path)] == ["a", "b"]
    with pytest.raises(DltrainError, match="not found"):
        list_run_dirs(tmp_path / "missing")


def test_evaluation_writer_never_touches_training_files(tmp_path):
    run = make_run(tmp_path / "r")
    write_evaluation_file(run, "evaluation.json", "{}")
    write_evaluation_file(run, "evaluation.json", '{"again": 1}')  # re-evaluating replaces it
    assert json.loads((run / "evaluation.json").read_text()) == {"again": 1}
    for name in ("metrics.json", "cost.png", "../evaluation.json", "evaluation/../metrics.json"):
        with pytest.raises(ValueError):
            write_evaluation_file(run, name, "x")
    assert json.loads((run / "metrics.json").read_text()) == {"train": {"accuracy": 0.9}}
    assert not [p for p in run.iterdir() if ".tmp" in p.name]


@needs_flock
def test_training_lock_is_exclusive_until_released(tmp_path):
    taken = f"^{re.escape(str(tmp_path))} is being trained by another process: "
    with training_lock(tmp_path) as locked:
        assert locked
        # flock belongs to an open file, not a process: a second open conflicts even in this one.
        with pytest.raises(DltrainError, match=taken), training_lock(tmp_path):
            pass
    with pytest.raises(RuntimeError), training_lock(tmp_path):
        raise RuntimeError("training failed")
    with training_lock(tmp_path) as locked:
        assert locked
    assert (tmp_path / ".lock").read_bytes() == b""


@needs_flock
def test_training_lock_is_not_taken_where_nothing_can_be_locked(tmp_path, monkeypatch):
    def refused(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runs.fcntl, "flock", refused)
    with training_lock(tmp_path) as locked, training_lock(tmp_path) as again:
        assert (locked, again) == (False, False)
    monkeypatch.setattr(runs, "fcntl", None)
    with training_lock(tmp_path / "missing") as locked:
        assert not locked

"""history.csv grows on disk as rows are logged: never rewritten whole (which made SIGTERM of a long,
densely logged run wait for an O(history) write), never carried in the checkpoint, and a resumed
run's history ends identical to the uninterrupted run's."""

import json
import threading

import h5py
import pytest

from dltrain import runs
from dltrain.commands.train import resume, train
from dltrain.errors import DltrainError, Interrupted
from dltrain.runs import RunWriter, read_history
from tests.conftest import FullDisk, history_without_seconds
from tests.test_reliability import assert_same_results, config, interrupted_run


def count_appends(monkeypatch) -> dict:
    """Bytes written to each run file by appending, and the names written whole (atomic_write)."""
    seen = {"appended": {}, "whole": []}
    real_append, real_atomic = RunWriter._append, runs.atomic_write

    def append(self, name, lines, size, sync):
        seen["appended"][name] = seen["appended"].get(name, 0) + len("".join(lines).encode())
        return real_append(self, name, lines, size, sync)

    def atomic(path, data):
        seen["whole"].append(path.name)
        return real_atomic(path, data)

    monkeypatch.setattr(RunWriter, "_append", append)
    monkeypatch.setattr(runs, "atomic_write", atomic)
    return seen


def test_the_history_is_appended_as_it_is_logged_and_never_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "HISTORY_FLUSH_SECONDS", 0.0)  # every row reaches the file as it is logged
    seen = count_appends(monkeypatch)
    on_disk = []

    def progress(r, row):
        if row is not None:
            on_disk.append(len(read_history(tmp_path / "run" / "history.csv")))
        if r.epoch == 7:
            event.set()

    event = threading.Event()
    with pytest.raises(Interrupted):
        train(config(early_stopping=False, epochs=40, log_every=1, checkpoint_every=3), run_dir=tmp_path / "run",
              progress=progress, interrupt=event)
    # Every logged row is in history.csv when the next callback runs: nothing is left for the end.
    assert on_disk == list(range(1, 9))
    size = (tmp_path / "run" / "history.csv").stat().st_size
    assert seen["appended"]["history.csv"] == size and "history.csv" not in seen["whole"]
    with h5py.File(tmp_path / "run" / "checkpoint.h5") as f:
        loop = json.loads(f.attrs["loop"])
    assert "history" not in loop and loop["history_bytes"] == size


def test_stopping_writes_only_the_rows_logged_since_the_last_flush(tmp_path, monkeypatch):
    # The default flush interval (seconds) buffers the rows of a fast run; at the interrupt only the
    # buffered rows are appended, not the history again.
    seen = count_appends(monkeypatch)
    interrupted_run(tmp_path / "run", config(early_stopping=False, epochs=40, log_every=1, checkpoint_every=10), 29)
    rows = read_history(tmp_path / "run" / "history.csv")
    assert [row["epoch"] for row in rows] == list(range(30))
    assert seen["appended"]["history.csv"] == (tmp_path / "run" / "history.csv").stat().st_size


def test_resume_cuts_the_history_back_to_its_checkpoint(tmp_path):
    # kill -9 after more rows were appended, the last one half-written: readers skip the partial
    # line, and the resumed run's history.csv equals the uninterrupted run's.
    cfg = config(epochs=12, early_stopping=False, log_every=1)
    interrupted_run(tmp_path / "cut", cfg, 5)
    history = tmp_path / "cut" / "history.csv"
    with open(history, "a") as f:
        f.write("6,40,0.01,0.5,0.5,0.0,0.5,0.8,1.0\n7,45,0.0")
    assert [row["epoch"] for row in read_history(history)] == list(range(7))
    resume(tmp_path / "cut")
    whole = train(cfg, run_dir=tmp_path / "whole")
    assert_same_results(tmp_path / "cut", whole.path)
    assert [row["epoch"] for row in read_history(history)] == list(range(12))


@pytest.mark.parametrize("name, kept", [("history.csv", 30), ("curve.csv", 40)])
def test_resume_refuses_a_file_shorter_than_its_checkpoint(tmp_path, name, kept):
    path = interrupted_run(tmp_path / "cut", config(epochs=12, early_stopping=False), 5) / name
    path.write_text(path.read_text()[:kept])
    with pytest.raises(DltrainError, match=rf"{name} has {kept} bytes but the checkpoint recorded \d+: it was truncated or replaced"):
        resume(tmp_path / "cut")


def test_a_checkpoint_from_before_the_appended_history_still_resumes(tmp_path):
    # Checkpoints written by earlier versions carry the history rows in `loop` and no history_bytes.
    cfg = config(epochs=12, early_stopping=False, log_every=2)
    interrupted_run(tmp_path / "cut", cfg, 5)
    history = tmp_path / "cut" / "history.csv"
    rows = read_history(history)
    with h5py.File(tmp_path / "cut" / "checkpoint.h5", "r+") as f:
        loop = json.loads(f.attrs["loop"])
        del loop["history_bytes"]
        f.attrs["loop"] = json.dumps({**loop, "history": rows})
    history.write_text("garbage that the old checkpoint's rows replace\n")
    resume(tmp_path / "cut")
    whole = train(cfg, run_dir=tmp_path / "whole")
    assert history_without_seconds(tmp_path / "cut") == history_without_seconds(whole.path)


def test_a_failed_append_leaves_no_partial_row(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "r", ["epoch", "cost"])
    run.log({"epoch": 0, "cost": 0.5})
    run.flush_history()
    size = (tmp_path / "r" / "history.csv").stat().st_size
    real_open = open
    # Part of the row reaches the disk, then it is full.
    monkeypatch.setattr(runs, "open", lambda p, mode="r", *a, **k: FullDisk(real_open(p, mode, *a, **k), partial=5) if "a" in mode
                        else real_open(p, mode, *a, **k), raising=False)
    run.log({"epoch": 1, "cost": 0.25})
    with pytest.raises(DltrainError, match="history.csv: no space left"):
        run.flush_history()
    assert (tmp_path / "r" / "history.csv").stat().st_size == size
    monkeypatch.undo()
    run.flush_history()  # space freed: the buffered row is appended whole, once
    assert read_history(tmp_path / "r" / "history.csv") == [{"epoch": 0, "cost": 0.5}, {"epoch": 1, "cost": 0.25}]


@pytest.mark.parametrize("name", ["history.csv", "curve.csv"])
def test_resume_refuses_a_file_changed_before_its_checkpoint(tmp_path, name):
    # Same length, one digit changed: only the checkpoint's checksum of the file tells.
    interrupted_run(tmp_path / "cut", config(epochs=12, early_stopping=False, log_every=1), 5)
    path = tmp_path / "cut" / name
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("0.", "1.", 1)
    path.write_text("".join(lines))
    with pytest.raises(DltrainError, match=f"{name} was changed after the checkpoint"):
        resume(tmp_path / "cut")

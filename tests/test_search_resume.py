"""An interrupted search resumes without losing finished trials: a trial that finished on a worker after
the interrupt is reused, one still claimed by a worker is waited for, one cut off with a checkpoint is
resumed from it; never `failed: run folder ... already exists`, and the result equals the uninterrupted
search's."""

import concurrent.futures
import copy
import json
import os
import threading

import pytest

from dltrain import config as C
from dltrain import runs
from dltrain import tuning as S
from dltrain.commands import search as search_module
from dltrain.commands.search import run_trial, search
from dltrain.commands.train import train
from dltrain.config import validate_config
from dltrain.errors import Interrupted
from tests.test_search import BASE, SPACE, InProcess

needs_flock = pytest.mark.skipif(runs.fcntl is None, reason="no fcntl.flock on this platform")

TREE = copy.deepcopy(BASE)
TREE["training"].update(epochs=60, checkpoint_every=20)


def timeless(outcome):
    return [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in outcome.ranked]


class InterruptedWorkers(InProcess):
    """Ctrl-C after the first trial's result, with the other trials of the round left as workers leave
    them: the second finished on its worker after the interrupt (no record written), the third was
    cut off after epoch 25 with its checkpoint, its folder still saying running, as a killed worker leaves it."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def submit(self, fn, *args):
        self.calls.append(args)
        return concurrent.futures.Future()

    def as_completed(self, futures):
        (tree1, first), (tree2, second), (tree3, third) = self.calls[:3]
        done = next(f for f, t in futures.items() if str(t.run_dir) == first)
        done.set_result(run_trial(tree1, first))
        yield done
        run_trial(tree2, second)
        event = threading.Event()
        with pytest.raises(Interrupted):
            train(validate_config(tree3), run_dir=third, progress=lambda r, row: r.epoch == 25 and event.set(), interrupt=event)
        summary = json.loads(open(os.path.join(third, "summary.json")).read())
        with open(os.path.join(third, "summary.json"), "w") as f:
            json.dump({**summary, "status": "running", "pid": 2**22 + 1}, f)  # a killed worker's folder
        raise KeyboardInterrupt


def test_an_interrupted_search_reruns_to_the_uninterrupted_result(tmp_path, monkeypatch):
    space = C.load_space(SPACE)
    monkeypatch.setattr(S, "open_executor", InProcess)
    whole = search(TREE, space, tmp_path / "whole", trials=6, rounds=2, seed=1)
    cut = InterruptedWorkers()
    monkeypatch.setattr(S, "open_executor", lambda *a: cut)
    with pytest.raises(Interrupted):
        search(TREE, space, tmp_path / "cut", trials=6, rounds=2, seed=1)
    trials = tmp_path / "cut" / "trials"
    assert sorted(p.name for p in trials.glob("*.json")) == ["trial-001.json"]
    finished_after = (trials / "trial-002" / "metrics.json").stat().st_mtime_ns
    again = InProcess()
    monkeypatch.setattr(S, "open_executor", lambda *a: again)
    rerun = search(TREE, space, tmp_path / "cut", trials=6, rounds=2, seed=1)
    assert timeless(rerun) == timeless(whole)
    assert all(r["status"] == "completed" for r in rerun.ranked)
    # Trial 2 was reused as its worker left it; trial 3 resumed from its checkpoint, not retrained.
    assert (trials / "trial-002" / "metrics.json").stat().st_mtime_ns == finished_after
    assert json.loads((trials / "trial-003" / "summary.json").read_text())["resumed"][0]["epoch"] == 26
    assert again.submitted == 4  # trial 3 and round 2's three


@needs_flock
def test_a_trial_claimed_by_another_worker_is_waited_for_and_reused(tmp_path, monkeypatch):
    space = C.load_space(SPACE)
    trial = search_module.plan_round(TREE, space, tmp_path, 1, 1, 1, 0, "space")[0]
    trial.run_dir.parent.mkdir(parents=True)
    other = os.open(trial.run_dir.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
    runs.fcntl.flock(other, runs.fcntl.LOCK_EX)  # the other worker's claim: it is training the trial
    waits = []

    def other_worker_finishes():
        waits.append(1)
        if len(waits) == 1:
            train(validate_config(trial.config), run_dir=trial.run_dir, progress=False, interrupt=threading.Event())
            os.close(other)  # its process ends: the kernel releases the claim

    monkeypatch.setattr(search_module, "wait_for_other_worker", other_worker_finishes)
    stamp = (trial.run_dir / "metrics.json").stat
    result = run_trial(trial.config, str(trial.run_dir))
    assert len(waits) == 1 and result["status"] == "completed"
    metrics = json.loads((trial.run_dir / "metrics.json").read_text())
    assert result["metrics"]["dev_accuracy"] == metrics["dev"]["accuracy"]
    assert stamp().st_mtime_ns == (trial.run_dir / "metrics.json").stat().st_mtime_ns  # not trained again


def test_a_failed_record_of_a_trial_whose_folder_completed_is_replaced(tmp_path, monkeypatch):
    # Searches before trial claims recorded "failed: run folder ... already exists" for a trial another
    # worker finished; the rerun takes the complete folder instead, without training.
    monkeypatch.setattr(S, "open_executor", InProcess)
    space = C.load_space(SPACE)
    whole = search(TREE, space, tmp_path / "s", trials=2, seed=1)
    record = tmp_path / "s" / "trials" / "trial-001.json"
    folder = tmp_path / "s" / "trials" / "trial-001"
    stale = {**json.loads(record.read_text()), "status": "failed", "metrics": {},
             "error": f"run folder {folder} already exists; dltrain never overwrites a run"}
    record.write_text(json.dumps(stale))
    again = InProcess()
    monkeypatch.setattr(S, "open_executor", lambda *a: again)
    rerun = search(TREE, space, tmp_path / "s", trials=2, seed=1)
    assert again.submitted == 0 and timeless(rerun) == timeless(whole)



class StopAtFirstResult:
    """A search's progress that presses Ctrl-C when the first trial comes back from a worker."""

    def round(self, number, space, trials):
        pass

    def trial(self, record, reused):
        if not reused:
            raise KeyboardInterrupt


def test_ctrl_c_on_a_dask_search_and_an_immediate_rerun(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    space = C.load_space(SPACE)
    tree = copy.deepcopy(TREE)
    tree["training"].update(epochs=400, checkpoint_every=50)
    monkeypatch.setattr(S, "open_executor", InProcess)
    whole = search(tree, space, tmp_path / "whole", trials=6, seed=3)
    monkeypatch.undo()
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        with pytest.raises(Interrupted):
            search(tree, space, tmp_path / "dask", trials=6, seed=3, scheduler=cluster.scheduler_address, progress=StopAtFirstResult())
        # At once: the trial still running on a worker holds its claim; the rerun's task for it waits, then reuses it.
        rerun = search(tree, space, tmp_path / "dask", trials=6, seed=3, scheduler=cluster.scheduler_address)
    assert all(r["status"] == "completed" for r in rerun.ranked), [r["error"] for r in rerun.ranked]
    assert timeless(rerun) == timeless(whole)


def test_ctrl_c_on_local_processes_leaves_no_trial_running(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from tests.conftest import REPO

    tree = copy.deepcopy(TREE)
    tree["training"].update(epochs=3000, checkpoint_every=100, log_every=500)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "dltrain", "search", "c.yaml", "--space", "s.yaml", "--out", str(out), "--trials", "4", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    # Interrupted while both workers are inside a trial (each folder has its first checkpoint).
    while len(list((out / "trials").glob("*/checkpoint.h5"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    statuses = [json.loads(p.read_text())["status"] for p in (out / "trials").glob("*/summary.json")]
    assert statuses and "running" not in statuses, statuses  # the workers' SIGTERM marked them interrupted
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    summaries = [json.loads(p.read_text()) for p in (out / "trials").glob("*/summary.json")]
    assert len(summaries) == 4 and all(s["status"] == "completed" for s in summaries)
    assert any(s.get("resumed") for s in summaries) == ("interrupted" in statuses)

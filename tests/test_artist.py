"""The figures process of `dltrain train` (dltrain/artist.py): the same files as drawing in the training
process, and whatever goes wrong in it, the run draws them itself. Also the command's fast exit."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import dltrain
from dltrain import artist as artist_module
from dltrain.artist import Artist, in_fork
from dltrain.commands import figures as figures_module
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the figures process is forked on Linux only")

TREE = {"name": "fig", "seed": 3, "data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
        "optimizer": {"learning_rate": 1.2}, "training": {"epochs": 300, "log_every": 50}}


def in_fresh_process(case: str, *args) -> None:
    """Run case(*args) of this module in a new interpreter. The figures process forks only from a
    process with one thread, and a pytest process that ran other tests may have more (the Adam
    helper's thread pool lives until exit): there Artist.start rightly declines."""
    code = f"import sys\nfrom tests import test_artist as t\nt.{case}(*sys.argv[1:])\n"
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]


def started(jobs, warm_up=lambda: None) -> Artist:
    assert threading.active_count() == 1
    artist = Artist.start(jobs, warm_up)
    assert artist is not None and artist.pid != os.getpid()
    return artist


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def case_jobs_run_in_the_forked_process_which_ends_when_closed():
    artist = started({"double": lambda x: {"pid": os.getpid(), "y": 2 * x}})
    assert artist.ask("double", x=21) == {"ok": True, "pid": artist.pid, "y": 42}
    assert artist.ask("double", x=-1)["y"] == -2  # one process serves every job
    artist.close()
    assert reaped(artist.pid)
    assert artist.ask("double", x=1) is None


def case_a_failing_job_hands_the_work_back_and_the_process_is_not_used_again():
    def fails():
        raise ValueError("cannot draw")

    artist = started({"fails": fails, "fine": lambda: {}})
    assert artist.ask("fails") is None
    assert artist.ask("fine") is None
    assert reaped(artist.pid)
    artist = started({"fine": lambda: {}})
    assert artist.ask("fine", unknown=object()) is None  # arguments JSON cannot carry: done by the caller
    assert reaped(artist.pid)


def case_a_job_that_exits_never_runs_the_callers_code():
    def interrupted():
        raise KeyboardInterrupt

    for job in (lambda: sys.exit(0), interrupted):
        artist = started({"job": job})
        assert artist.ask("job") is None  # had it escaped the child, this function would run twice
        assert reaped(artist.pid)


def case_a_dead_process_hands_the_work_back():
    artist = started({"fine": lambda: {}})
    os.kill(artist.pid, signal.SIGKILL)
    assert artist.ask("fine") is None
    assert reaped(artist.pid)


def case_a_hung_job_is_abandoned_and_its_process_killed():
    artist_module.JOB_SECONDS = 0.5
    artist = started({"hang": lambda: time.sleep(120) or {}})
    begun = time.monotonic()
    assert artist.ask("hang") is None
    assert time.monotonic() - begun < 5
    assert reaped(artist.pid)


def case_ctrl_c_belongs_to_the_training_process_and_a_failing_warm_up_is_harmless():
    def warm_up():
        raise RuntimeError("no fonts")

    artist = started({"fine": lambda: {"pid": os.getpid()}}, warm_up)
    os.kill(artist.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    time.sleep(0.1)
    assert artist.ask("fine") == {"ok": True, "pid": artist.pid}
    artist.close()


def case_warnings_come_back_and_the_cleanup_runs(folder):
    import warnings

    def noisy():
        warnings.warn("glyph missing", RuntimeWarning, stacklevel=1)
        warnings.warn("a library's own kind", type("LibraryWarning", (UserWarning,), {}), stacklevel=1)
        return {}

    marker = os.path.join(folder, "cleaned")
    artist = started({"noisy": noisy}, lambda: (lambda: open(marker, "w").close()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert artist.ask("noisy") == {"ok": True}
    assert [(w.category, str(w.message)) for w in caught] == [(RuntimeWarning, "glyph missing"), (UserWarning, "a library's own kind")]
    artist.close()
    assert os.path.exists(marker)


def case_the_process_dies_with_its_parent(folder):
    # The training process is the middle one here: killed with SIGKILL while its figures process is in a job.
    pid_file = os.path.join(folder, "pid")
    middle = os.fork()
    if middle == 0:
        try:
            artist = Artist.start({"hang": lambda: time.sleep(120) or {}}, lambda: None)
            with open(pid_file, "w") as f:
                f.write(str(artist.pid))
            artist.ask("hang")
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while (not os.path.exists(pid_file) or not open(pid_file).read()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    child = int(open(pid_file).read())
    os.kill(middle, signal.SIGKILL)
    os.waitpid(middle, 0)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and "Z" not in open(f"/proc/{child}/stat").read().split()[2] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"


def case_the_run_lock_is_released_while_a_fork_of_the_trainer_lives(folder):
    from pathlib import Path

    from dltrain.runs import training_lock

    with training_lock(Path(folder)):
        pid = os.fork()
        if pid == 0:  # holds a copy of the lock's open file, as the figures process does
            time.sleep(30)
            os._exit(0)
    try:
        with training_lock(Path(folder)) as locked:  # a resume right after the run: not "being trained by another process"
            assert locked
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def case_in_fork_returns_the_works_result_or_none():
    assert in_fork(lambda: ["<svg/>", [os.getpid()]])()[1] != [os.getpid()]
    assert in_fork(lambda: 1 / 0)() is None


@pytest.mark.parametrize("case", [
    "case_jobs_run_in_the_forked_process_which_ends_when_closed",
    "case_a_failing_job_hands_the_work_back_and_the_process_is_not_used_again",
    "case_a_job_that_exits_never_runs_the_callers_code",
    "case_a_dead_process_hands_the_work_back",
    "case_a_hung_job_is_abandoned_and_its_process_killed",
    "case_ctrl_c_belongs_to_the_training_process_and_a_failing_warm_up_is_harmless",
    "case_in_fork_returns_the_works_result_or_none",
])
def test_the_figures_process(case):
    in_fresh_process(case)


@pytest.mark.parametrize("case", ["case_warnings_come_back_and_the_cleanup_runs", "case_the_process_dies_with_its_parent",
                                  "case_the_run_lock_is_released_while_a_fork_of_the_trainer_lives"])
def test_the_figures_process_in_a_folder(case, tmp_path):
    in_fresh_process(case, tmp_path)


def files(run) -> dict:
    return {f: (run.path / f).read_bytes() for f in ("cost.png", "decision_boundary.png", "metrics.json")}


def case_a_run_with_the_figures_process_writes_what_the_training_process_draws(folder):
    from pathlib import Path

    answers = []
    ask = Artist.ask

    def recorded(self, job, **args):
        answers.append((job, ask(self, job, **args)))
        return answers[-1][1]

    Artist.ask = recorded
    tree = {**TREE, "regularization": {"early_stopping": {"patience": 2, "monitor": "dev_cost", "min_delta": 0.01}},
            "data": {"dataset": "planar", "dev_fraction": 0.2}, "training": {"epochs": 400, "log_every": 1}}
    forked = dltrain.train(tree, run_dir=Path(folder) / "forked", progress=False, figures_process=True)
    assert [job for job, answer in answers if answer is not None] == ["figures", "report"]
    here = dltrain.train(tree, run_dir=Path(folder) / "here", progress=False)
    assert files(forked) == files(here)
    assert forked.summary["stopped_epoch"] == here.summary["stopped_epoch"] < 399  # the curve's marks are drawn
    assert forked.summary.get("notes") == here.summary.get("notes")
    page = (forked.path / "report.html").read_text()
    assert "fig: cost" in page and "decision boundary" in page and "completed" in page


def case_when_the_figures_process_fails_the_run_draws_its_figures_itself(folder):
    from pathlib import Path

    parent = os.getpid()
    draw = figures_module.draw_figures

    def only_here(*args):
        if os.getpid() != parent:
            raise OSError("the figures process cannot write")
        return draw(*args)

    answers = []
    ask = Artist.ask
    Artist.ask = lambda self, job, **args: answers.append(ask(self, job, **args)) or answers[-1]
    figures_module.draw_figures = only_here  # what the figures process calls; inherited by the fork
    forked = dltrain.train(TREE, run_dir=Path(folder) / "forked", progress=False, figures_process=True)
    assert answers == [None, None]  # the figures job failed, and the process, closed then, drew no report
    figures_module.draw_figures = draw
    here = dltrain.train(TREE, run_dir=Path(folder) / "here", progress=False)
    assert files(forked) == files(here)
    assert (forked.path / "report.html").is_file() and forked.summary["status"] == "completed"


@pytest.mark.parametrize("case", ["case_a_run_with_the_figures_process_writes_what_the_training_process_draws",
                                  "case_when_the_figures_process_fails_the_run_draws_its_figures_itself"])
def test_a_run_with_the_figures_process(case, tmp_path):
    in_fresh_process(case, tmp_path)


def cli(*args, timeout=120, **kwargs):
    return subprocess.run([sys.executable, "-m", "dltrain", *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def processes_running(marker: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_command_leaves_no_figures_process_behind(tmp_path, stop):
    import yaml

    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({**TREE, "training": {"epochs": 1_000_000, "log_every": 100}}))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "dltrain", "train", str(config), "--run-dir", str(run_dir), "-q"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(processes_running(str(config))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_running(str(config))) == 2, "the figures process was not started"
    os.kill(proc.pid, stop)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10  # the orphan of a SIGKILL sees its pipe close and exits
    while processes_running(str(config)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_running(str(config)) == []
    assert proc.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL)


def test_the_command_exits_with_its_code_and_output_and_runs_atexit_handlers(tmp_path):
    res = cli("train", "configs/planar.yaml", "--set", "training.epochs=20", "--runs-dir", str(tmp_path), "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(tuple(p.name for p in tmp_path.iterdir()))
    res = cli("train", "configs/planar.yaml", "--set", "training.epochs=-1")
    assert res.returncode == 2 and "training.epochs" in res.stderr and "Traceback" not in res.stderr
    probe = ("import atexit, runpy, sys\natexit.register(lambda: print('atexit ran', flush=True))\n"
             "sys.argv = ['dltrain', 'config', 'show', 'configs/planar.yaml']\nrunpy.run_module('dltrain', run_name='__main__')\n")
    res = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.rstrip().endswith("atexit ran") and "planar" in res.stdout
    # A reader that is gone before anything is written: click's quiet exit 1, no traceback.
    proc = subprocess.Popen([sys.executable, "-m", "dltrain", "config", "schema"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.stderr.read() == b"" and proc.wait(timeout=60) == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_output_to_a_full_disk_is_one_line_and_the_run_stands(tmp_path):
    # Every logged epoch prints a line into the full device: training goes on, and the lost output is said once.
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "dltrain", "train", "configs/planar.yaml", "--set", "training.epochs=300",
                              "--set", "training.log_every=1", "--runs-dir", str(tmp_path)], cwd=REPO, stdout=full,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert res.returncode == 1 and res.stderr.strip() == "cannot write the output: No space left on device"
    (run,) = tmp_path.iterdir()
    assert dltrain.open_run(run).summary["status"] == "completed" and (run / "report.html").is_file()

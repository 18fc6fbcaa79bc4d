"""dltrain search: sampling scales, space validation, narrowing, ranking, resumable parallel runs, Dask."""

import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import typing

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dltrain import config as C
from dltrain import tuning as S
from dltrain.cli import app
from dltrain.commands.search import check_space, plan_round, search
from dltrain.errors import DltrainError

from .conftest import REPO

runner = CliRunner()

# A tiny, fast trial: the course's planar data, a dev set, few epochs; momentum so beta can be searched.
BASE = {"name": "p", "seed": 2, "rng": "course", "data": {"dataset": "planar", "dev_fraction": 0.25},
        "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"}, "init": {"scheme": "random"},
        "optimizer": {"name": "momentum", "learning_rate": 1.2}, "training": {"epochs": 60, "log_every": 30}}
SPACE = {"optimizer.learning_rate": "log(0.001, 10)", "optimizer.beta": "one_minus_log(0.9, 0.999)",
         "model.layers[1]": "int(1, 12)"}


def dist(text):
    return C.load_space({"k": text})["k"]


def write(tmp_path, tree, name):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def rows(folder):
    return list(csv.DictReader((folder / "leaderboard.csv").open()))


# ---- sampling ---------------------------------------------------------------------------------


def test_samplers_match_the_distribution_kinds():
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(typing.get_args(C.Distribution)[0])}
    assert kinds == set(S.SAMPLERS)


def test_log_puts_a_quarter_of_the_draws_in_each_decade():
    d, rng = dist("log(1e-4, 1)"), np.random.default_rng(0)
    draws = np.array([S.sample_log(d, rng) for _ in range(10_000)])
    assert draws.min() >= 1e-4 and draws.max() <= 1
    shares = np.histogram(draws, bins=[1e-4, 1e-3, 1e-2, 1e-1, 1])[0] / draws.size
    assert np.all(np.abs(shares - 0.25) < 0.02), shares  # binomial sd is 0.0043


def test_one_minus_log_splits_beta_evenly_around_0_99():
    rng = np.random.default_rng(1)
    d = dist("one_minus_log(0.9, 0.999)")
    draws = np.array([S.sample_one_minus_log(d, rng) for _ in range(10_000)])
    assert draws.min() >= 0.9 and draws.max() <= 0.999
    low = np.mean(draws < 0.99)
    assert abs(low - 0.5) < 0.02, low
    # Sampled uniformly, 0.9..0.99 would take 91% of the draws: the scale is what makes the difference.
    flat = dist("uniform(0.9, 0.999)")
    uniform = np.array([S.sample_uniform(flat, rng) for _ in range(10_000)])
    assert np.mean(uniform < 0.99) > 0.88


def test_int_includes_both_ends_and_choice_every_option():
    rng = np.random.default_rng(2)
    assert {S.sample_int(dist("int(3, 5)"), rng) for _ in range(200)} == {3, 4, 5}
    layers = dist("choice([[auto, 4, 1], [auto, 8, 8, 1]])")
    assert {str(S.sample_choice(layers, rng)) for _ in range(50)} == {"['auto', 4, 1]", "['auto', 8, 8, 1]"}


def test_seeded_search_draws_the_same_trials(tmp_path):
    space = C.load_space(SPACE)
    plan = [plan_round(BASE, space, tmp_path, 1, 1, 5, seed, "s") for seed in (7, 7, 8)]
    assert plan[0] == plan[1]
    assert [t.values for t in plan[0]] != [t.values for t in plan[2]]
    # Round 2 has its own stream: the same seed gives different values there.
    assert plan_round(BASE, space, tmp_path, 6, 2, 5, 7, "s")[0].values != plan[0][0].values
    assert all(t.config["seed"] == BASE["seed"] for t in plan[0])


def test_round_sizes_split_the_trials():
    assert S.round_sizes(20, 2) == [10, 10]
    assert S.round_sizes(7, 3) == [3, 2, 2]


# ---- the space file ---------------------------------------------------------------------------


def test_space_file_keeps_order_and_scales(tmp_path):
    space = C.load_space(write(tmp_path, {"optimizer.learning_rate": "log(1e-4, 1)", "model.layers": "choice([[auto, 4, 1], [auto, 8, 1]])",
                                          "optimizer.beta": "one_minus_log(0.9, 0.999)"}, "s.yaml"))
    assert list(space) == ["optimizer.learning_rate", "model.layers", "optimizer.beta"]
    assert (space["optimizer.learning_rate"].low, space["optimizer.learning_rate"].high) == (1e-4, 1.0)
    assert [S.plot_scale(d) for d in space.values()] == ["log", "category", "logit"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("log(0, 1)", "log(a, b) samples log10 of the value, so it needs 0 < a < b, got log(0.0, 1.0)"),
        ("log(1, 1e-3)", "log(a, b) needs a < b"),
        ("uniform(2, 1)", "uniform(a, b) needs a < b, got uniform(2.0, 1.0)"),
        ("int(5, 5)", "int(a, b) needs a < b"),
        ("int(1.5, 4)", "int low: got 1.5"),
        ("one_minus_log(0.9, 1)", "needs 0 < a < b < 1"),
        ("choice(relu, tanh)", "choice takes one list"),
        ("choice([])", "at least 1 item"),
        ("logg(1, 2)", "unknown distribution 'logg'; allowed: uniform, int, log, one_minus_log, choice; did you mean 'log'?"),
        ("log(1e-4)", "log takes two numbers"),
        (0.5, "got 0.5; expected a distribution"),
        ("uniform(__import__('os'), 1)", "uniform low: got \"__import__('os')\""),
    ],
)
def test_impossible_distributions_are_config_errors(tmp_path, text, message):
    with pytest.raises(DltrainError) as e:
        C.load_space(write(tmp_path, {"optimizer.learning_rate": text}, "s.yaml"))
    assert e.value.exit_code == 2
    assert "s.yaml: optimizer.learning_rate: " in str(e.value) and message in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "space,message",
    [
        ({"optimizer.learning_rat": "log(1e-3, 1)"},
         "optimizer.learning_rat: unknown key; allowed here: beta, learning_rate, name; did you mean 'learning_rate'?"),
        ({"model.layers[7]": "int(1, 4)"}, "model.layers[7]: no list entry [7] there"),
        ({"optimizer.beta": "uniform(0.5, 1.5)"},
         "s.yaml: optimizer.beta=1.5 (the high end of uniform(0.5, 1.5)): optimizer.beta: got 1.5; Input should be less than 1"),
        ({"model.hidden_activation": "choice([tanh, relus])"}, "model.hidden_activation: got 'relus'; allowed: relu"),
    ],
)
def test_key_paths_and_ranges_are_checked_against_the_config_before_training(tmp_path, space, message):
    res = runner.invoke(app, ["search", str(write(tmp_path, BASE, "c.yaml")), "--space", str(write(tmp_path, space, "s.yaml")),
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "space,expected",
    [
        ({"optimizer.beta": "uniform(0.5, 1.5)"}, ["optimizer.beta=1.5 (the high end of uniform(0.5, 1.5)): optimizer.beta: got 1.5"]),
        ({"optimizer.beta": "log(0.5, 2)"}, ["optimizer.beta=2.0 (the high end of log(0.5, 2.0)): optimizer.beta: got 2.0"]),
        ({"optimizer.learning_rate": "uniform(-1, 1)"},
         ["optimizer.learning_rate=-1.0 (the low end of uniform(-1.0, 1.0)): optimizer.learning_rate: got -1.0"]),
        ({"regularization.keep_prob": "log(0.01, 3)"},
         ["regularization.keep_prob=3.0 (the high end of log(0.01, 3.0)): regularization.keep_prob: got 3.0"]),
        # every problem of the file at once: the impossible range, then the end the config rejects
        ({"model.layers[1]": "int(0, 5)", "optimizer.learning_rate": "log(-1, 1)"},
         ["optimizer.learning_rate: log(a, b) samples log10 of the value", "model.layers[1]=0 (the low end of int(0, 5))"]),
        ({"model.layers[1]": "int(0, 5)", "optimizer.beta": "uniform(-0.5, 1.5)"},
         ["model.layers[1]=0 (the low end of int(0, 5)): model.layers[1]: got 0; a whole number >= 1",
          "optimizer.beta=-0.5 (the low end of uniform(-0.5, 1.5)): optimizer.beta: got -0.5; Input should be greater than or equal to 0",
          "optimizer.beta=1.5 (the high end of uniform(-0.5, 1.5)): optimizer.beta: got 1.5; Input should be less than 1"]),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_range_errors_name_the_end_out_of_range_not_a_draw(tmp_path, space, expected, seed):
    """Whatever the seed, the check reports the range end the config rejects, one line each, before anything is drawn."""
    res = runner.invoke(app, ["search", str(write(tmp_path, BASE, "c.yaml")), "--space", str(write(tmp_path, space, "s.yaml")),
                              "--out", str(tmp_path / "out"), "--seed", str(seed)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == len(expected) and all(want in line for want, line in zip(expected, lines)), lines


def test_search_needs_a_dev_set(tmp_path):
    res = runner.invoke(app, ["search", str(write(tmp_path, BASE, "c.yaml")), "--space", str(write(tmp_path, SPACE, "s.yaml")),
                              "--set", "data.dev_fraction=0", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "search ranks trials on the dev set but the config has none" in res.output


def test_search_out_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "out").write_text("")
    res = runner.invoke(app, ["search", str(write(tmp_path, BASE, "c.yaml")), "--space", str(write(tmp_path, SPACE, "s.yaml")),
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.output.strip() == f"error: --out {tmp_path / 'out'} is a file; choose a folder"


# ---- ranking and narrowing --------------------------------------------------------------------


def record(trial, acc, cost, values, status="completed", round_=1):
    metrics = {"dev_accuracy": acc, "dev_cost": cost} if status == "completed" else {}
    return {"trial": trial, "round": round_, "status": status, "metrics": metrics, "values": values}


def test_rank_breaks_accuracy_ties_by_cost_and_puts_failures_last():
    recs = [record(1, 0.9, 0.30, {}), record(2, 0.9, 0.20, {}), record(3, 0.0, 0.0, {}, "failed"), record(4, 0.95, 0.5, {})]
    assert [r["trial"] for r in S.rank(recs, "dev_accuracy")] == [4, 2, 1, 3]
    assert [r["trial"] for r in S.rank(recs, "dev_cost")] == [2, 1, 4, 3]


def test_narrow_zooms_in_on_the_best_quarter_on_the_same_scale():
    space = C.load_space({"lr": "log(1e-4, 1)", "beta": "one_minus_log(0.9, 0.999)", "units": "int(1, 50)",
                                      "act": "choice([relu, tanh])"})
    values = [(0.5, 0.95, 10), (0.01, 0.99, 20), (0.002, 0.995, 20), (1e-4, 0.9, 3), (0.3, 0.91, 40), (0.9, 0.999, 1),
              (0.2, 0.93, 5), (0.05, 0.97, 7)]
    accs = [0.60, 0.97, 0.95, 0.50, 0.70, 0.40, 0.80, 0.65]  # best two: trials 2 and 3 (top 25% of 8)
    recs = [record(i + 1, a, 0.1, {"lr": lr, "beta": b, "units": u, "act": "relu"}) for i, (a, (lr, b, u)) in enumerate(zip(accs, values))]
    recs.append(record(9, 0, 0, {"lr": 5e-4, "beta": 0.9, "units": 2, "act": "relu"}, "diverged"))
    narrowed = S.narrow(space, recs, "dev_accuracy")
    assert (narrowed["lr"].kind, narrowed["lr"].low, narrowed["lr"].high) == ("log", 0.002, 0.01)
    assert (narrowed["beta"].kind, narrowed["beta"].low, narrowed["beta"].high) == ("one_minus_log", 0.99, 0.995)
    assert narrowed["units"].kind == "choice" and narrowed["units"].options == [20]  # a single value left
    assert narrowed["act"] == space["act"]
    # Twelve completed trials: the top three (ceil of 25%) span the range.
    more = recs[:8] + [record(10 + i, 0.1, 0.1, {"lr": 1e-4, "beta": 0.9, "units": 1, "act": "relu"}) for i in range(4)]
    assert (S.narrow(space, more, "dev_accuracy")["lr"].low, S.narrow(space, more, "dev_accuracy")["lr"].high) == (0.002, 0.2)
    # Fewer than two completed trials: nothing to zoom in on.
    assert S.narrow(space, recs[:1] + recs[8:], "dev_accuracy") == space


# ---- trials and the search folder (in this process, for speed) ----------------------------------


class InProcess:
    """The executor interface, running each trial at submit time in this process."""

    def __init__(self, *args):
        self.submitted = 0

    def submit(self, fn, *args):
        import concurrent.futures

        self.submitted += 1
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future

    def as_completed(self, futures):
        return list(futures)

    def close(self):
        pass

    def abort(self, futures):
        pass


def test_failing_trials_are_recorded_and_do_not_stop_the_search(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "open_executor", InProcess)
    # An input size of 3 is a valid config but fails on the 2-feature data, in the trial.
    space = C.load_space({"model.layers[0]": "choice([auto, 3])", "optimizer.learning_rate": "log(0.1, 2)"})
    outcome = search(BASE, space, tmp_path / "s", trials=4, seed=3)
    statuses = {r["values"]["model.layers[0]"]: r["status"] for r in outcome.ranked}
    assert statuses == {"auto": "completed", 3: "failed"}
    failed = [r for r in rows(tmp_path / "s") if r["status"] == "failed"]
    assert failed and all("X has 2 features but layer 1 expects 3" in r["error"] for r in failed)
    assert all(r["rank"] == "" for r in failed) and rows(tmp_path / "s")[0]["rank"] == "1"
    assert len(rows(tmp_path / "s")) == 4


def test_rerun_reuses_finished_trials_and_redoes_unfinished_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "open_executor", InProcess)
    space = C.load_space(SPACE)
    first = search(BASE, space, tmp_path / "s", trials=4, rounds=2, seed=1)
    trials = tmp_path / "s" / "trials"
    # As after a Ctrl-C: trial 4 was cut off mid-run, trial 3 finished but its record was never written.
    (trials / "trial-004.json").unlink()
    (trials / "trial-004" / "metrics.json").unlink()
    summary = json.loads((trials / "trial-004" / "summary.json").read_text())
    (trials / "trial-004" / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    (trials / "trial-003.json").unlink()
    kept = (trials / "trial-003" / "metrics.json").stat().st_mtime_ns
    executor = InProcess()
    monkeypatch.setattr(S, "open_executor", lambda *a: executor)
    again = search(BASE, space, tmp_path / "s", trials=4, rounds=2, seed=1)
    assert executor.submitted == 1
    assert (trials / "trial-003" / "metrics.json").stat().st_mtime_ns == kept
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in o.ranked] for o in (first, again)]
    assert timeless[0] == timeless[1]
    with pytest.raises(DltrainError, match=r"holds a different search \(changed: seed\)"):
        search(BASE, space, tmp_path / "s", trials=4, rounds=2, seed=2)


# ---- real processes ---------------------------------------------------------------------------


def search_args(tmp_path, out, *extra):
    return ["search", str(write(tmp_path, BASE, "c.yaml")), "--space", str(write(tmp_path, SPACE, "s.yaml")), "--out", str(out), *extra]


def test_20_trials_in_2_rounds_in_local_processes(tmp_path):
    out = tmp_path / "search"
    res = runner.invoke(app, search_args(tmp_path, out, "--trials", "20", "--rounds", "2", "--workers", "2", "--seed", "4"))
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out)
    board = rows(out)
    assert len(board) == 20 and [r["round"] for r in board].count("2") == 10
    assert all(r["status"] == "completed" for r in board)
    scores = [float(r["dev_accuracy"]) for r in board]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > statistics.median(scores)
    # Round 2 sampled inside the ranges saved for it, which lie inside round 1's.
    rounds = json.loads((out / "rounds.json").read_text())
    saved = C.load_space(rounds[1]["space"])
    assert C.load_space(yaml.safe_load((out / "space-round-2.yaml").read_text())) == saved
    lr = saved["optimizer.learning_rate"]
    assert 1e-3 <= lr.low < lr.high <= 10 and lr.kind == "log"
    for r in board:
        if r["round"] == "2":
            assert lr.low <= float(r["optimizer.learning_rate"]) <= lr.high
    # Each trial is an ordinary run folder; best.yaml trains to the best trial's numbers.
    best = board[0]
    folder = out / "trials" / f"trial-{int(best['trial']):03d}"
    assert {"config.yaml", "history.csv", "metrics.json", "model.h5", "summary.json"} <= {p.name for p in folder.iterdir()}
    assert json.loads(folder.with_suffix(".json").read_text())["values"]["model.layers[1]"] == int(best["model.layers[1]"])
    assert (out / "search.png").stat().st_size > 0
    rerun = runner.invoke(app, ["train", str(out / "best.yaml"), "--run-dir", str(tmp_path / "again"), "-q"])
    assert rerun.exit_code == 0, rerun.output
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] == float(best["dev_accuracy"]) and metrics["dev"]["cost"] == float(best["dev_cost"])


def test_ctrl_c_keeps_finished_trials_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "dltrain", *search_args(tmp_path, out, "--trials", "5", "--workers", "1", "--set", "training.epochs=150")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A test runner started as a background job inherits SIGINT as ignored, and an ignored signal
    # stays ignored across exec: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((out / "trials").glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: the finished trials are kept" in err and "Traceback" not in err
    finished = sorted((out / "trials").glob("*.json"))
    assert 1 <= len(finished) < 5
    before = {p.name: p.read_bytes() for p in finished}
    stamps = {p.name: (p.with_suffix("") / "metrics.json").stat().st_mtime_ns for p in finished}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # At least those: a worker that was writing its trial's results when the search stopped it finishes them.
    assert int(re.search(r"(\d+) trials reused", res.stdout).group(1)) >= len(finished), res.stdout
    assert len(rows(out)) == 5 and all(r["status"] == "completed" for r in rows(out))
    assert {name: (out / "trials" / name).read_bytes() for name in before} == before
    assert {name: (out / "trials" / name).with_suffix("").joinpath("metrics.json").stat().st_mtime_ns for name in before} == stamps


def test_dask_cluster_gives_the_same_leaderboard_as_local_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    args = ("--trials", "4", "--rounds", "2", "--seed", "5", "-q")
    local = runner.invoke(app, search_args(tmp_path, tmp_path / "local", *args, "--workers", "2"))
    assert local.exit_code == 0, local.output
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = runner.invoke(app, search_args(tmp_path, tmp_path / "dask", *args, "--scheduler", cluster.scheduler_address))
    assert remote.exit_code == 0, remote.output
    same = ["rank", "trial", "round", "status", "dev_accuracy", "dev_cost", "train_accuracy", "train_cost", *SPACE, "epochs_run"]
    assert [[r[c] for c in same] for r in rows(tmp_path / "dask")] == [[r[c] for c in same] for r in rows(tmp_path / "local")]
    assert len(rows(tmp_path / "dask")) == 4


def test_the_shipped_space_fits_its_config_as_the_readme_runs_it(tmp_path):
    tree = C.load_tree(REPO / "configs" / "planar.yaml", ["data.dev_fraction=0.25", "optimizer.name=momentum"])
    space = C.load_space(REPO / "configs" / "spaces" / "planar.yaml")
    check_space(tree, space, "planar space")
    trials = plan_round(tree, space, tmp_path, 1, 1, 10, 0, "planar space")
    assert {t.config["optimizer"]["name"] for t in trials} == {"momentum"}
    assert all(0.9 <= t.values["optimizer.beta"] <= 0.999 for t in trials)

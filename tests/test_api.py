"""The Python API: the functions the CLI calls, with the same results bit for bit."""

import os
import signal

import numpy as np
import pytest
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from tests.conftest import REPO
from tests.test_reliability import assert_same_results

runner = CliRunner()


@pytest.mark.parametrize("config", ["planar.yaml", "moons_adam.yaml"])
def test_cli_and_api_write_identical_run_folders(tmp_path, config):
    path = REPO / "configs" / config
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "cli"), "-q"])
    assert res.exit_code == 0, res.output
    run = dltrain.train(dltrain.load_config(path), run_dir=tmp_path / "api", progress=False)
    assert isinstance(run, dltrain.Run) and run.path == tmp_path / "api" and run.status == "completed"
    assert_same_results(tmp_path / "cli", run.path)
    # a path and overrides go through the same loading as --set
    short = dltrain.train(path, runs_dir=tmp_path / "runs", overrides=["training.epochs=3"], progress=False)
    assert short.path.parent == tmp_path / "runs" and short.summary["epochs_run"] == 3


def test_a_bad_dict_config_fails_with_the_yaml_files_text(tmp_path):
    tree = {"name": "x", "data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanhh"},
            "optimizer": {"name": "gd", "learning_rate": 1.2, "beta2": 0.9}}
    path = tmp_path / "bad.yaml"
    path.write_text(__import__("yaml").safe_dump(tree))
    with pytest.raises(dltrain.DltrainError) as from_dict:
        dltrain.load_config(tree)
    with pytest.raises(dltrain.DltrainError) as from_file:
        dltrain.load_config(path)
    lines = str(from_dict.value).splitlines()
    assert len(lines) == 2 and "model.hidden_activation: got 'tanhh'" in lines[0] and "did you mean 'tanh'" in lines[0]
    assert [line.removeprefix("config: ") for line in lines] == [line.removeprefix(f"{path}: ") for line in str(from_file.value).splitlines()]
    assert from_dict.value.exit_code == 2
    res = runner.invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and [f"error: {line}" for line in str(from_file.value).splitlines()] == res.output.strip().splitlines()
    with pytest.raises(dltrain.DltrainError, match="training.epochs: got 0"):
        dltrain.load_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 1]}}, overrides=["training.epochs=0"])
    assert "training" not in tree  # the caller's dict is left alone


@pytest.fixture(scope="module")
def planar_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "planar"
    return dltrain.train(REPO / "configs" / "planar.yaml", run_dir=path, overrides=["training.epochs=300", "training.log_every=100"],
                         progress=False)


def test_run_handle_reads_the_folder(planar_run):
    run = dltrain.open_run(planar_run.path)
    assert run.config.name == "planar" and run.metrics["train"]["examples"] == 400
    assert run.summary["epochs_run"] == 300 and repr(run).startswith("Run(")
    h = run.history
    assert h.columns[:4] == ["epoch", "iteration", "learning_rate", "cost"]
    assert h["epoch"].tolist() == [row["epoch"] for row in h.rows] and h["cost"].dtype == np.float64
    assert h["cost"][-1] == h.rows[-1]["cost"]
    with pytest.raises(KeyError, match="history.csv has the columns"):
        h["nope"]
    pandas = pytest.importorskip("pandas")
    frame = h.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and frame["cost"].tolist() == h["cost"].tolist()


def test_predict_agrees_with_the_cli(planar_run, tmp_path):
    from dltrain.data.generated import planar_flower

    X, y = planar_flower(1)  # (2, 400) raw, as the run's data
    np.savez(tmp_path / "x.npz", x=X.T)
    AL = planar_run.predict(X)
    assert AL.shape == (1, 400) and np.all((AL > 0) & (AL < 1))
    res = runner.invoke(app, ["predict", str(planar_run.path), str(tmp_path / "x.npz")])
    assert res.exit_code == 0, res.output
    printed = [line.split("\t") for line in res.output.strip().splitlines()]
    api = dltrain.predict(planar_run.path, [tmp_path / "x.npz"])
    assert printed == [[p.input, p.label, f"{p.probability:.4f}"] for p in api]
    assert [p.probability for p in api] == [float(max(a, 1 - a)) for a in AL[0]]  # the same model output, bit for bit
    assert len({p.label for p in api}) == 2
    report = planar_run.evaluate(X, y)
    assert report["accuracy"] == pytest.approx(planar_run.metrics["train"]["accuracy"]) and report["examples"] == 400
    with pytest.raises(dltrain.DltrainError, match=r"expects \(n_x, m\) = \(2, m\)"):
        planar_run.predict(X.T)


def test_evaluate_plot_gradcheck_through_the_api(planar_run):
    report = planar_run.evaluate("train")
    assert report["splits"]["train"]["accuracy"] == planar_run.metrics["train"]["accuracy"]
    assert (planar_run.path / "evaluation.json").is_file()
    assert dltrain.evaluate(planar_run.path, "train")["splits"] == report["splits"]
    for kind in ("cost", "decision_boundary"):
        figure = planar_run.plot(kind)
        assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # what a notebook shows inline
    with pytest.raises(dltrain.DltrainError, match="no misclassified plot"):
        planar_run.plot("misclassified")
    with pytest.raises(dltrain.DltrainError, match="choose one of cost"):
        planar_run.plot("nope")
    assert dltrain.gradcheck(planar_run.config).verdict == "pass"


def test_search_and_runs_through_the_api(tmp_path):
    base = {"name": "s", "seed": 1, "data": {"dataset": "moons", "n_samples": 80, "dev_fraction": 0.25},
            "model": {"layers": ["auto", 3, 1]}, "training": {"epochs": 5}}
    outcome = dltrain.search(base, {"optimizer.learning_rate": "log(1e-3, 1)"}, tmp_path / "s", trials=3, workers=1)
    assert len(outcome.ranked) == 3 and (tmp_path / "s" / "leaderboard.csv").is_file()
    rows = dltrain.list_runs(tmp_path / "s")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}


def test_ctrl_c_interrupts_an_api_run_as_in_the_terminal(tmp_path):
    """A notebook's interrupt is SIGINT in the kernel's main thread: the run stops after the epoch with
    a checkpoint, is marked interrupted, and resumes to the uninterrupted run's bits."""
    cfg = dltrain.load_config(REPO / "configs" / "moons_adam.yaml", overrides=["training.epochs=40", "training.log_every=1"])
    # A kernel has Python's default handler; a test started in the background by a shell may have SIGINT ignored.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)

    def ctrl_c(r, row):
        if r.epoch == 12:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(dltrain.Interrupted, match="interrupted after epoch 12 of 40") as stopped:
        dltrain.train(cfg, run_dir=tmp_path / "cut", progress=ctrl_c)
    assert stopped.value._render_traceback_()[0].startswith("Interrupted: interrupted after epoch 12")  # one line in a notebook
    assert dltrain.open_run(tmp_path / "cut").status == "interrupted"
    handler = signal.signal(signal.SIGINT, inherited)
    assert handler is signal.default_int_handler  # the handler is the notebook's again
    resumed = dltrain.resume(tmp_path / "cut", progress=False)
    assert resumed.status == "completed"
    assert_same_results(resumed.path, dltrain.train(cfg, run_dir=tmp_path / "whole", progress=False).path)


def test_public_names_are_documented():
    for name in dltrain.__all__:
        obj = getattr(dltrain, name)
        assert name == "__version__" or obj.__doc__, f"dltrain.{name} has no docstring"
    readme = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    for name in ("load_config", "train", "open_run", "Run", "evaluate", "predict", "gradcheck", "search"):
        assert f"dltrain.{name}" in readme, name

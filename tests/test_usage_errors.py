"""Mistakes in a config or on the command line: one line each, naming the key or path, exit code 2."""

import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from tests.conftest import COURSE_DATA, REPO, needs_course_data

runner = CliRunner()
PLANAR = str(REPO / "configs" / "planar.yaml")


def errors(res) -> list[str]:
    assert "Traceback" not in res.output
    return [line for line in res.output.splitlines() if line.startswith("error:")]


def test_input_size_that_does_not_fit_the_data_is_a_config_error(tmp_path):
    res = runner.invoke(app, ["train", PLANAR, "--set", "model.layers=[4096,4,1]", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert errors(res) == ["error: X has 2 features but layer 1 expects 4096 (X.shape=(2, 400)); set model.layers[0] to 2 or 'auto'"]
    assert list(tmp_path.iterdir()) == []  # refused before a run folder exists


@needs_course_data
def test_layers_4096_on_cat(tmp_path):
    res = runner.invoke(app, ["train", str(REPO / "configs" / "cat_deep.yaml"), "--set", f"data.dir={COURSE_DATA}",
                              "--set", "model.layers=[4096,20,7,5,1]", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "X has 12288 features but layer 1 expects 4096" in res.output


def test_hflip_on_data_without_images_is_a_config_error(tmp_path):
    res = runner.invoke(app, ["train", PLANAR, "--set", "data.augment.hflip=true", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert errors(res) == ["error: data.augment.hflip needs an image dataset; planar has no image shape"]


@pytest.mark.parametrize("command", [["evaluate", "RUN"], ["predict", "RUN", "x.png"], ["reproduce", "RUN"], ["train", "--resume", "RUN"]])
def test_a_missing_run_folder_is_not_found(tmp_path, command):
    missing = tmp_path / "runs" / "missing"
    res = runner.invoke(app, [str(missing) if a == "RUN" else a for a in command])
    assert res.exit_code == 2, res.output
    assert errors(res) == [f"error: run folder {missing} not found"]


def test_runs_on_a_file_says_it_is_a_file(tmp_path):
    res = runner.invoke(app, ["runs", str(REPO / "README.md")])
    assert res.exit_code == 2
    assert errors(res) == [f"error: {REPO / 'README.md'} is a file, not a runs folder"]
    res = runner.invoke(app, ["runs", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and errors(res) == [f"error: runs folder {tmp_path / 'nowhere'} not found"]
    res = runner.invoke(app, ["evaluate", str(REPO / "README.md")])
    assert res.exit_code == 2 and errors(res) == [f"error: {REPO / 'README.md'} is a file, not a run folder"]


def test_unknown_dataset_is_reported_at_data_dataset(tmp_path):
    cfg = tmp_path / "cats.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"dataset": "cats"}, "model": {"layers": ["auto", 1]}}))
    for command in (["config", "show", str(cfg)], ["train", str(cfg), "--runs-dir", str(tmp_path)]):
        res = runner.invoke(app, command)
        assert res.exit_code == 2
        assert errors(res) == [f"error: {cfg}: data.dataset: got 'cats'; allowed: cat, signs, planar, moons, circles, file, images; "
                               "did you mean 'cat'?"]
    res = runner.invoke(app, ["config", "show", PLANAR, "--set", "optimizer.name=adamw", "--set", "schedule.name=steps"])
    assert res.exit_code == 2
    assert [e.split(": ")[2] for e in errors(res)] == ["optimizer.name", "schedule.name"]


def test_a_space_file_reports_all_its_errors(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.learning_rate: log(1, 0.1)\nmodel.layerz: int(1, 3)\noptimizer.beta: uniform(0.5, 1.5)\n"
                     "model.hidden_activation: chioce([relu])\n")
    res = runner.invoke(app, ["search", PLANAR, "--space", str(space), "--set", "data.dev_fraction=0.2",
                              "--set", "optimizer.name=momentum", "--out", str(tmp_path / "search")])
    assert res.exit_code == 2, res.output
    assert errors(res) == [
        f"error: {space}: optimizer.learning_rate: log(a, b) needs a < b, got log(1.0, 0.1)",
        f"error: {space}: model.hidden_activation: unknown distribution 'chioce'; allowed: uniform, int, log, one_minus_log, choice; "
        "did you mean 'choice'?",
        f"error: {space}: model.layerz: unknown key; allowed here: batch_norm, batch_norm_epsilon, batch_norm_momentum, "
        "hidden_activation, layers, leaky_relu_slope, output_activation; did you mean 'layers'?",
        f"error: {space}: optimizer.beta=1.5 (the high end of uniform(0.5, 1.5)): optimizer.beta: got 1.5; Input should be less than 1",
    ]
    assert not (tmp_path / "search").exists()

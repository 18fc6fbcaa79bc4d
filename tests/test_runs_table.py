"""`dltrain runs` fits the terminal (columns by priority, --columns) and prints every value whole when piped."""

import io
import json

import yaml
from rich.console import Console
from typer.testing import CliRunner

import dltrain.cli
from dltrain.cli import app
from dltrain.commands.runs import RUN_COLUMNS, list_runs
from dltrain.render import RUNS_PRIORITY, runs_table

runner = CliRunner()


def fake_runs(folder, n=3):
    """Run folders as training leaves them (summary, config, metrics), with long names and values."""
    for i in range(n):
        run = folder / f"moons-adam-decay-long-name-{i}-20250101-120000"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"status": "completed", "epochs_run": 5000 + i, "duration_seconds": 123.456 + i}))
        (run / "config.yaml").write_text(yaml.safe_dump({
            "data": {"dataset": "moons"}, "model": {"layers": [2, 50, 20, 10, 5, 1], "hidden_activation": "leaky_relu"},
            "optimizer": {"name": "rmsprop", "learning_rate": 0.000123 * (i + 1)}, "training": {"batch_size": 64},
            "regularization": {"l2": 0.7, "keep_prob": [0.8, 0.9, 0.95, 1.0]}}))
        (run / "metrics.json").write_text(json.dumps({s: {"accuracy": 0.9123 + i / 100} for s in ("train", "dev", "test")}))
    return folder


def render(table, width):
    console = Console(width=width, file=io.StringIO(), highlight=False)
    console.print(table)
    return console.file.getvalue()


def test_a_100_column_terminal_shows_whole_columns_by_priority(tmp_path):
    rows = list_runs(fake_runs(tmp_path))
    table, hidden, needed = runs_table(rows, list(RUN_COLUMNS), "3 runs", width=100)
    text = render(table, 100)
    assert needed <= 100 and all(len(line) <= 100 for line in text.splitlines())
    assert "…" not in text
    shown = [c for c in RUN_COLUMNS if c not in hidden]
    # the most important columns that fit, in the table's own order: run, status, dev and train accuracy
    assert set(shown) == set(RUNS_PRIORITY[:len(shown)]) and len(shown) >= 4 and hidden
    assert shown == [c for c in RUN_COLUMNS if c in shown] and shown[:2] == ["run", "status"]
    for c in shown:  # every shown value whole, on one line
        assert c in text
        for row in rows:
            assert dltrain.render.cell(row[c]) in text, (c, row[c])
    # every column, all 15, when the width allows
    table, hidden, needed = runs_table(rows, list(RUN_COLUMNS), "3 runs", width=400)
    assert hidden == [] and needed < 400


def test_the_run_column_wraps_rather_than_vanishes_on_a_tiny_terminal(tmp_path):
    rows = list_runs(fake_runs(tmp_path, 1))
    table, hidden, _ = runs_table(rows, list(RUN_COLUMNS), "1 runs", width=30)
    assert [c for c in RUN_COLUMNS if c not in hidden] == ["run"]
    text = render(table, 30)
    assert "".join(line.strip(" │┃") for line in text.splitlines()).find("moons-adam-decay-long-name") >= 0


def test_cli_on_a_terminal_fits_it_and_says_what_it_left_out(tmp_path, monkeypatch):
    fake_runs(tmp_path)
    screen = Console(width=100, file=io.StringIO(), force_terminal=True, highlight=False, color_system=None)
    monkeypatch.setattr(dltrain.cli, "out", screen)
    res = runner.invoke(app, ["runs", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = screen.file.getvalue()
    assert all(len(line) <= 100 for line in text.splitlines()) and "…" not in text
    assert "moons-adam-decay-long-name-0-20250101-120000" in text and "0.9123" in text
    assert "not shown (too narrow): " in text and "--columns" in text

    screen.file = io.StringIO()
    res = runner.invoke(app, ["runs", str(tmp_path), "--columns", "run,optimizer,keep_prob"])
    text = screen.file.getvalue()
    assert res.exit_code == 0 and "rmsprop" in text and "[0.8, 0.9, 0.95, 1.0]" in text
    assert "dev_accuracy" not in text and "not shown" not in text


def test_piped_output_has_every_column_whole(tmp_path):
    rows = list_runs(fake_runs(tmp_path))
    res = runner.invoke(app, ["runs", str(tmp_path)])  # CliRunner's output is not a terminal
    assert res.exit_code == 0, res.output
    assert "…" not in res.output and "not shown" not in res.output
    for c in RUN_COLUMNS:
        assert c in res.output
        for row in rows:
            assert dltrain.render.cell(row[c]) in res.output


def test_columns_option(tmp_path):
    fake_runs(tmp_path)
    res = runner.invoke(app, ["runs", str(tmp_path), "--columns", "run, dev_accuracy", "--json"])
    assert res.exit_code == 0, res.output
    assert [list(r) for r in json.loads(res.output)] == [["run", "dev_accuracy"]] * 3
    assert list(list_runs(tmp_path, columns=["epochs"])[0]) == ["epochs"]  # the Python API
    res = runner.invoke(app, ["runs", str(tmp_path), "--columns", "run,dev_acc"])
    assert res.exit_code == 2
    assert "--columns dev_acc: not a column; choose from run, status" in res.output


def test_chosen_columns_that_do_not_fit_break_their_headers_not_their_values(tmp_path):
    rows = list_runs(fake_runs(tmp_path))
    columns = ["run", "optimizer", "learning_rate", "batch_size", "dev_accuracy"]
    table, hidden, needed = runs_table(rows, columns, "3 runs", width=100, choose=False)
    assert hidden == [] and needed > 100  # whole headers would not fit
    text = render(table, 100)
    assert all(len(line) <= 100 for line in text.splitlines()) and "…" not in text
    for row in rows:  # every value whole, on one line
        assert row["run"] in text and dltrain.render.cell(row["learning_rate"]) in text
    assert "learning_" in text and "rate" in text
    # far too many for the width: everything folds, nothing is cut off
    table, _, _ = runs_table(rows, list(RUN_COLUMNS), "3 runs", width=60, choose=False)
    text = render(table, 60)
    assert all(len(line) <= 60 for line in text.splitlines()) and "…" not in text
    assert text.splitlines()[1].rstrip().endswith("┓")  # the table's right edge is drawn: no column cropped

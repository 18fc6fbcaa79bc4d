"""`dltrain compare`: the metric, log scale and epoch range it draws, the file format --out names;
search.png's labelled log axes and title. The plotted data are read back from the Figures."""

import pytest
from typer.testing import CliRunner

import dltrain
from dltrain import plots
from dltrain.cli import app
from dltrain.commands.runs import compare_figure

runner = CliRunner()
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    base = {"data": {"dataset": "planar", "dev_fraction": 0.25}, "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
            "init": {"scheme": "random", "scale": 0.01}, "training": {"epochs": 30, "log_every": 1}}
    runs = [dltrain.train({**base, "name": name, "optimizer": {"name": "gd", "learning_rate": lr}}, run_dir=folder / name, progress=False)
            for name, lr in (("fast", 1.2), ("slow", 0.05))]
    return runs


def lines(fig):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].get_lines()}


def visible_tick_labels(fig, axis) -> list[str]:
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    ticks = ax.yaxis.get_ticklabels(which="both") if axis == "y" else ax.xaxis.get_ticklabels(which="both")
    return [t.get_text() for t in ticks if t.get_text() and lo <= (t.get_position()[1] if axis == "y" else t.get_position()[0]) <= hi]


def test_metric_and_epoch_range_choose_the_plotted_data(two_runs):
    fast, slow = two_runs
    fig = compare_figure([fast.path, slow.path], metric="dev_accuracy")
    drawn = lines(fig)
    assert set(drawn) == {"fast", "slow"}
    assert drawn["fast"] == (list(fast.history["epoch"]), list(fast.history["dev_accuracy"]))
    assert fig.axes[0].get_ylabel() == "dev accuracy" and "dev accuracy of 2 runs" == fig.axes[0].get_title()

    drawn = lines(compare_figure([fast.path, slow.path], metric="cost", epochs="5:10"))
    assert set(drawn) == {"fast train", "fast dev", "slow train", "slow dev"}
    assert drawn["slow train"] == ([5, 6, 7, 8, 9, 10], list(slow.history["cost"][5:11]))
    assert drawn["fast dev"][1] == list(fast.history["dev_cost"][5:11])
    assert lines(compare_figure([fast.path], epochs="25:"))["fast train"][0] == [25, 26, 27, 28, 29]
    assert lines(compare_figure([fast.path], metric="dev_cost", epochs=":2"))["fast"][0] == [0, 1, 2]


def test_log_scale_has_labelled_ticks(two_runs):
    fast, slow = two_runs
    fig = compare_figure([slow.path], metric="cost", log=True)
    assert fig.axes[0].get_yscale() == "log"
    # the slow run's cost stays within a decade (about 0.69 .. 0.6): still at least two labelled ticks
    assert max(slow.history["cost"]) / min(slow.history["cost"]) < 10
    assert len(visible_tick_labels(fig, "y")) >= 2


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_out_writes_the_format_its_suffix_names(two_runs, tmp_path, fmt):
    out = tmp_path / f"cmp.{fmt.upper() if fmt == 'pdf' else fmt}"
    res = runner.invoke(app, ["compare", str(two_runs[0].path), str(two_runs[1].path), "--out", str(out),
                              "--metric", "dev_cost", "--log", "--epochs", "2:20"])
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    if fmt == "svg":
        assert b"<svg" in data[:1000] and b"<?xml" in data[:100]
    else:
        assert data.startswith(MAGIC[fmt])


def test_compare_refuses_what_it_cannot_do(two_runs, tmp_path):
    run = str(two_runs[0].path)
    for out in ("cmp.jpg", "cmp"):
        res = runner.invoke(app, ["compare", run, "--out", str(tmp_path / out)])
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and "name a .png, .svg or .pdf file" in res.output
        assert not (tmp_path / out).exists()
    for epochs in ("10:5", "a:b", "5", "-1:3"):
        res = runner.invoke(app, ["compare", run, "--out", str(tmp_path / "x.png"), "--epochs", epochs])
        assert res.exit_code == 2 and "--epochs" in res.output, (epochs, res.output)
    res = runner.invoke(app, ["compare", run, "--out", str(tmp_path / "x.png"), "--metric", "accuracy"])
    assert res.exit_code == 2
    no_dev = dltrain.train({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 2, 1]}, "training": {"epochs": 2}},
                           run_dir=tmp_path / "nodev", progress=False)
    res = runner.invoke(app, ["compare", str(no_dev.path), "--out", str(tmp_path / "x.png"), "--metric", "dev_accuracy"])
    assert res.exit_code == 1 and "has no dev_accuracy" in res.output


def test_search_plot_labels_narrow_log_axes_and_has_a_title():
    records = [{"round": 1, "metrics": {"dev_accuracy": 0.8 + i / 100},
                "values": {"optimizer.learning_rate": 0.02 + 0.01 * i, "optimizer.beta": 0.95 + 0.004 * i}} for i in range(5)]
    fig = plots.search_scatter(records, {"optimizer.learning_rate": "log", "optimizer.beta": "logit"}, "dev_accuracy", "planar-search")
    assert fig._suptitle.get_text() == "planar-search"
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        lo, hi = ax.get_xlim()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
        assert len(labels) >= 2, (ax.get_xlabel(), ax.get_xscale(), labels)
        assert all(lo <= float(label) <= hi for label in labels), labels  # plain numbers, not "1 − 5·10⁻²"
    assert "dev_accuracy of 5 trials" in plots.search_scatter(records, {"optimizer.learning_rate": "log"}, "dev_accuracy")._suptitle.get_text()

"""dltrain report: the HTML of a run, a search and a runs folder; self-contained, escaped, small.
What a browser makes of these pages is tested in test_report_browser.py."""

import csv
import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from dltrain.errors import DltrainError
from dltrain.pages.page import fmt
from dltrain.pages.run import run_page
from tests.conftest import REPO

PLANAR = REPO / "configs" / "planar.yaml"
# A planar run with everything the run page can show: dev split, L2 (data cost differs), norms.
RUN_SETTINGS = ["training.epochs=300", "training.log_every=10", "data.dev_fraction=0.25", "regularization.l2=0.01",
                "training.log_norms=true", "optimizer.learning_rate=0.5"]
HOSTILE = "<script>alert(1)</script>\"'&amp;<img src=x onerror=alert(2)>" + "L" * 150


def make_run(runs_dir: Path, *settings: str) -> Path:
    return dltrain.train(PLANAR, runs_dir=runs_dir, progress=False, overrides=[*RUN_SETTINGS, *settings]).path


def make_runs(runs_dir: Path, n: int = 3) -> list[Path]:
    return [make_run(runs_dir, f"name=planar-{i}", f"model.layers=[auto,{2 + i},1]") for i in range(n)]


def make_search(out: Path) -> Path:
    dltrain.search(PLANAR, {"optimizer.learning_rate": "log(0.01, 1)", "model.layers[1]": "int(2, 6)"}, out=out, trials=4, rounds=2,
                   workers=1, overrides=["training.epochs=150", "training.log_every=10", "data.dev_fraction=0.25"])
    return out


def make_hostile(tmp: Path) -> Path:
    """A copy of a run folder whose name, stop reason and config strings are HTML and quotes."""
    run = make_run(tmp / "src")
    hostile = tmp / "runs" / HOSTILE.replace("/", "|")
    hostile.parent.mkdir(parents=True)
    shutil.copytree(run, hostile)
    summary = json.loads((hostile / "summary.json").read_text())
    summary.update(stop_reason=HOSTILE, host=HOSTILE)
    (hostile / "summary.json").write_text(json.dumps(summary))
    (hostile / "config.yaml").write_text((hostile / "config.yaml").read_text().replace("name: planar", f"name: {json.dumps(HOSTILE)}"))
    (hostile / "report.html").unlink()
    return hostile


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def attributes(html: str, name: str) -> list[str]:
    return re.findall(rf'\s{name}="([^"]*)"', html)


def assert_self_contained(html: str) -> None:
    """Nothing to fetch: images are data: URIs, links are relative or fragments, no <link>, no external script."""
    assert all(src.startswith("data:") for src in attributes(html, "src"))
    assert all("://" not in href and not href.startswith("//") for href in attributes(html, "href") + attributes(html, "xlink:href"))
    assert "<link" not in html and "<iframe" not in html and "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # SVG clip paths refer to fragments of the page only
    assert "default-src 'none'" in html  # the Content-Security-Policy forbids any request anyway


def test_train_writes_the_run_report(run):
    html = (run / "report.html").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "dev"):
        assert f">{fmt(metrics[split]['accuracy'])}<" in html
    assert metrics["diagnosis"]["problem"] in html
    for section in ("results", "classes", "diagnosis", "figures", "model", "config", "environment", "commands"):
        assert f'<section id="{section}">' in html, section
    assert html.count("<svg") == 2  # cost curves and norm curves, drawn as SVG
    assert "train data cost" in html.split("<svg", 1)[1]  # L2: the data cost is its own line (text kept in an SVG comment)
    assert 'alt="decision boundary (train split)"' in html
    assert "<td>W 3x2, b 3x1</td>" not in html and "<td>W 4x2, b 4x1</td>" in html  # planar's 2-4-1 layer table
    assert "17 trainable parameters" in html  # 4*2+4 + 1*4+1
    assert f"dltrain reproduce {run}" in html and f"dltrain evaluate {run}" in html
    assert "BLAS" in html and json.loads((run / "summary.json").read_text())["versions"]["blas"] in html
    assert_self_contained(html)


def test_a_report_that_cannot_be_built_does_not_fail_the_run(tmp_path, monkeypatch):
    import dltrain.commands.report as report_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "write_run_report", broken)
    with pytest.warns(RuntimeWarning, match="report.html not written.*dltrain report"):
        run = dltrain.train(PLANAR, runs_dir=tmp_path, progress=False, overrides=["training.epochs=5"])
    assert run.summary["status"] == "completed" and (run.path / "model.h5").is_file()
    assert not (run.path / "report.html").exists()


def test_report_command_rebuilds_a_run_page_elsewhere(run, tmp_path):
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "page.html")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "page.html")
    html = (tmp_path / "page.html").read_text()
    # Rebuilt from the folder alone: the per-class table comes from the saved model on its rebuilt data.
    assert '<section id="classes"><h2>Per-class precision and recall</h2><h3>train</h3>' in html
    assert ">red<" in html and ">blue<" in html


def test_folder_and_search_pages_link_to_each_report(tmp_path):
    runs = make_runs(tmp_path / "runs")
    page = dltrain.report(tmp_path / "runs")
    assert page == tmp_path / "runs" / "report.html"
    html = page.read_text()
    for r in runs:
        assert f'href="{r.name}/report.html"' in html and f'data-run="{r.name}"' in html
    curves = json.loads(re.search(r'<script type="application/json" id="curves">(.*?)</script>', html).group(1))
    assert set(curves) == {r.name for r in runs} and len(curves[runs[0].name]["epoch"]) == 31
    assert_self_contained(html)

    search = make_search(tmp_path / "search")
    elsewhere = tmp_path / "pages" / "search.html"
    elsewhere.parent.mkdir()
    html = dltrain.report(search, out=elsewhere).read_text()
    links = [h for h in attributes(html, "href") if h.endswith("report.html")]
    assert len(links) == 4 and all((elsewhere.parent / h).resolve().is_file() for h in links)
    assert "Leaderboard (4 trials)" in html and "<svg" in html and "best.yaml" in html
    best = next(csv.DictReader((search / "leaderboard.csv").open()))
    assert f">{fmt(float(best['dev_accuracy']))}<" in html
    assert_self_contained(html)


def test_hostile_names_are_text(tmp_path):
    hostile = make_hostile(tmp_path)
    html = run_page(hostile, {"train": {HOSTILE: {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 3}}})
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;amp;&lt;img" in html
    assert html.count("<script") == 1  # the page's own
    html = dltrain.report(hostile.parent).read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("<script") == 2  # the curves' JSON and the page's script
    assert '\\u003cscript\\u003ealert(1)' in html  # inside the JSON the script reads


def test_a_long_run_and_a_large_search_stay_small(run, tmp_path):
    long_run = tmp_path / "long"
    shutil.copytree(run, long_run)
    with (run / "history.csv").open() as f:
        row = next(csv.DictReader(f))
    with (long_run / "history.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        for epoch in range(30_000):
            w.writerow({**row, "epoch": epoch, "cost": 1 / (1 + epoch), "data_cost": 0.9 / (1 + epoch), "dev_cost": 1.1 / (1 + epoch)})
    with (long_run / "curve.csv").open("w") as f:  # every epoch's costs, as training writes them
        f.write("epoch,learning_rate,cost,data_cost\n" + "".join(f"{e},0.1,{1 / (1 + e)!r},{0.9 / (1 + e)!r}\n" for e in range(30_000)))
    html = dltrain.report(long_run).read_text()
    assert "30000 epochs recorded, 1501 drawn" in html
    assert len(html) < 1_500_000

    search = tmp_path / "search"
    (search / "trials").mkdir(parents=True)
    (search / "search.json").write_text(json.dumps({"space": {"optimizer.learning_rate": "log(0.001, 1)"}, "metric": "dev_accuracy",
                                                    "trials": 200, "rounds": 1, "seed": 0}))
    for t in range(1, 201):
        (search / "trials" / f"trial-{t:03d}.json").write_text(json.dumps({
            "trial": t, "round": 1, "status": "completed", "values": {"optimizer.learning_rate": 10 ** (-3 + 3 * t / 200)},
            "metrics": {"dev_accuracy": t / 200, "dev_cost": 1 - t / 400, "train_accuracy": 0.5, "train_cost": 0.7},
            "epochs_run": 100, "seconds": 1.0, "run_dir": str(search / "trials" / f"trial-{t:03d}")}))
    html = dltrain.report(search).read_text()
    assert "Leaderboard (200 trials)" in html and html.index(">200<") < html.index(">199<")  # best first
    assert len(html) < 1_000_000


def test_report_refuses_what_is_not_a_run_search_or_runs_folder(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(DltrainError) as e:
            dltrain.report(path)
        assert e.value.exit_code == 2 and str(path) in str(e.value)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no run folder" in result.output


def test_a_run_without_model_still_has_a_page(run, tmp_path):
    stopped = tmp_path / "stopped"
    shutil.copytree(run, stopped)
    (stopped / "model.h5").unlink()
    (stopped / "metrics.json").unlink()
    summary = json.loads((stopped / "summary.json").read_text())
    (stopped / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = dltrain.report(stopped).read_text()
    assert "No metrics: the run is interrupted" in html and "the run has no model.h5" in html
    assert f"dltrain train --resume {stopped}" in html and "<td>W 4x2, b 4x1</td>" in html


def test_gradcheck_json_in_the_run_folder_is_shown(run, tmp_path):
    checked = tmp_path / "checked"
    shutil.copytree(run, checked)
    result = CliRunner().invoke(app, ["gradcheck", str(checked / "config.yaml"), "--json"])
    (checked / "gradcheck.json").write_text(result.output)
    outcome = json.loads(result.output)
    html = dltrain.report(checked).read_text()
    section = html.split('<section id="gradcheck">', 1)[1].split("</section>", 1)[0]
    assert f"<td>{outcome['verdict']}</td>" in section and f">{fmt(outcome['overall'])}<" in section
    assert [f"<td>{p['name']}</td>" in section for p in outcome["parameters"]] == [True] * 4  # W1 b1 W2 b2
    assert '<section id="gradcheck">' not in (run / "report.html").read_text()  # absent file, no section

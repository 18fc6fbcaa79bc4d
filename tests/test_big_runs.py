"""`dltrain runs` and `dltrain compare` on a run whose history is tens of MB: runs reads no
history.csv at all, compare streams only the columns and epochs it draws (a 60 MB history.csv took
2.5 GB and 20 s)."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import dltrain
from dltrain import run_tables
from dltrain.cli import app
from dltrain.run_tables import read_columns

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    cfg = {"name": "big", "data": {"dataset": "planar", "dev_fraction": 0.25}, "model": {"layers": ["auto", 3, 1]},
           "training": {"epochs": 5, "log_every": 1}}
    return dltrain.train(cfg, run_dir=folder / "big", progress=False).path


def test_runs_never_reads_history_csv(run, tmp_path):
    # A 300 MB history.csv (sparse: no disk used) is over the history reader's limit: had `runs` read it,
    # the run would be listed as unreadable.
    os.truncate(run / "history.csv", 300 * 2**20)
    try:
        res = runner.invoke(app, ["runs", str(run.parent), "--columns", "run,status,epochs"])
        assert res.exit_code == 0 and "completed" in res.output and "unreadable" not in res.output, res.output
    finally:
        os.truncate(run / "history.csv", 0)
        (run / "history.csv").write_text("epoch,cost\n0,0.69\n")


def write_curve(path, epochs):
    with open(path, "w") as f:
        f.write("epoch,learning_rate,cost,data_cost,dev_cost,dev_accuracy\n")
        for start in range(0, epochs, 10_000):
            f.write("".join(f"{e},1.2,{1 / (e + 1)!r},{1 / (e + 2)!r},{'' if e % 7 else 0.5},{'' if e % 7 else 0.9}\n"
                            for e in range(start, min(start + 10_000, epochs))))


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="the peak resident set is read from Linux's /proc")
def test_compare_streams_a_long_curve_in_bounded_memory(run, tmp_path):
    write_curve(run / "curve.csv", 900_000)  # 60 MB
    assert (run / "curve.csv").stat().st_size > 50 * 2**20
    # The peak is VmHWM reset as the child starts: ru_maxrss survives exec, so it would report this
    # pytest process's own size at the fork (hundreds of MB once the whole suite is imported).
    # The command ends in os._exit (dltrain/__main__.py): the peak is read by an atexit handler, which still runs.
    code = ("import atexit, runpy, sys\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            f"sys.argv = ['dltrain', 'compare', {str(run)!r}, '--out', {str(tmp_path / 'c.png')!r}]\n"
            "atexit.register(lambda: print('maxrss', [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1],\n"
            "                              file=sys.stderr, flush=True))\n"
            "runpy.run_module('dltrain', run_name='__main__')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
                         timeout=600)
    assert res.returncode == 0, res.stderr
    maxrss_mb = int(res.stderr.split("maxrss")[-1]) / 1024
    # Reading the whole file as text and rows took about 1 GB for 35 MB; streaming stays near the interpreter's own size.
    assert maxrss_mb < 400, maxrss_mb
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_read_columns_keeps_the_asked_columns_and_epochs(tmp_path, monkeypatch):
    path = tmp_path / "curve.csv"
    write_curve(path, 100)
    with open(path, "a") as f:
        f.write("100,1.2,0.0")  # a partial last line (a crash while appending) is left out
    table = read_columns(path, ["dev_cost"], 10, 20, "curve")
    assert table.rows == 100 and table.header[0] == "epoch" and set(table.columns) == {"epoch", "dev_cost"}
    assert table.columns["epoch"].tolist() == list(range(10, 21))
    assert [e for e, v in zip(table.columns["epoch"], table.columns["dev_cost"]) if v == v] == [14]  # nan elsewhere
    # A file over THIN_ABOVE_BYTES keeps every k-th row and the last, k = ceil(size / THIN_ABOVE_BYTES).
    monkeypatch.setattr(run_tables, "THIN_ABOVE_BYTES", path.stat().st_size // 4 + 1)
    epochs = read_columns(path, ["cost"], thin=True, kind="curve").columns["epoch"].tolist()
    assert epochs == [*range(0, 100, 4), 99]


def test_read_columns_refuses_what_is_not_a_table(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,cost\n0,0.5\n1,abc\n")
    with pytest.raises(dltrain.DltrainError, match="line 3: a value is not a number"):
        read_columns(path, ["cost"])
    path.write_text("epoch,cost\n0,0.5,7\n")
    with pytest.raises(dltrain.DltrainError, match="line 2 has 3 fields, the header 2"):
        read_columns(path, ["cost"])
    path.write_bytes(b"epoch,cost\n" + b"1" * (run_tables.MAX_LINE_BYTES + 10) + b"\n")
    with pytest.raises(dltrain.DltrainError, match="line 2 is longer than"):
        read_columns(path, ["cost"])

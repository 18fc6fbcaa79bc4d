"""Files are checked before they are read: regular files only, the size first, at most limit + 1
bytes read. Configs on the command line and every file of a run folder."""

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from dltrain import safe_read
from dltrain.cli import app
from dltrain.config import read_yaml
from dltrain.config.loading import MAX_CONFIG_BYTES
from dltrain.errors import DltrainError

runner = CliRunner()


def one_line_error(res, code):
    assert res.exit_code == code and isinstance(res.exception, SystemExit), res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_before_it_is_read(device, monkeypatch):
    monkeypatch.setattr(safe_read.os, "read", lambda *a: pytest.fail("a device was read"))
    with pytest.raises(DltrainError, match=f"{device} is a device, not a regular file"):
        read_yaml(safe_read.Path(device))
    monkeypatch.undo()
    assert "is a device, not a regular file" in one_line_error(runner.invoke(app, ["train", device]), 2)


def test_a_fifo_or_a_folder_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in one_line_error(runner.invoke(app, ["train", str(fifo)]), 2)
    assert "is a folder, not a regular file" in one_line_error(runner.invoke(app, ["train", str(tmp_path)]), 2)


def test_at_most_limit_plus_one_bytes_are_read(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 10))
    with pytest.raises(DltrainError, match=f"is {MAX_CONFIG_BYTES + 10} bytes; the limit is {MAX_CONFIG_BYTES}"):
        read_yaml(big)
    # A file that grows after its size was taken (or a size the filesystem gets wrong) is still bounded.
    monkeypatch.setattr(safe_read.os, "fstat", lambda fd, real=os.fstat: os.stat_result((*real(fd)[:6], 5, *real(fd)[7:])))
    read = []
    monkeypatch.setattr(safe_read.os, "read", lambda fd, n, real=os.read: read.append(len(chunk := real(fd, n))) or chunk)
    with pytest.raises(DltrainError, match=f"is more than {MAX_CONFIG_BYTES} bytes"):
        read_yaml(big)
    assert sum(read) == MAX_CONFIG_BYTES + 1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    where = tmp_path_factory.mktemp("runs")
    config = where / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "moons", "n_samples": 60}, "model": {"layers": ["auto", 3, 1]},
                                      "training": {"epochs": 4, "checkpoint_every": 2}}))
    assert runner.invoke(app, ["train", str(config), "--run-dir", str(where / "run"), "-q"]).exit_code == 0
    return where / "run"


@pytest.mark.parametrize("name", ["config.yaml", "summary.json", "metrics.json", "history.csv", "model.h5"])
def test_a_run_file_made_a_symlink_to_a_device_is_refused(run_dir, tmp_path, name):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / name).unlink()
    (run / name).symlink_to("/dev/zero")
    summary = json.loads((run_dir / "summary.json").read_text())
    if name != "summary.json":  # an interrupted run, so --resume reads on
        (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    lines = []
    for args in (["reproduce", str(run)], ["train", "--resume", str(run)], ["runs", str(tmp_path)],
                 ["compare", str(run), str(run_dir), "--out", str(tmp_path / "cmp.png")], ["evaluate", str(run)]):
        res = runner.invoke(app, args)
        if res.exit_code == 0:  # a command that does not read this file
            continue
        lines.append(one_line_error(res, res.exit_code))
        assert res.exit_code in (1, 2)
    expected = "not a dltrain run folder" if name == "summary.json" else "is a device, not a regular file"
    assert any(expected in line for line in lines), lines

"""What a new user sees first: -h, --version, and help that names values as command-line tools do."""

import re

from typer.testing import CliRunner

from dltrain import __version__
from dltrain.cli import app
from tests.test_docs import cli_commands

runner = CliRunner()
# typer's raw Python types and its braces around required arguments
RAW_METAVAR = re.compile(r"<(?:bool|str|int|float|path|file|list\[[^>]*\]|(?:int|float) range|\w+(?:\|\w+)+)>|\{\w+\}")


def help_of(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"}, prog_name="dltrain")
    assert result.exit_code == 0, result.output
    return result.output


def test_version():
    for flag in ("--version", "-V"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0
        assert result.output.strip() == f"dltrain {__version__}"


def test_dash_h_is_help_everywhere():
    for path, _ in cli_commands():
        args = path.split()[1:]
        result = runner.invoke(app, [*args, "-h"], env={"COLUMNS": "200"}, prog_name="dltrain")
        assert result.exit_code == 0, (path, result.output)
        assert result.output == help_of(*args)
        assert f"Usage: {path} " in result.output


def test_help_has_no_raw_metavars():
    paths = [path for path, _ in cli_commands()]
    assert {"dltrain", "dltrain train", "dltrain compare", "dltrain config show", "dltrain datasets info"} <= set(paths)
    for path in paths:
        text = help_of(*path.split()[1:])
        assert not RAW_METAVAR.search(text), (path, RAW_METAVAR.search(text).group(), text)
    assert RAW_METAVAR.search("--set <list[str]>") and RAW_METAVAR.search("[OPTIONS] {config}")  # the pattern finds them
    train = help_of("train")
    assert "Usage: dltrain train [OPTIONS] [CONFIG]" in train
    assert re.search(r"--set\s+KEY=VALUE", train) and re.search(r"--run-dir\s+PATH", train)
    assert "Usage: dltrain compare [OPTIONS] RUN_DIRS..." in help_of("compare")
    assert re.search(r"--split\s+\[train\|dev\|test\|all\]", help_of("evaluate"))
    assert not re.search(r"--quiet\s+-q\s+\S+\s+No progress", train)  # a flag takes no value


def test_datasets_info_set_example_is_a_data_key():
    text = help_of("datasets", "info")
    assert "--set data." in text and "optimizer" not in text

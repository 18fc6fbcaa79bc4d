"""The README's quickstart is the contract with a new user and with CI."""

import re

from tests.conftest import REPO


def quickstart_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_has_two_commands_that_need_only_python3():
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    for command in commands:
        # stock Debian/Ubuntu have no `python` and refuse pip outside a venv (PEP 668)
        assert command.startswith("python3 -m venv .venv && .venv/bin/python -m pip install "), command
        assert re.search(r"(^|\s)python\s", command) is None, command
    assert "dltrain train configs/planar.yaml" in commands[0]
    assert commands[1].endswith("-m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert quickstart_commands()[1] in ci

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


# --- Nothing public goes undocumented: config keys, commands and options, run-folder files -------

def documentation() -> str:
    return (REPO / "README.md").read_text() + "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))


def config_keys() -> set[str]:
    """Every field name of the config models, recursively through unions, lists and dicts, and the
    values of the discriminators that select a section's variant (dataset, optimizer and schedule names)."""
    import typing

    from pydantic import BaseModel

    from dltrain.config import Config

    keys, seen = set(), set()

    def walk(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, field in annotation.model_fields.items():
                keys.add(field.alias or name)
                if typing.get_origin(field.annotation) is typing.Literal and name in ("dataset", "name"):
                    keys.update(typing.get_args(field.annotation))
                walk(field.annotation)
        else:
            for arg in typing.get_args(annotation):
                walk(arg)

    walk(Config)
    return keys


def test_every_config_key_is_documented():
    text = documentation()
    keys = config_keys()
    assert {"learning_rate", "beta2", "dev_fraction", "early_stopping", "patience", "adam", "inverse_sqrt", "images"} <= keys
    missing = sorted(k for k in keys if f"`{k}`" not in text and not re.search(rf"\b{re.escape(k)}:", text))
    assert not missing, f"config keys documented nowhere in README.md or docs/*.md: {missing}"


def cli_commands():
    """(command path, its click command) for every command and sub-command of the app."""
    import typer.main

    from dltrain.cli import app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    return list(walk(typer.main.get_command(app), "dltrain"))


def test_every_command_and_option_is_documented():
    text = documentation()
    commands = cli_commands()
    assert len(commands) > 12
    missing = []
    for path, command in commands:
        if path != "dltrain" and f"`{path}" not in text:
            missing.append(path)
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-") and not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text):
                    missing.append(f"{path} {opt}")
    assert not missing, f"commands and options documented nowhere in README.md or docs/*.md: {missing}"


def test_every_run_folder_file_and_column_is_documented(tmp_path):
    """Train and evaluate small runs that write every kind of file (a 2-D run with a dev set, early
    stopping and norms; an image run with a softmax output), then look up each file they wrote,
    each history.csv column and each summary.json key in the docs."""
    import csv
    import json

    import numpy as np

    import dltrain
    from dltrain.commands.checkpoint import CHECKPOINT
    from dltrain.runs import LOCK

    X = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4, 3))
    np.savez(tmp_path / "tiny.npz", x_train=X, y_train=np.arange(30) % 3)
    configs = [
        {"name": "flat", "data": {"dataset": "planar", "dev_fraction": 0.2}, "model": {"layers": ["auto", 3, 1]},
         "regularization": {"early_stopping": {"patience": 2}},
         "training": {"epochs": 4, "log_every": 1, "log_norms": True}},
        {"name": "images", "data": {"dataset": "file", "path": str(tmp_path / "tiny.npz"), "test_fraction": 0.2},
         "model": {"layers": ["auto", 3, 3], "output_activation": "softmax"}, "training": {"epochs": 2}},
    ]
    files, columns, summary_keys = {CHECKPOINT, LOCK}, set(), set()
    for i, cfg in enumerate(configs):
        run = dltrain.train(cfg, run_dir=tmp_path / f"run{i}", progress=False)
        dltrain.evaluate(run.path, errors_csv=tmp_path / f"errors{i}.csv")
        files |= {p.name for p in run.path.iterdir()}
        with open(run.path / "history.csv") as f:
            columns |= set(next(csv.reader(f)))
        summary_keys |= set(json.loads((run.path / "summary.json").read_text()))
    assert {"cost.png", "norms.png", "decision_boundary.png", "misclassified.png", "confusion_matrix.png"} <= files
    text = documentation()
    missing = []
    for name in sorted(files):
        evaluation = re.fullmatch(r"evaluation_(train|dev|test)_(\w+)\.png", name)
        if evaluation:  # documented as the pattern and its kinds
            documented = "`evaluation_<split>_<kind>.png`" in text and f"`{evaluation.group(2)}`" in text
        else:
            documented = f"`{name}`" in text
        if not documented:
            missing.append(name)
    for column in sorted(columns):  # norm_W2 is documented as norm_W1 … norm_WL
        if f"`{column}`" not in text and not re.search(rf"\b{re.sub(r'[0-9]+$', '1', column)}\b", text):
            missing.append(f"history.csv {column}")
    for key in sorted(summary_keys):
        if not re.search(rf"\b{key}\b", text):
            missing.append(f"summary.json {key}")
    assert not missing, f"run-folder files, columns and keys documented nowhere in README.md or docs/*.md: {missing}"


def test_the_readme_tours_every_command():
    tour = (REPO / "README.md").read_text().split("## A tour of the commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", tour, re.S).group(1)
    missing = [path for path, command in cli_commands()
               if path != "dltrain" and not getattr(command, "commands", None) and f"\n{path} " not in f"\n{block}"]
    assert not missing, f"commands without an example in the README's tour: {missing}"
    assert len((REPO / "README.md").read_text().splitlines()) < 150  # the reference lives in docs/


def test_links_between_the_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists and, for a page, a heading on it."""

    def anchors(markdown: str) -> set[str]:
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", markdown, re.M)}

    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in anchors(target.read_text())):
                broken.append(f"{page.relative_to(REPO)}: {link}")
    assert not broken, broken
    assert "(#bias-and-variance)" in (REPO / "docs" / "cli.md").read_text()  # the checker sees in-page links too

"""Dependencies run one way: cli -> commands -> {config, data, runs, plots, progress, engine}; engine -> numpy (numba:
kernels.py). Within commands, build and trained are the
floor, the Run handle sits on evaluate and predict, and train, reproduce and search on top."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dltrain"

# command module -> the command modules it may import
COMMAND_LAYERS = {
    "build": set(),
    "trained": {"build"},
    "datasets": set(),
    "runs": set(),
    "predict": {"trained"},
    "evaluate": {"build", "trained"},
    "gradcheck": {"build"},
    "run": {"build", "trained", "evaluate", "train"},  # train: Run.resume, imported when called
    "checkpoint": {"build"},
    "figures": {"build", "trained", "report"},  # report: imported when a report is written
    "train": {"build", "checkpoint", "trained", "run", "figures"},
    "reproduce": {"train", "trained", "run"},
    "search": {"train", "checkpoint"},
    "export": {"trained"},
    "log": set(),
    "report": {"build", "trained", "runs"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if node.module == "dltrain.commands"}
    return names


def test_import_direction():
    for path in (PKG / "engine").glob("*.py"):
        bad = {n for n in imports(path) if n.split(".")[0] in {"pydantic", "yaml", "typer", "rich", "h5py", "matplotlib", "scipy"}
               or (n.startswith("dltrain") and not n.startswith(("dltrain.engine", "dltrain.errors")))}
        assert not bad, f"{path.name} imports {bad}"
        assert path.name == "kernels.py" or "numba" not in {n.split(".")[0] for n in imports(path)}, f"{path.name}: compiled loops belong in kernels.py"
    for path in (PKG / "config").glob("*.py"):
        assert not {n for n in imports(path) if n.startswith(("dltrain.engine", "dltrain.commands", "numpy"))}, path.name
    for path in [PKG / "cli.py", PKG / "render.py", PKG / "cliapp.py", PKG / "cli_subcommands.py"]:
        assert not {n for n in imports(path) if n.split(".")[0] == "numpy"}, path.name
    assert imports(PKG / "evaluation.py") <= {"numpy"}  # metrics and diagnosis: pure functions of labels
    for path in [*PKG.glob("*.py"), *(PKG / "data").glob("*.py"), *(PKG / "engine").glob("*.py"), *(PKG / "config").glob("*.py")]:
        if path.name not in ("cli.py", "cli_subcommands.py", "__init__.py"):
            assert not {n for n in imports(path) if n.startswith("dltrain.commands")}, f"{path} is below the commands"


def test_commands_import_only_the_layers_below():
    assert {p.stem for p in (PKG / "commands").glob("*.py")} - {"__init__"} == set(COMMAND_LAYERS)
    for name, allowed in COMMAND_LAYERS.items():
        used = {n.split(".")[2] for n in imports(PKG / "commands" / f"{name}.py") if n.startswith("dltrain.commands.")}
        assert used <= allowed, f"commands/{name}.py imports {used - allowed}"


def test_no_module_is_a_hall_of_functions():
    for path in PKG.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, f"{path} has more than 500 lines: split it by concern"


def test_importing_dltrain_loads_no_heavy_module():
    """`import dltrain` is cheap: NumPy, matplotlib, numba, h5py, scipy and pydantic load when first used."""
    code = ("import sys, dltrain; heavy = {'numpy', 'matplotlib', 'numba', 'h5py', 'scipy', 'pydantic', 'rich', 'typer'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_cli_help_loads_no_engine():
    """`dltrain --help`, `runs` and `config show` start without NumPy's engine, matplotlib or h5py."""
    code = ("import sys\nfrom dltrain.cli import app\n"
            "print(sorted({'numpy', 'matplotlib', 'numba', 'h5py', 'scipy'} & {m.split('.')[0] for m in sys.modules}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_commands_that_train_nothing_load_no_engine(tmp_path):
    """Run as a user runs them, `dltrain --help`, `runs` (on real run folders) and `config show` load
    none of NumPy, matplotlib, numba, h5py or scipy: they start in a fraction of a second
    (benchmarks/startup.py measures how long)."""
    import dltrain

    for lr in (1.2, 0.1):
        dltrain.train({"name": f"p{lr}", "data": {"dataset": "planar"}, "model": {"layers": ["auto", 2, 1]},
                       "optimizer": {"learning_rate": lr}, "training": {"epochs": 2}}, runs_dir=tmp_path, progress=False)
    # The command ends in os._exit (dltrain/__main__.py): the modules are listed by an atexit handler, which still runs.
    probe = ("import atexit, io, runpy, sys\nsys.argv = ['dltrain', *sys.argv[1:]]\n"
             "atexit.register(lambda: print(sorted({'numpy', 'matplotlib', 'numba', 'h5py', 'scipy'} & {m.split('.')[0] for m in sys.modules}),\n"
             "                              file=sys.__stdout__, flush=True))\n"
             "sys.stdout = io.StringIO()\n"
             "runpy.run_module('dltrain', run_name='__main__')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(PKG.parent)}
    for args in (["--help"], ["runs", str(tmp_path)], ["config", "show", str(PKG.parent / "configs" / "planar.yaml")]):
        res = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "[]", (args, res.stdout)

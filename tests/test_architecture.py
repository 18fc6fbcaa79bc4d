"""Dependencies run one way: cli -> workflows -> {config, data, runs, plots, engine}; engine -> numpy (numba: kernels.py;
scipy.special's ufuncs: the C library's exp in activations.py)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dltrain"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_import_direction():
    for path in (PKG / "engine").glob("*.py"):
        bad = {n for n in imports(path) if n.split(".")[0] in {"pydantic", "yaml", "typer", "rich", "h5py", "matplotlib"}
               or (n.startswith("dltrain") and not n.startswith(("dltrain.engine", "dltrain.errors")))}
        assert not bad, f"{path.name} imports {bad}"
        assert path.name == "kernels.py" or "numba" not in {n.split(".")[0] for n in imports(path)}, f"{path.name}: compiled loops belong in kernels.py"
        assert {n for n in imports(path) if n.split(".")[0] == "scipy"} <= {"scipy.special"}, f"{path.name}: the engine takes only ufuncs from scipy"
    assert not {n for n in imports(PKG / "config.py") if n.startswith(("dltrain.engine", "numpy"))}
    assert not {n for n in imports(PKG / "cli.py") if n.split(".")[0] == "numpy"}
    assert imports(PKG / "evaluation.py") <= {"numpy"}  # metrics and diagnosis: pure functions of labels

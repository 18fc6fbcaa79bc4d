"""Key paths into a config tree, in the --set syntax: 'model.layers[1]'."""

import re
from typing import Any

from dltrain.errors import DltrainError

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    """'model.layers[1]' -> ['model', 'layers', 1]."""
    parts = [name if name else int(index) for name, index in _PATH_PART.findall(path)]
    if not parts:
        raise DltrainError(f"{path!r}: empty key path", 2)
    return parts


def set_path(tree: dict, path: str, value: Any) -> None:
    """Set tree[a][b][i] = value for path 'a.b[i]', creating mappings on the way."""
    parts = split_path(path)
    node = tree
    for part, nxt in zip(parts, parts[1:]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise DltrainError(f"{path}: no list entry [{part}] there", 2)
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise DltrainError(f"{path}: {part!r} is not inside a mapping", 2)
        if not isinstance(node.get(part), (dict, list)):
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise DltrainError(f"{path}: no list entry [{last}] there", 2)
    elif not isinstance(node, dict):
        raise DltrainError(f"{path}: {last!r} is not inside a mapping", 2)
    node[last] = value


def get_path(tree: Any, path: str) -> Any:
    """tree[a][b][i] for path 'a.b[i]', or None where the path leads nowhere."""
    node = tree
    for part in split_path(path):
        node = child(node, part)
    return node


def path_text(parts: list) -> str:
    """['model', 'layers', 2] -> 'model.layers[2]', the --set syntax."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None

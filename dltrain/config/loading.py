"""Safe loading: YAML files and texts (bounded, no object tags, no duplicate keys), --set overrides, validation.

load_config(path | dict, overrides) -> Config, or DltrainError(exit_code=2) with one line per problem:
the field path, the value received and what is allowed.
"""

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dltrain.config.formatting import format_errors
from dltrain.config.models import Config, DataConfig, DataSection
from dltrain.config.paths import set_path
from dltrain.errors import DltrainError
from dltrain.safe_read import read_text_limited

MAX_CONFIG_BYTES = 1_000_000
# Aliases make a small file stand for a huge tree ("billion laughs"): these bound the tree that
# validation, --set and config.yaml would walk, with every alias expanded.
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 50


def parse_override(text: str) -> tuple[str, Any]:
    """'optimizer.learning_rate=0.01' -> ('optimizer.learning_rate', 0.01); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise DltrainError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. optimizer.learning_rate=0.01", 2)
    try:
        value = safe_tree(raw, f"--set {key.strip()}")
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml(path: Path, what: str = "config file") -> Any:
    """Safely parse a YAML file (no object tags, bounded size), or DltrainError naming the file."""
    text = read_text_limited(Path(path), MAX_CONFIG_BYTES, what, 2)
    try:
        return safe_tree(text, f"{what} {path}")
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DltrainError(f"{what} {path} is not valid YAML{at}: {problem}", 2) from None


class StrictLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (no object tags), except that a key repeated in one mapping is an
    error: YAML forbids it, and PyYAML would silently keep the last value."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if (key_node.tag, key_node.value) in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add((key_node.tag, key_node.value))
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
# PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string; every config writes learning rates that
# way, and validation is strict (no string-to-number coercion), so such exponents are floats here.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def safe_tree(text: str, source: str) -> Any:
    """Parse YAML text as yaml.safe_load does, with the checks it lacks: a duplicate key is a
    yaml.YAMLError like a syntax error; a tree nested deeper than MAX_CONFIG_DEPTH or expanding
    through aliases to more than MAX_CONFIG_NODES values is DltrainError (exit 2) naming `source`.
    Every YAML text dltrain reads (files, --set values, --data mappings) goes through here."""
    loader = StrictLoader(text)
    try:
        tree = loader.get_single_data()
    except RecursionError:
        raise DltrainError(f"{source} nests deeper than {MAX_CONFIG_DEPTH} levels", 2) from None
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        raise DltrainError(f"{source}: {' '.join(str(e).split()[:12])}", 2) from None
    finally:
        loader.dispose()
    if expanded_size(tree, {}, 0, source) > MAX_CONFIG_NODES:
        raise DltrainError(f"{source} expands to more than {MAX_CONFIG_NODES} values (YAML aliases?)", 2)
    return tree


def expanded_size(node: Any, seen: dict, depth: int, source: str) -> int:
    """Keys and values in the tree, counting a node shared through YAML aliases once per use.

    Each shared node is sized once (`seen`, by id), so a billion-laughs file costs only its own
    length to measure (a node that contains itself never gets here: StrictLoader refuses it).
    """
    if not isinstance(node, (dict, list)):
        return 1
    if depth > MAX_CONFIG_DEPTH:
        raise DltrainError(f"{source} nests deeper than {MAX_CONFIG_DEPTH} levels", 2)
    key = id(node)
    if key in seen:
        return seen[key]
    children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
    seen[key] = 1 + sum(expanded_size(child, seen, depth + 1, source) for child in children)
    return seen[key]


def load_tree(path: str | Path, overrides: list[str] = ()) -> dict:
    """The config file's mapping with --set overrides applied, not yet validated."""
    tree = read_yaml(Path(path))
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise DltrainError(f"config file {path}: expected a mapping of keys at the top, got {type(tree).__name__}", 2)
    apply_overrides(tree, overrides)
    return tree


def apply_overrides(tree: dict, overrides: list[str]) -> None:
    """Apply --set KEY.PATH=VALUE texts to tree in place; a bad path is an error naming the option."""
    for text in overrides:
        key, value = parse_override(text)
        try:
            set_path(tree, key, value)
        except DltrainError as e:
            raise DltrainError(f"--set {e}", 2) from None


def load_config(config: "str | Path | dict", overrides: list[str] = ()) -> Config:
    """A config file (read as safe YAML) or a mapping of the same keys, with --set style overrides
    ("optimizer.learning_rate=0.01") applied, validated; DltrainError(exit_code=2) on any problem,
    one line per problem naming the file (or "config" for a mapping), the field, the value and
    what is allowed."""
    if isinstance(config, dict):
        tree = copy.deepcopy(config)  # overrides must not change the caller's dict
        if expanded_size(tree, {}, 0, "config") > MAX_CONFIG_NODES:
            raise DltrainError(f"config has more than {MAX_CONFIG_NODES} values", 2)
        apply_overrides(tree, list(overrides))
        return validate_config(tree, source="config")
    return validate_config(load_tree(config, overrides), source=str(config))


def validate_config(tree: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise DltrainError("\n".join(format_errors(e, source, tree)), 2) from None
    except RecursionError:
        raise DltrainError(f"{source}: the config nests too deeply", 2) from None


def validate_data(tree: dict, source: str = "config") -> DataConfig:
    """Validate {"data": {...}} alone (no model section), with the same one-line-per-problem errors."""
    try:
        return DataSection.model_validate(tree).data
    except ValidationError as e:
        raise DltrainError("\n".join(format_errors(e, source, tree)), 2) from None

"""Validation errors as the user reads them: one line per problem, 'source: field.path: got VALUE; allowed'."""

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from dltrain.config.models import Config
from dltrain.config.paths import child, path_text, split_path


def _models_in(annotation) -> list[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_in(arg)]


_TAGGED_UNIONS = {"data": "dataset", "optimizer": "name", "schedule": "name"}


def _model_at(path: list, tree: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path`, choosing union members by their tag."""
    model, node = Config, tree
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        node = child(node, part)
        candidates = _models_in(field.annotation)
        tag = _TAGGED_UNIONS.get(part) if model is Config else None
        if tag and isinstance(node, dict):
            candidates = [c for c in candidates if node.get(tag) in _literal_values(c.model_fields[tag].annotation)]
        if len(candidates) != 1:
            return None
        model = candidates[0]
    return model


def _literal_values(annotation) -> tuple:
    return getattr(annotation, "__args__", ())


# Errors whose last location part is the key itself (absent, or not allowed), not a value's field.
_KEY_ERRORS = ("missing", "extra_forbidden")


def _user_path(err: dict, tree: Any) -> tuple[list, int | None]:
    """The error's location as the user's key path, and where in it a union branch was dropped.

    pydantic puts what it tried into the location: a discriminated member's tag ('optimizer',
    'adam', 'beta2'), a plain union's branch ('keep_prob', 'float'), a dict key's '[key]'. None of
    these is a key the user wrote, so a part is kept only when it is a key of the mapping (or an
    index of the list) the user wrote there, or the missing or unknown key itself. A field_error's
    path is appended. Returns (parts, position of the last dropped part or None).
    """
    parts, node, branch = [], tree, None
    loc = err["loc"]
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            is_key = part in node or (i == len(loc) - 1 and err["type"] in _KEY_ERRORS)
        else:
            is_key = isinstance(node, list) and isinstance(part, int)
        if not is_key:
            branch = len(parts)
            continue
        parts.append(part)
        node = child(node, part)
    if err["type"] == "field" and err["ctx"]["field"]:
        parts += split_path(err["ctx"]["field"])
    return parts, branch


def format_errors(error: ValidationError, source: str, tree: Any) -> list[str]:
    """One line per problem: 'source: field.path: got VALUE; what is allowed'."""
    located = [(err, *_user_path(err, tree)) for err in error.errors()]
    unions: dict[tuple, list] = {}
    for err, parts, branch in located:
        if branch is not None:
            unions.setdefault(tuple(parts[:branch]), []).append((err, parts))
    lines = []
    for err, parts, branch in located:
        loc = path_text(parts)
        if branch is not None:
            # A value no branch of a union accepts gets one error per branch. A branch that got inside
            # the value (a list with one wrong item) names the real problem; else one line lists the branches.
            union = unions[tuple(parts[:branch])]
            if any(len(p) > branch for _, p in union):
                if len(parts) == branch:
                    continue
            elif len(union) > 1:
                if err is union[0][0]:
                    allowed = " or ".join(dict.fromkeys(e["msg"].removeprefix("Input should be ") for e, _ in union))
                    lines.append(f"{source}: {loc}: got {short(err.get('input'))}; allowed: {allowed}")
                continue
        if err["type"] == "extra_forbidden":
            key = str(parts[-1])
            parent = _model_at(parts[:-1], tree)
            allowed = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{source}: {loc}: unknown key{listed}{hint}")
            continue
        if err["type"] in ("literal_error", "union_tag_invalid"):
            expected = err.get("ctx", {}).get("expected", "") or err.get("ctx", {}).get("expected_tags", "")
            options = re.findall(r"'([^']*)'", expected)
            tag = err.get("ctx", {}).get("tag", err.get("input"))
            close = difflib.get_close_matches(str(tag), options, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            if err["type"] == "union_tag_invalid":  # pydantic locates it at the section; the key is its tag
                loc = path_text([*parts, err["ctx"]["discriminator"].strip("'")])
            lines.append(f"{source}: {loc}: got {short(tag)}; allowed: {', '.join(options)}{hint}")
            continue
        if err["type"] == "missing":
            lines.append(f"{source}: {loc}: required key is missing")
            continue
        if err["type"] == "field" and "got" not in err["ctx"]:
            lines.append(f"{source}: {loc}: {err['msg']}")
            continue
        got = err["ctx"]["got"] if err["type"] == "field" else err.get("input")
        lines.append(f"{source}: {loc}: got {short(got)}; {err['msg'].removeprefix('Value error, ')}")
    return lines


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

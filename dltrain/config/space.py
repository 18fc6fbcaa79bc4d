"""Search space files (dltrain search): config key path -> distribution, sampled on its scale."""

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, model_validator

from dltrain.config.formatting import short
from dltrain.config.loading import read_yaml, safe_tree
from dltrain.config.models import Strict
from dltrain.errors import DltrainError


class Range(Strict):
    """A numeric range [low, high] that `dltrain search` samples on the scale its kind names."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    def spec(self) -> str:
        return f"{self.kind}({self.low!r}, {self.high!r})"

    def problem(self) -> str | None:
        return None if self.low < self.high else f"{self.kind}(a, b) needs a < b, got {self.spec()}"

    @model_validator(mode="after")
    def _check(self):
        if (problem := self.problem()) is not None:
            raise ValueError(problem)
        return self


class Uniform(Range):
    kind: Literal["uniform"]


class IntRange(Range):
    kind: Literal["int"]
    low: int
    high: int


class LogRange(Range):
    kind: Literal["log"]

    def problem(self) -> str | None:
        if self.low <= 0:
            return f"log(a, b) samples log10 of the value, so it needs 0 < a < b, got {self.spec()}"
        return super().problem()


class OneMinusLogRange(Range):
    kind: Literal["one_minus_log"]

    def problem(self) -> str | None:
        if not 0 < self.low < 1 or not 0 < self.high < 1:
            return f"one_minus_log(a, b) samples log10(1 - value), so it needs 0 < a < b < 1, got {self.spec()}"
        return super().problem()


class Choice(Strict):
    kind: Literal["choice"]
    options: list[Any] = Field(min_length=1)

    def spec(self) -> str:
        return f"choice({yaml.safe_dump(self.options, default_flow_style=True, width=10**9).strip()})"


_DISTRIBUTION = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.DOTALL)


def parse_distribution(value: Any) -> Any:
    """'log(1e-4, 1)' -> {'kind': 'log', 'low': '1e-4', 'high': 1}; the arguments are read as a YAML list, never evaluated."""
    kinds = ["uniform", "int", "log", "one_minus_log", "choice"]
    match = _DISTRIBUTION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"got {short(value)}; expected a distribution such as log(1e-4, 1) or choice([relu, tanh])")
    kind, inner = match.groups()
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1)
        raise ValueError(f"unknown distribution {kind!r}; allowed: {', '.join(kinds)}" + (f"; did you mean '{close[0]}'?" if close else ""))
    try:
        args = safe_tree(f"[{inner}]", f"the arguments of {value!r}")
    except (yaml.YAMLError, DltrainError):
        raise ValueError(f"cannot read the arguments of {value!r} (they are read as a YAML list)") from None
    if kind == "choice":
        if len(args) != 1 or not isinstance(args[0], list):
            raise ValueError(f"choice takes one list, e.g. choice([relu, tanh]), got {value!r}")
        return {"kind": kind, "options": args[0]}
    if len(args) != 2:
        raise ValueError(f"{kind} takes two numbers, {kind}(a, b), got {value!r}")
    return {"kind": kind, "low": args[0], "high": args[1]}


Distribution = Annotated[
    Uniform | IntRange | LogRange | OneMinusLogRange | Choice, Field(discriminator="kind"), BeforeValidator(parse_distribution)
]
_DISTRIBUTION_ADAPTER = TypeAdapter(Distribution)


def load_space(space: "str | Path | dict", problems: list[str] | None = None) -> dict[str, Distribution]:
    """A search space file (or a mapping of the same entries): config key path -> distribution such
    as 'log(1e-4, 1)', in order; DltrainError(exit_code=2) with one line per problem, every entry's.
    Given a `problems` list, entries with a problem are left out and their lines appended to it instead,
    so the caller can report them together with its own checks of the rest.

    Whether each key path exists in the config is checked against the base config (commands.search).
    """
    if isinstance(space, dict) and space and all(isinstance(d, (Range, Choice)) for d in space.values()):
        return dict(space)  # already validated (a load_space result)
    path, tree = ("space", space) if isinstance(space, dict) else (space, read_yaml(Path(space), "space file"))
    if not isinstance(tree, dict) or not tree:
        raise DltrainError(
            f"space file {path}: expected a mapping of config key paths to distributions, e.g. 'optimizer.learning_rate: log(1e-4, 1)'", 2
        )
    not_paths = [repr(k) for k in tree if not isinstance(k, str)]
    if not_paths:
        raise DltrainError(f"space file {path}: keys must be config key paths such as model.layers[1], got {', '.join(not_paths)}", 2)
    parsed, lines = {}, []
    for key, value in tree.items():
        try:
            parsed[key] = _DISTRIBUTION_ADAPTER.validate_python(value)
        except ValidationError as e:
            for err in e.errors():
                fields = [str(p) for p in err["loc"][1:]]
                msg = err["msg"].removeprefix("Value error, ")
                if fields and err["type"] == "extra_forbidden":
                    lines.append(f"{path}: {key}: unexpected argument {fields[-1]!r}")
                elif fields:
                    lines.append(f"{path}: {key}: {err['loc'][0]} {'.'.join(fields)}: got {short(err.get('input'))}; {msg}")
                else:
                    lines.append(f"{path}: {key}: {msg}")
    if problems is not None:
        problems += lines
    elif lines:
        raise DltrainError("\n".join(lines), 2)
    return parsed

"""typer.Typer whose help names values the way command-line tools do: CONFIG, PATH, INTEGER, KEY=VALUE,
[a|b], nothing for a flag. typer >= 0.2x prints its raw Python types instead (<bool>, <list[str]>, <path>)
and braces around required arguments ({config})."""

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup


def _plain_metavars(params: list) -> list:
    """Help names values the way command-line tools do (CONFIG, PATH, INTEGER, KEY=VALUE, [a|b]), not
    with typer's raw Python types (<bool>, <list[str]>, <path>) or its braces for required arguments ({config})."""
    for param in params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
            if param.metavar is None:
                param.metavar = param.name.upper()
        elif param.metavar is None:
            if getattr(param, "is_flag", False):
                param.metavar = ""  # a flag takes no value
            else:
                param.metavar = _value_metavar(param)
    return params


def _value_metavar(param) -> str:
    """[a|b] for a choice, else PATH, INTEGER, FLOAT or TEXT, from typer's type descriptor (typer >= 0.2x)
    or click's param type (older typer)."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        choices, name = getattr(param.type, "choices", None), param.type.name
    else:
        choices = desc.choices
        name = "path" if desc.is_path else getattr(desc.annotation, "__name__", "text")
    if choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
    return {"int": "INTEGER", "integer range": "INTEGER", "float range": "FLOAT", "str": "TEXT"}.get(name, name.upper())


class _Argument(TyperArgument):
    def display_type_rich(self, ctx):  # the name column already says CONFIG
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar if self.required else f"[{self.metavar}]"
        return name + ("..." if self.nargs != 1 else "")


class _Command(TyperCommand):
    def get_params(self, ctx):
        return _plain_metavars(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx):
        return _plain_metavars(super().get_params(ctx))


class Typer(typer.Typer):
    """typer.Typer whose groups and commands print plain metavars in their help."""

    def __init__(self, **kwargs):
        super().__init__(cls=_Group, **kwargs)

    def command(self, name=None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or _Command, **kwargs)

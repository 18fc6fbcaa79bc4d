"""The CLI's plumbing: the --set option, printing a DltrainError and exiting with its code, and a
typer.Typer whose help names values the way command-line tools do: CONFIG, PATH, INTEGER, KEY=VALUE,
[a|b], nothing for a flag. typer >= 0.2x prints its raw Python types instead (<bool>, <list[str]>, <path>)
and braces around required arguments ({config})."""

from pathlib import Path

import typer
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup

from dltrain.errors import DltrainError, Interrupted
from dltrain.render import err, out


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


SetOption = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a config key: --set optimizer.learning_rate=0.01 (repeatable).")


def fail(e: DltrainError) -> None:
    for line in str(e).splitlines():
        # Text, not markup: the message quotes user input ("[/bold].yaml"), which must print as given.
        err.print(Text.assemble(("error:", "red"), f" {line}"), soft_wrap=True)
    raise typer.Exit(e.exit_code)


def load(config: Path, overrides: list[str] | None):
    from dltrain.config import load_config

    return load_config(config, overrides or [])


def call(run):
    """run() with training's failures mapped to exit codes: interrupted 130, errors their own code."""
    try:
        return run()
    except Interrupted as e:
        err.print(str(e), soft_wrap=True, markup=False)
        if e.run_dir is not None:  # the last line is the run folder, as after a finished run
            out.print(str(e.run_dir), soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # a second Ctrl-C before or after the training loop
        err.print("aborted", soft_wrap=True)
        raise typer.Exit(130) from None
    except DltrainError as e:
        fail(e)
    except MemoryError:
        fail(DltrainError("out of memory: use fewer or smaller layers, a smaller training.batch_size, or less data"))

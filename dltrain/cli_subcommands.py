"""`dltrain config` and `dltrain datasets`: the CLI's command groups (registered on the app by cli.py)."""

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dltrain.cliapp import SetOption, Typer, fail, load
from dltrain.errors import DltrainError
from dltrain.render import CheckProgress, counts_table, out

config_app = Typer(help="Inspect configs: the resolved values and the JSON Schema.", no_args_is_help=True)
datasets_app = Typer(help="The datasets: what is available, what a data section loads, image-folder import.", no_args_is_help=True)


@config_app.command("show")
def config_show(config: Path = typer.Argument(..., help="YAML config file."), set_: Optional[list[str]] = SetOption):
    """Print the config with every default filled in, as the run folder records it."""
    try:
        cfg = load(config, set_)
    except DltrainError as e:
        fail(e)
    import yaml

    out.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="", soft_wrap=True)


@config_app.command("schema")
def config_schema():
    """Print the JSON Schema of config files (for editors and validators)."""
    from dltrain.config import Config

    out.print(json.dumps(Config.model_json_schema(), indent=2), soft_wrap=True)


@datasets_app.command("list")
def datasets_list(data_dir: Path = typer.Option(Path("datasets"), "--dir", help="Folder the course files are looked for in.")):
    """The known datasets, the data: keys that select them, and whether their files are in --dir."""
    table = Table(title=f"datasets (files looked for in {data_dir.resolve()})")
    for col in ("name", "config", "files"):
        table.add_column(col, overflow="fold")
    from dltrain.commands.datasets import list_datasets

    for entry in list_datasets(data_dir):
        files = ", ".join(f"{p.name} {'[green]found[/green]' if ok else '[red]missing[/red]'}" for p, ok in entry.files)
        table.add_row(entry.name, entry.select, files or "-")
    out.print(table)


@datasets_app.command("info")
def datasets_info(
    spec: str = typer.Argument(..., metavar="SPEC", help="A YAML config file, or a dataset name (cat, signs, moons, ...)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                             help="Fill in or override a data key: --set data.dev_fraction=0.1 (repeatable)."),
):
    """Shapes, classes and examples per class in each split, carved as `train` would carve them."""
    try:
        from dltrain.commands.datasets import dataset_info

        info = dataset_info(spec, set_ or [])
    except DltrainError as e:
        fail(e)
    shape = f" (images {'x'.join(map(str, info.image_shape))})" if info.image_shape else ""
    out.print(f"dataset {info.dataset}: {info.n_x} features{shape}, {len(info.classes)} classes, "
              f"raw train values {info.value_range[0]:g} .. {info.value_range[1]:g}", soft_wrap=True, markup=False)
    out.print(counts_table(info.counts, info.classes))


class OnError(str, Enum):
    stop = "stop"
    skip = "skip"


class Compression(str, Enum):
    none = "none"
    gzip = "gzip"
    lzf = "lzf"


@datasets_app.command("import")
def datasets_import(
    folder: Path = typer.Argument(..., help="Folder with one sub-folder of .jpg/.png images per class."),
    output: Path = typer.Argument(..., help="The .h5 file to write (must not exist)."),
    size: int = typer.Option(64, "--size", min=1, max=4096, help="Resize every image to SIZE x SIZE pixels."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.0, max=0.99, help="Share of images held out as test (stratified)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the test split."),
    on_error: OnError = typer.Option(OnError.stop, "--on-error", help="An unreadable image stops the import (no file written), "
                                                                     "or is skipped: left out with its label, and named."),
    compression: Compression = typer.Option(Compression.none, "--compression", help="How the images are stored: none (contiguous, "
                                            "the fastest to read), gzip (level 4, 20-33% smaller for photos) or lzf."),
):
    """Turn a folder of class sub-folders of images into an h5 file in the course layout (train with dataset: images)."""
    try:
        from dltrain.data.images import import_image_folder

        bar = CheckProgress(True, "import", "images")
        try:
            result = import_image_folder(folder, output, size, test_fraction, seed, progress=bar, on_error=on_error.value,
                                         compression=compression.value)
        finally:
            bar.close()
    except DltrainError as e:
        fail(e)
    out.print(counts_table(result.counts, result.classes, f"{result.out}: {'x'.join(map(str, result.image_shape))} RGB uint8"))
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} unreadable image{'s' if len(result.skipped) > 1 else ''} (left out with their labels):",
                  soft_wrap=True, markup=False)
        for e in result.skipped:
            out.print(f"  {e.path}: {e.reason}", soft_wrap=True, markup=False)

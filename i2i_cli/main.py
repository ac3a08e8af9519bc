"""The `i2i` command: one sub-module per command under i2i_cli/commands, each with register(app)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from i2i_cli import __version__
from i2i_cli.cli import OneLineUsageErrors

app = typer.Typer(
    name="i2i",
    cls=OneLineUsageErrors,
    help="Image-to-image translation: train GAN translators, translate folders, export to ONNX, evaluate, analyse.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Each module registers its command(s); the order is the order of `i2i --help`.
COMMAND_MODULES: list[str] = [
    "demo",
    "train",
    "translate",
    "export",
    "eval",
    "errormap",
    "data",
    "methods",
    "weights",
    "pretrained",
    "hub",
    "bench",
    "serve",
    "app",
    "reproduce",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"i2i {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Image-to-image translation from the command line."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"i2i_cli.commands.{_name}").register(app)


def main() -> None:
    from i2i_cli.cli import quiet_library_warnings

    quiet_library_warnings()
    app()


if __name__ == "__main__":
    main()

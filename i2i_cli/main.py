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


def _check_models_package() -> None:
    """`models` is a common name: make sure the one imported is ours, not a reference repo's on the path."""
    import sys

    try:
        models = importlib.import_module("models")
    except ImportError:
        return
    if getattr(models, "I2I_MODELS_MARKER", None) != "i2i.models":
        location = getattr(models, "__file__", None) or list(getattr(models, "__path__", []))
        sys.stderr.write(
            f"error: another 'models' package shadows i2i's: {location}; remove its folder from PYTHONPATH "
            "or run i2i from another directory\n"
        )
        raise SystemExit(2)


for _name in COMMAND_MODULES:
    importlib.import_module(f"i2i_cli.commands.{_name}").register(app)


def main() -> None:
    from i2i_cli.cli import quiet_library_warnings

    quiet_library_warnings()
    _check_models_package()
    app()


if __name__ == "__main__":
    main()

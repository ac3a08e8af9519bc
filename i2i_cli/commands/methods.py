"""`i2i methods`: list the registered methods, or show one's defaults with its paper."""

from __future__ import annotations

from typing import Annotated

import typer

from i2i_cli.cli import console, handle_errors, print_table

methods_app = typer.Typer(help="The translation methods and their defaults.", invoke_without_command=True)


def method_rows() -> list[tuple[str, str, str]]:
    from i2i_cli.models import registry

    rows = []
    for name in registry.list_methods():
        cls = registry.method_class(name)
        rows.append((name, cls.accepts[0], cls.summary))
    return rows


@methods_app.callback()
@handle_errors
def list_methods(ctx: typer.Context) -> None:
    """List every method with its data layout and a line on what it is."""
    if ctx.invoked_subcommand is None:
        print_table("methods (i2i methods show NAME for defaults)", ["method", "data layout", "what it is"], method_rows())


@methods_app.command("show")
@handle_errors
def show(name: Annotated[str, typer.Argument(help="Method name.")],
         json_out: Annotated[bool | None, typer.Option("--json", help="Print the defaults as JSON.")] = False) -> None:
    """Print a method's default options (the paper's / official code's) and its reference."""

    from i2i_cli.errors import ConfigError
    from i2i_cli.models import registry
    from i2i_cli.models.option_help import option_help

    try:
        cls = registry.method_class(name)
    except KeyError:
        import difflib

        known = registry.list_methods()
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown method '{name}'; {hint}known: {', '.join(known)}") from None
    defaults = cls.config_class()
    helps = option_help(cls.config_class)
    if json_out:
        from i2i_cli.cli import dump_json_stdout

        dump_json_stdout({"method": name, "paper": cls.paper, "code": cls.code,
                          "defaults": {f.name: getattr(defaults, f.name) for f in defaults.options()},
                          "help": {f.name: helps.get(f.name, "") for f in defaults.options()}})
        return
    console.print(f"[bold]{name}[/]: {cls.summary}")
    console.print(f"paper: {cls.paper}")
    if cls.code:
        console.print(f"official code: {cls.code}")
    console.print(f"data layout: {cls.accepts[0]}; override any option with --set key=value or --config FILE.toml")
    print_table(f"{name} defaults", ["option", "default", "what it does"],
                [(f.name, getattr(defaults, f.name), helps.get(f.name, "")) for f in defaults.options()])


def register(app: typer.Typer) -> None:
    app.add_typer(methods_app, name="methods", help="List the methods; `i2i methods show M` prints M's defaults.")

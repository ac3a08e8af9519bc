"""`i2i weights`: the pretrained networks i2i can use: list, download, path, verify."""

from __future__ import annotations

from typing import Annotated

import typer

from i2i_cli.cli import console, handle_errors, print_records, print_table, progress_bar

weights_app = typer.Typer(help="Pretrained weights: list, download, path, verify.", no_args_is_help=True)


@weights_app.command("list")
@handle_errors
def list_weights() -> None:
    """Every pretrained network: file, where it is (override folder, cache, or missing), URL."""
    from i2i_cli.weights import REGISTRY, cache_dir, status, torch_cache_dir

    records = []
    for name, e in REGISTRY.items():
        where, path = status(name)
        records.append((name, [("file", e.filename), ("status", where if path is None else f"{where}: {path}"),
                               ("sha256", e.sha256 or "unpublished"), ("url", e.url), ("use", e.purpose)]))
    print_records(f"weights (cache: {cache_dir()}; also read from {torch_cache_dir()}; override folder: "
                  "I2I_WEIGHTS_DIR)", records)


@weights_app.command("download")
@handle_errors
def download(name: Annotated[str, typer.Argument(help="Weights name (see `i2i weights list`).")]) -> None:
    """Download (resumable, hash-checked) into the cache."""
    from i2i_cli.weights import resolve

    with progress_bar(f"download {name}", None) as advance:
        resolved = resolve(name, progress=lambda done, total: advance(0, completed=done, total=total))
    console.print(f"{name}: {resolved.path} ({resolved.source}, {'verified' if resolved.verified else resolved.note})")


@weights_app.command("path")
@handle_errors
def path(name: Annotated[str, typer.Argument(help="Weights name.")]) -> None:
    """Print where the file is (without downloading); exit 1 if missing."""
    from i2i_cli.weights import entry, missing_message, status

    where, found = status(name)
    if found is None:
        typer.echo(missing_message(entry(name)), err=True)
        raise typer.Exit(1)
    typer.echo(str(found))  # plain, for scripts: $(i2i weights path vgg16)


@weights_app.command("verify")
@handle_errors
def verify() -> None:
    """Hash every present file and compare with the published hash."""
    from i2i_cli.weights import REGISTRY, resolve, status

    rows, failed = [], False
    for name in REGISTRY:
        where, found = status(name)
        if found is None:
            rows.append((name, "missing", ""))
            continue
        resolved = resolve(name, allow_download=False)
        rows.append((name, "verified" if resolved.verified else "UNVERIFIED", resolved.note or resolved.sha256[:16]))
        failed |= not resolved.verified and "differs" in resolved.note
    print_table("weights verification", ["name", "status", "detail"], rows)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights", help="Pretrained weights: list, download, path, verify.")

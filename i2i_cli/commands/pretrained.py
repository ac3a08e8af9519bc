"""`i2i pretrained`: the released checkpoints of the reference implementations, as i2i runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import (
    console,
    handle_errors,
    json_option,
    parse_csv,
    print_records,
    progress_bar,
    write_json,
)

pretrained_app = typer.Typer(help="Released checkpoints: list, get, import.", no_args_is_help=True)


@pretrained_app.command("list")
@handle_errors
def list_pretrained(
    json_out: Annotated[Path | None, json_option("Write the list (with URLs) as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """The released checkpoints i2i can load: the method each maps to, what it translates, licence, source."""
    from i2i_cli.pretrained import PRETRAINED

    print_records("released checkpoints (i2i pretrained get NAME)",
                  [(p.name, [("method", p.method), ("translates", p.translates), ("licence", p.licence),
                             ("url", p.url), *([("note", p.note)] if p.note else []),
                             *([("get", "import only: download it, then `i2i pretrained import FILE --as "
                                 f"{p.method}`")] if p.import_only else [])])
                   for p in PRETRAINED.values()])
    if json_out:
        write_json(json_out, [{"name": p.name, "method": p.method, "url": p.url, "member": p.member,
                               "translates": p.translates, "licence": p.licence, "config": p.config,
                               "domains": list(p.domains), "sha256": p.sha256 or None, "import_only": p.import_only,
                               "note": p.note} for p in PRETRAINED.values()])


@pretrained_app.command("get")
@handle_errors
def get(name: Annotated[str, typer.Argument(help="Name from `i2i pretrained list`.")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/NAME).")] = None) -> None:
    """Download (resumable) and convert into a run folder that translate/export/eval take."""
    from i2i_cli.pretrained import get as get_pretrained

    with progress_bar(f"download {name}", None) as advance:
        run = get_pretrained(name, out, progress=lambda done, total: advance(0, completed=done, total=total))
    console.print(f"run: {run}. Next: i2i translate --checkpoint {run} IN/ OUT/")


@pretrained_app.command("import")
@handle_errors
def import_(file: Annotated[Path, typer.Argument(help="An official checkpoint file (.pth / .ckpt).")],
            as_: Annotated[str, typer.Option("--as", help="The method it belongs to (pix2pix, cyclegan, cut, starganv2...).")],
            out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
            set_: Annotated[list[str] | None, typer.Option("--set", help="Options of the release, e.g. ngf=64.")] = None,
            domains: Annotated[str | None, typer.Option(help="Multi-domain: comma-separated domain names, in order.")] = None) -> None:
    """Convert a local official checkpoint into an i2i run folder (strict key mapping)."""
    from i2i_cli.pretrained import import_file

    run = import_file(file, as_, out, set_ or [], parse_csv(domains) or None)
    console.print(f"run: {run}. Next: i2i translate --checkpoint {run} IN/ OUT/")


def register(app: typer.Typer) -> None:
    app.add_typer(pretrained_app, name="pretrained", help="Released checkpoints of the papers: list, get, import.")

"""`i2i data download`: the standard datasets of the papers, downloaded, verified and laid out for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import console, handle_errors, json_option, print_table, progress_bar, warn, write_json


@handle_errors
def download(
    name: Annotated[str | None, typer.Argument(help="Dataset name (see --list).")] = None,
    root: Annotated[Path, typer.Option(help="Folder to put the dataset in (as ROOT/NAME).")] = Path("datasets"),
    list_: Annotated[bool, typer.Option("--list", help="List the datasets that can be downloaded.")] = False,
    url: Annotated[str | None, typer.Option(help="Download from this mirror instead of the registry's URL.")] = None,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="Keep ROOT/NAME.zip|tar.gz after extracting.")] = False,
    json_out: Annotated[Path | None, json_option("Write the result (or the list) as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Download a standard dataset (resumable), record its sha256, extract it safely, lay it out for `i2i train --data`."""
    from i2i_cli.datasets_download import DATASETS, download_dataset

    if list_ or name is None:
        rows = [(e.name, e.layout, e.paper, e.licence, "manual steps" if e.manual else e.url) for e in DATASETS.values()]
        print_table("datasets (i2i data download NAME)", ["name", "layout", "licence", "source"],
                    [(r[0], r[1], r[3], r[4]) for r in rows])
        if json_out:
            write_json(json_out, [dict(zip(("name", "layout", "paper", "licence", "source"), r, strict=True)) for r in rows])
        return
    with progress_bar(f"download {name}", None) as advance:
        result = download_dataset(name, root, url=url, keep_archive=keep_archive, notice=warn,
                                  progress=lambda done, total: advance(0, completed=done, total=total))
    print_table(f"{result.name} in {result.root} ({result.detected} layout)", ["split", "group", "images"],
                [(s, g, n) for s, groups in result.counts.items() for g, n in groups.items()])
    console.print(f"archive sha256 {result.sha256} (recorded in {result.root}/.i2i-source.json; none is published)")
    if result.detected != result.layout:
        warn(f"{result.root}: expected a {result.layout} layout, found {result.detected}; check the folder with "
             f"`i2i data check {result.root}`")
    else:
        console.print(f"Next: i2i train --data {result.root}")
    if json_out:
        write_json(json_out, {"name": result.name, "root": str(result.root), "sha256": result.sha256,
                              "layout": result.detected, "counts": result.counts})


def add_download_commands(data_app: typer.Typer) -> None:
    """Register `download` on the lead's `i2i data` group (one line in commands/data.py)."""
    data_app.command("download")(download)

"""`i2i reproduce list | NAME`: a paper's table in one command (download, train, evaluate as the paper did)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from i2i_cli.cli import (
    console,
    device_option,
    fail,
    handle_errors,
    info,
    json_option,
    print_table,
    write_json,
)


@handle_errors
def reproduce(
    name: Annotated[str, typer.Argument(help="A recipe (see `i2i reproduce list`), a recipe .toml file, or list.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the data, the runs and results.json / results.md (default: reproduce/NAME).")] = None,
    scale: Annotated[float, typer.Option(help="Fraction of every schedule (0.01: a 1% smoke test on the same data).")] = 1.0,
    seeds: Annotated[int, typer.Option(help="Training seeds per row; the table shows their mean and spread.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and its estimated GPU time; train nothing.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Use this dataset folder instead of downloading (needed for Cityscapes).")] = None,
    data_url: Annotated[str | None, typer.Option("--data-url", help="Download the dataset from this mirror instead of the registry's URL.")] = None,
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files (Inception, LPIPS, VGG16, DRN...), as I2I_WEIGHTS_DIR.")] = None,
    json_out: Annotated[Path | None, json_option("Write the table (or the list / plan) as JSON")] = None,
) -> None:
    """Reproduce a paper's table: train each row as the paper did, evaluate with its protocol, print published vs reproduced."""
    from i2i_cli.fsutil import check_output_file, check_output_folder

    if json_out is not None:
        check_output_file(json_out, "--json")
    if name == "list":
        return _list(json_out)
    if not 0 < scale <= 1:
        raise fail(f"--scale {scale}: give a fraction in (0, 1], e.g. 0.01 for a smoke test")
    from i2i_cli.reproduce import ReproduceOptions, check_recipe, load_recipe

    recipe = load_recipe(name)
    check_recipe(recipe)
    out = out or Path("reproduce") / recipe.name
    options = ReproduceOptions(out=out, scale=scale, seeds=seeds, data=data, data_url=data_url, device=device,
                               weights_dir=weights_dir)
    if dry_run:
        return _dry_run(recipe, options, json_out)
    check_output_folder(out, "--out")
    from i2i_cli.reproduce import reproduce as run_recipe

    summary = run_recipe(recipe, options, info)
    _print_table(summary)
    console.print(f"results: {out / 'results.md'} and {out / 'results.json'}")
    if json_out:
        write_json(json_out, summary)


def _list(json_out: Path | None) -> None:
    from i2i_cli.reproduce import load_recipe, recipe_names

    recipes = [load_recipe(n) for n in recipe_names()]
    print_table("recipes (i2i reproduce NAME; --dry-run shows one's plan)",
                ["name", "dataset", "rows", "published numbers", "GPU hours"],
                [(r.name, r.dataset, len(r.rows), sum(len(row.published) for row in r.rows), f"{r.gpu_hours:g}")
                 for r in recipes])
    if json_out:
        write_json(json_out, [{"name": r.name, "title": r.title, "dataset": r.dataset, "gpu_hours": r.gpu_hours,
                               "rows": [row.name for row in r.rows]} for r in recipes])


def _dry_run(recipe: Any, options: Any, json_out: Path | None) -> None:
    from i2i_cli.reproduce import estimated_gpu_hours, plan

    rows = plan(recipe, options)
    print_table(f"{recipe.name}: {recipe.title}", ["row", "method", "schedule", "options"],
                [(r.row, r.method, r.schedule, ", ".join(f"{k}={v}" for k, v in r.options.items()) or "paper's")
                 for r in rows])
    p = recipe.protocol
    console.print(f"protocol: {', '.join(p.keys)}; FID mode {p.mode}; {p.select} checkpoint"
                  + (f" (evaluated every {p.eval_every})" if p.eval_every else "")
                  + (f"; {p.eval_seeds} evaluation seeds" if p.eval_seeds > 1 else "") + f". {p.note}")
    hours = estimated_gpu_hours(recipe, options)
    console.print(f"estimated GPU time: {hours:.3g} h at --scale {options.scale:g} x {options.seeds} seed(s) "
                  f"({recipe.gpu_hours_note})")
    if json_out:
        write_json(json_out, {"recipe": recipe.name, "rows": [r.__dict__ for r in rows], "gpu_hours": hours})


def _print_table(summary: dict[str, Any]) -> None:
    from i2i_cli.reproduce.runner import format_spreads, format_value

    print_table(f"{summary['title']} (scale {summary['scale']:g}, {summary['seeds']} seed(s))",
                ["row", "value", "published", "reproduced", "diff / spread", "checkpoint"],
                [(r["row"], r["key"], format_value(r["published"], r["published_spread"]),
                  format_value(r["reproduced"], r["reproduced_spread"]), format_spreads(r["difference_in_spreads"]),
                  r["checkpoint"]) for r in summary["rows"]])


def register(app: typer.Typer) -> None:
    app.command("reproduce", help="Reproduce a paper's table in one command (`i2i reproduce list`).")(reproduce)

"""`i2i errormap`: per-pixel error maps of content losses, aligned vs misaligned (F-LSeSim's analysis)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import (
    console,
    device_option,
    existing_path,
    handle_errors,
    json_option,
    parse_csv,
    print_problems,
    print_table,
    progress_bar,
    write_json,
)


@handle_errors
def errormap(
    x: Annotated[Path | None, typer.Argument(help="Source image (e.g. a label map).", callback=existing_path("image", "pass the source image"))] = None,
    y: Annotated[Path | None, typer.Argument(help="Target image (e.g. the matching photo).", callback=existing_path("image", "pass the target image"))] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Figure to write (PNG); with --pairs, a folder of one figure per pair.")] = None,
    json_out: Annotated[Path | None, json_option("Write every number as JSON")] = None,
    losses: Annotated[str | None, typer.Option(help="Comma-separated: l1, perceptual, patchnce, fsesim, lsesim (default: all that apply).")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="An lsesim run (learned head) or a cut/fastcut run (its PatchNCE).")] = None,
    misalign: Annotated[str, typer.Option(help="half: the target's right half shifted by a quarter width (or --other's); other (--pairs): the next pair's right half; none.")] = "half",
    other: Annotated[Path | None, typer.Option(help="Take the misaligned right half from this image instead of a shift.")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="Folder of pairs: x/ and y/ (same names), or A|B images.", callback=existing_path("folder", "pass a folder with x/ and y/ (same names) or A|B images"))] = None,
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files (VGG16).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing figure (and an existing --json file).")] = False,
) -> None:
    """Error map per loss between X and Y, upsampled to the image size, with the aligned/misaligned separation."""
    from i2i_cli.data.images import load_image, save_image
    from i2i_cli.engine.device import resolve_device
    from i2i_cli.errormap import analyse_folder, analyse_pair, build_mappers, figure
    from i2i_cli.errors import ConfigError

    device = str(resolve_device(device))
    context = {"device": device, "weights_dir": weights_dir, "checkpoint": checkpoint}
    names = parse_csv(losses) or ["l1", "perceptual", "patchnce", "fsesim"]
    if losses is None and checkpoint is not None:
        from i2i_cli.errormap import _run_method_name

        if _run_method_name(checkpoint) == "lsesim":
            names.append("lsesim")
    if pairs is not None:
        if not pairs.is_dir():
            raise ConfigError(f"--pairs {pairs}: not a folder; pass a folder with x/ and y/ (same names) or A|B images")
        mappers = build_mappers(names, context)
        with progress_bar("error maps", None, transient=True) as advance:
            batch = analyse_folder(pairs, mappers, misalign=misalign, device=device, figures=out, overwrite=overwrite,
                                   progress=lambda d, t: advance(0, completed=d, total=t))
        average = batch.average()
        print_table(f"{len(batch.pairs)} pairs in {pairs}: mean over pairs", ["loss", "mean error", "separation"],
                    [(n, v["mean"], v["ratio"] if v["ratio"] is not None else "-") for n, v in average.items()])
        if out is not None:
            console.print(f"figures: {out}/ (one per pair)")
        if batch.bad:
            print_problems(f"{len(batch.bad)} file(s) skipped:", batch.bad)
        if json_out:
            write_json(json_out, {"average": average, "pairs": [p.to_json() for p in batch.pairs],
                                  "bad": [{"file": f, "problem": r} for f, r in batch.bad], "misalign": misalign})
        return
    if x is None or y is None:
        raise ConfigError("pass two images (i2i errormap x.png y.png) or --pairs DIR")
    if misalign == "other":
        if other is None:
            raise ConfigError("--misalign other: pass --other IMAGE for a single pair (or use --pairs DIR)")
        misalign = "half"
    target = out or Path(f"errormap_{x.stem}_{y.stem}.png")
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} already exists: pass --overwrite to replace it, or --out another file")
    images = load_image(x), load_image(y), load_image(other) if other else None  # bad files fail before VGG loads
    mappers = build_mappers(names, context)
    result = analyse_pair(images[0], images[1], mappers, misalign=misalign, other=images[2], names=(str(x), str(y)),
                          device=device)
    rows = [(r.name, r.mean, r.aligned if r.aligned is not None else "-", r.misaligned if r.misaligned is not None else "-",
             r.ratio if r.ratio is not None else "-") for r in result.losses]
    print_table(f"error maps: {x.name} vs {y.name}" + (" (right half misaligned)" if misalign == "half" else ""),
                ["loss", "mean", "aligned half", "misaligned half", "separation"], rows)
    save_image(figure(result, misalign), target, overwrite=overwrite)
    console.print(f"figure: {target}")
    if json_out:
        write_json(json_out, {**result.to_json(), "misalign": misalign, "other": str(other) if other else None})


def register(app: typer.Typer) -> None:
    app.command("errormap", help="Per-pixel error maps of L1, perceptual, PatchNCE, FSeSim and LSeSim losses.")(errormap)

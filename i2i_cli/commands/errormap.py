"""`i2i errormap`: per-pixel error maps of content losses, aligned vs misaligned (F-LSeSim's analysis)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    misalign: Annotated[str, typer.Option(help="half: the target's right half shifted by a quarter width (or --other's); other (--pairs): the next pair's right half; none; given-right / given-left: that half of the target is already misaligned (nothing shifted); given-whole: the whole target is misaligned, --aligned is the aligned one.")] = "half",
    other: Annotated[Path | None, typer.Option(help="Take the misaligned right half from this image instead of a shift.")] = None,
    aligned: Annotated[Path | None, typer.Option("--aligned", help="With --misalign given-whole: the target aligned with X (Y is the misaligned one).")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="Folder of pairs: x/ and y/ (same names), or A|B images.", callback=existing_path("folder", "pass a folder with x/ and y/ (same names) or A|B images"))] = None,
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files (VGG16).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing figure (and an existing --json file).")] = False,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 178,956,970 or I2I_MAX_PIXELS; 0: no limit).")] = None,
) -> None:
    """Error map per loss between X and Y, upsampled to the image size, with the aligned/misaligned separation."""
    from i2i_cli.data.images import load_image, save_image, set_max_pixels
    from i2i_cli.engine.device import resolve_device
    from i2i_cli.errormap import analyse_pair, build_mappers, default_losses, figure
    from i2i_cli.errors import ConfigError
    from i2i_cli.fsutil import check_output_file

    set_max_pixels(max_pixels)
    _check_outputs(out, json_out, pairs is not None, overwrite)
    if aligned is not None and misalign != "given-whole":
        raise ConfigError("--aligned goes with --misalign given-whole (the whole of Y is the misaligned target)")
    if other is not None and misalign not in ("half", "other"):
        raise ConfigError(f"--other goes with --misalign half or other (--misalign {misalign} shifts nothing in)")
    device = str(resolve_device(device))
    context = {"device": device, "weights_dir": weights_dir, "checkpoint": checkpoint}
    names = parse_csv(losses) or default_losses(checkpoint)
    if pairs is not None:
        if not pairs.is_dir():
            raise ConfigError(f"--pairs {pairs}: not a folder; pass a folder with x/ and y/ (same names) or A|B images")
        _errormap_folder(pairs, build_mappers(names, context), misalign=misalign, device=device, out=out,
                         json_out=json_out, overwrite=overwrite)
        return
    if x is None or y is None:
        raise ConfigError("pass two images (i2i errormap x.png y.png) or --pairs DIR")
    misalign = _single_pair_mode(misalign, other, aligned)
    target = out or Path(f"errormap_{x.stem}_{y.stem}.png")
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} already exists: pass --overwrite to replace it, or --out another file")
    check_output_file(target, "--out")
    # bad files fail before VGG loads
    images = load_image(x), load_image(y), load_image(other) if other else None, load_image(aligned) if aligned else None
    mappers = build_mappers(names, context)
    result = analyse_pair(images[0], images[1], mappers, misalign=misalign, other=images[2], names=(str(x), str(y)),
                          device=device, aligned=images[3])
    rows = [(r.name, r.mean, r.aligned if r.aligned is not None else "-", r.misaligned if r.misaligned is not None else "-",
             r.ratio if r.ratio is not None else "-") for r in result.losses]
    print_table(f"error maps: {x.name} vs {y.name}{TITLES.get(misalign, '')}",
                ["loss", "mean", "aligned", "misaligned", "separation"], rows)
    save_image(figure(result, misalign, other=other is not None), target, overwrite=overwrite)
    console.print(f"figure: {target}")
    if json_out:
        write_json(json_out, {**result.to_json(), "misalign": misalign, "other": str(other) if other else None,
                              "aligned": str(aligned) if aligned else None})


def _single_pair_mode(misalign: str, other: Path | None, aligned: Path | None) -> str:
    """The --misalign mode of one pair ("other" takes --other's right half: "half" with it), or a one-line error."""
    from i2i_cli.errors import ConfigError

    if misalign == "other":
        if other is None:
            raise ConfigError("--misalign other: pass --other IMAGE for a single pair (or use --pairs DIR)")
        return "half"
    if misalign == "given-whole" and aligned is None:
        raise ConfigError("--misalign given-whole: pass --aligned IMAGE, the target aligned with X (Y is the "
                          "misaligned one)")
    return misalign


def _errormap_folder(pairs: Path, mappers: list[Any], *, misalign: str, device: str, out: Path | None,
                     json_out: Path | None, overwrite: bool) -> None:
    """--pairs: every pair's maps (a figure each with --out), the mean over pairs printed, JSON with --json."""
    from i2i_cli.errormap import analyse_folder

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


TITLES = {"half": " (right half shifted: misaligned)", "given-right": " (right half misaligned, as given)",
          "given-left": " (left half misaligned, as given)",
          "given-whole": " (misaligned: Y as given; aligned: --aligned)"}


def _check_outputs(out: Path | None, json_out: Path | None, folder: bool, overwrite: bool) -> None:
    """--out (a figure, or with --pairs a folder of figures) and --json: writable, refused before any work."""
    from i2i_cli.fsutil import check_output_file, check_output_folder

    if out is not None:
        if folder:
            check_output_folder(out, "--out")
        else:
            check_output_file(out, "--out")
    if json_out is not None:
        check_output_file(json_out, "--json")


def register(app: typer.Typer) -> None:
    app.command("errormap", help="Per-pixel error maps of L1, perceptual, PatchNCE, FSeSim and LSeSim losses.")(errormap)

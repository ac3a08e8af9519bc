"""`i2i data`: synthesise datasets, check a folder's layout and images (and download the standard ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from i2i_cli.cli import (
    console,
    device_option,
    existing_path,
    handle_errors,
    json_option,
    print_problems,
    print_table,
    progress_bar,
    warn,
    write_json,
)
from i2i_cli.commands.data_download import add_download_commands

data_app = typer.Typer(help="Datasets: synthesise, check, download, align faces.", no_args_is_help=True)


@data_app.command("synth")
@handle_errors
def synth(
    name: Annotated[str, typer.Argument(help="Synthetic dataset: scenes (label maps <-> rendered photos).")],
    out: Annotated[Path, typer.Argument(help="Folder to write.")],
    layout: Annotated[Literal["aligned", "unaligned", "domains", "single_image"], typer.Option(help="aligned (pix2pix), unaligned (CycleGAN), domains (StarGAN v2) or single_image (SinCUT: one image per domain).")] = "aligned",
    size: Annotated[int, typer.Option(help="Image size in pixels.")] = 64,
    n_train: Annotated[int, typer.Option("--n-train", help="Training images (per side / per domain).")] = 64,
    n_test: Annotated[int, typer.Option("--n-test", help="Test images (val/ for domains).")] = 16,
    n_val: Annotated[int, typer.Option("--n-val", help="Validation images (aligned/unaligned).")] = 0,
    domains: Annotated[int, typer.Option(help="Number of domains for --layout domains.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty OUT.")] = False,
) -> None:
    """Write a procedural synthetic dataset in one of the standard layouts (no download)."""
    from i2i_cli.data.synth import synthesize
    from i2i_cli.fsutil import check_output_folder

    check_output_folder(out, "OUT")
    with progress_bar(f"synth {name}", None, transient=True) as advance:
        result = synthesize(name, out, layout, size=size, n_train=n_train, n_test=n_test, n_val=n_val,
                            n_domains=domains, seed=seed, overwrite=overwrite,
                            progress=lambda done, total: advance(0, completed=done, total=total))
    print_table(f"{result.layout} dataset in {result.root}", ["folder", "images"], sorted(result.counts.items()))


@data_app.command("check")
@handle_errors
def check(
    folder: Annotated[Path, typer.Argument(help="Dataset folder.", callback=existing_path("folder", "pass the dataset folder"))],
    decode: Annotated[bool, typer.Option(help="Decode every image to find unreadable ones.")] = True,
    json_out: Annotated[Path | None, json_option("Write the report as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 178,956,970 or I2I_MAX_PIXELS; 0: no limit).")] = None,
) -> None:
    """Say which layout a folder has, how many images each split holds, and list every unreadable file."""
    from i2i_cli.data.check import check_dataset
    from i2i_cli.data.images import set_max_pixels
    from i2i_cli.fsutil import check_output_file

    set_max_pixels(max_pixels)
    if json_out is not None:
        check_output_file(json_out, "--json")  # before the metrics, not after them

    with progress_bar("checking", None, transient=True) as advance:
        report = check_dataset(folder, decode=decode,
                               progress=lambda done, total: advance(0, completed=done, total=total))
    print_table(f"{report.root}: {report.layout} layout", ["split", "group", "images"],
                [(s, g, n) for s, groups in report.counts.items() for g, n in groups.items()])
    if report.domains:
        console.print(f"domains: {', '.join(report.domains)}")
    if report.bad:
        print_problems(f"{len(report.bad)} unreadable file(s):", report.bad)
    else:
        console.print("all images readable" if decode else "images not decoded (--no-decode)")
    if report.sizes:
        console.print(f"image sizes: {report.sizes}")
    if report.unmatched:
        print_problems(f"{len(report.unmatched)} {report.unmatched_heading}:", report.unmatched)
    if json_out:
        write_json(json_out, report.to_json())
    if report.unmatched:
        warn(report.unmatched_fix)
    if report.bad:
        warn("fix or remove the files above; training skips them but stops if more than 1% are bad")
    if report.bad or report.unmatched:
        raise typer.Exit(1)


@data_app.command("align-faces")
@handle_errors
def align_faces_command(
    inputs: Annotated[Path, typer.Argument(metavar="IN", help="Folder of face photos (searched recursively) or one photo.",
                                           callback=existing_path("IN", "pass a folder of face photos"))],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder for the aligned faces (same relative names).")],
    size: Annotated[int, typer.Option(help="Output size in pixels (256: StarGAN v2 CelebA-HQ at 256 px).")] = 256,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files in OUT (and --json).")] = False,
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder holding wing.ckpt and celeba_lm_mean.npz.")] = None,
    json_out: Annotated[Path | None, json_option("Write the report as JSON")] = None,
) -> None:
    """Align face photos as StarGAN v2's CelebA-HQ images are (its align mode: FAN landmarks onto the CelebA-HQ
    mean face), so that a CelebA-HQ model can translate them."""
    from i2i_cli.face_align import AlignOptions, align_faces

    options = AlignOptions(size=size, overwrite=overwrite, device=device, weights_dir=weights_dir)
    with progress_bar("aligning", None, transient=True) as advance:
        report = align_faces(inputs, out, options,
                             progress=lambda done, total: advance(0, completed=done, total=total))
    print_table(f"aligned faces in {report.out_dir}", ["written", "unreadable", "size"],
                [(len(report.written), len(report.bad), f"{report.size}x{report.size}")])
    if json_out:
        write_json(json_out, report.to_json())
    if report.bad:
        print_problems(f"{len(report.bad)} unreadable file(s), skipped:", report.bad)
        warn("fix or remove the files above and run again (aligned ones need --overwrite)")
        raise typer.Exit(1)


add_download_commands(data_app)  # `i2i data download`: i2i_cli/commands/data_download.py


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data", help="Datasets: synthesise (`synth`), check a folder (`check`), download, align faces.")

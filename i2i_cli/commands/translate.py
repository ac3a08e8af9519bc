"""`i2i translate`: translate a folder (or one image) with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import (
    console,
    handle_errors,
    info,
    print_problems,
    progress_bar,
    warn,
    write_json,
)


@handle_errors
def translate(
    source: Annotated[Path, typer.Argument(help="An image or a folder of images (searched recursively).")],
    out: Annotated[Path, typer.Argument(help="Output folder (names and sub-folders are kept, PNG).")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Run folder (default: newest under ./runs).")] = None,
    direction: Annotated[str, typer.Option(help="AtoB or BtoA (two-sided methods).")] = "AtoB",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16.")] = "fp32",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per forward pass (same-size images).")] = 1,
    resize: Annotated[int | None, typer.Option(help="Resize the shorter side to N first (output keeps N).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing/--no-skip-existing", help="Skip outputs that exist (default); --no-skip-existing makes an existing output an error.")] = True,
    threads: Annotated[int, typer.Option(help="Decode/encode threads.")] = 4,
    tile: Annotated[int, typer.Option(help="Translate images larger than this in overlapping tiles (0: off).")] = 0,
    overlap: Annotated[int, typer.Option(help="Tile overlap in pixels, blended linearly.")] = 32,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")] = None,
    style_ref: Annotated[Path | None, typer.Option("--style-ref", help="Multi-domain: a reference image, or a folder of them.")] = None,
    domain: Annotated[str | None, typer.Option(help="Multi-domain: the target domain (inferred from the reference's folder).")] = None,
    num_styles: Annotated[int, typer.Option("--num-styles", help="Latent-guided: outputs per input.")] = 1,
    seed: Annotated[int, typer.Option(help="Latent-guided: seed of the style codes.")] = 0,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="Attention methods: also write NAME__mask.png.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write a summary as JSON.")] = None,
) -> None:
    """Translate every image in SOURCE into OUT with a trained run; bad files are listed and skipped."""
    from i2i_cli.inference import TranslateOptions, load_translator, translate_folder

    if direction not in ("AtoB", "BtoA"):
        from i2i_cli.errors import ConfigError

        raise ConfigError(f"--direction {direction}: choose AtoB or BtoA")
    if style_ref is not None or domain is not None:
        _translate_styles(source, out, checkpoint, style_ref, domain, num_styles, seed, device, precision, batch_size,
                          overwrite, skip_existing, threads, max_pixels, json_out)
        return
    translator, note = load_translator(checkpoint, direction, device, precision)
    if note:
        info(note)
    if save_masks and getattr(translator, "mask_net", None) is None:
        from i2i_cli.errors import ConfigError

        raise ConfigError("--save-masks: this model has no attention masks (agcyclegan has them)")
    loaded = getattr(translator, "loaded", None)
    if loaded is not None:
        info(f"{loaded.method.name} run {loaded.run_dir} (step {loaded.step}"
             f"{', EMA weights' if loaded.used_ema else ''}) on {translator.device}")
    options = TranslateOptions(direction=direction, device=device, precision=precision, batch_size=batch_size,
                               resize=resize, overwrite=overwrite, skip_existing=skip_existing, threads=threads,
                               max_pixels=max_pixels, save_masks=save_masks, tile=tile, overlap=overlap)
    with progress_bar("translate", None) as advance:
        result = translate_folder(source, out, translator, options,
                                  progress=lambda done, total: advance(0, completed=done, total=total))
    rate = len(result.written) / result.seconds if result.seconds else 0.0
    console.print(f"wrote {len(result.written)} image(s) to {out} in {result.seconds:.1f} s ({rate:.1f} images/s)"
                  + (f"; skipped {result.skipped} existing (--overwrite to redo them)" if result.skipped else ""))
    if json_out:
        write_json(json_out, {"written": [str(p) for p in result.written], "skipped": result.skipped,
                              "bad": [{"file": f, "problem": p} for f, p in result.bad], "seconds": result.seconds,
                              "device": result.device,
                              "checkpoint": str(loaded.run_dir if loaded else checkpoint),
                              "step": loaded.step if loaded else None})
    if result.bad:
        print_problems(f"{len(result.bad)} file(s) could not be translated:", result.bad)
        warn("the other images were translated; fix or remove the files above and run again")
        raise typer.Exit(1)


def _translate_styles(source, out, checkpoint, style_ref, domain, num_styles, seed, device, precision, batch_size,
                      overwrite, skip_existing, threads, max_pixels, json_out) -> None:  # noqa: ANN001
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.inference import TranslateOptions, resolve_checkpoint, translate_with_styles

    run, note = resolve_checkpoint(checkpoint)
    if note:
        info(note)
    if str(run).endswith(".onnx"):
        from i2i_cli.errors import ConfigError

        raise ConfigError("--style-ref/--domain need a run folder: style networks are not exported to ONNX yet")
    loaded = load_for_inference(run)
    info(f"{loaded.method.name} run {loaded.run_dir} (step {loaded.step}{', EMA weights' if loaded.used_ema else ''})")
    options = TranslateOptions(device=device, precision=precision, batch_size=batch_size, overwrite=overwrite,
                               skip_existing=skip_existing, threads=threads, max_pixels=max_pixels)
    with progress_bar("translate", None) as advance:
        result = translate_with_styles(source, out, loaded, style_ref=style_ref, domain=domain, num_styles=num_styles,
                                       seed=seed, options=options,
                                       progress=lambda done, total: advance(0, completed=done, total=total))
    console.print(f"wrote {len(result.written)} image(s) to {out} in {result.seconds:.1f} s"
                  + (f"; skipped {result.skipped} existing" if result.skipped else ""))
    if json_out:
        write_json(json_out, {"written": [str(p) for p in result.written], "skipped": result.skipped,
                              "bad": [{"file": f, "problem": p} for f, p in result.bad]})
    if result.bad:
        print_problems(f"{len(result.bad)} file(s) could not be translated:", result.bad)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("translate", help="Translate a folder of images with a trained run (any size, PNG out).")(translate)

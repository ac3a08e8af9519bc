"""`i2i translate`: translate a folder (or one image) with a trained run or an exported .onnx file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from i2i_cli.cli import (
    Blend,
    Direction,
    InferencePrecision,
    Runtime,
    device_option,
    existing_path,
    finish_with_problems,
    handle_errors,
    info,
    json_option,
    pip_extra,
    print_table,
    progress_bar,
    write_json,
)

if TYPE_CHECKING:
    from i2i_cli.inference import TranslateResult

SPEED = "Speed"
STYLE = "Multi-domain (StarGAN v2)"
VIDEO = f"Video (PyAV: {pip_extra('video')})"
CLUSTER = f"Cluster (Ray: {pip_extra('ray')})"


@handle_errors
def translate(
    source: Annotated[str, typer.Argument(help="An image or video, or a folder of them (searched recursively); with --engine ray also an object-store URL (s3://bucket/prefix, gs://...).", callback=existing_path("image, video or folder", "pass an image, a video or a folder of them"))],
    out: Annotated[str, typer.Argument(help="Output folder (names and sub-folders are kept, PNG); for one input image, an image file name (result.jpg) writes that file; with --engine ray also an object-store URL.")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Run folder, checkpoint, or .onnx file (default: newest run under ./runs).", callback=existing_path("run, checkpoint or .onnx file", "pass a run folder of `i2i train`, a checkpoint in it, or an .onnx file of `i2i export`"))] = None,
    direction: Annotated[Direction, typer.Option(help="Two-sided methods: which generator.")] = "AtoB",
    resize: Annotated[int | None, typer.Option(help="Resize the shorter side to N first (output keeps N unless --keep-size).")] = None,
    keep_size: Annotated[bool, typer.Option("--keep-size", help="With --resize: scale each output back to its input's size.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (and an existing --json file).")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing/--no-skip-existing", help="Skip outputs that exist (default); --no-skip-existing makes an existing output an error.")] = True,
    device: Annotated[str, device_option(rich_help_panel=SPEED)] = "auto",
    precision: Annotated[InferencePrecision, typer.Option(help="A run: auto (bf16 on a CPU with native bf16: avx512_bf16 or AMX; else fp32), fp32, bf16, fp16 (CUDA). An .onnx file: auto/fp32 as exported, bf16 (OpenVINO, CPU).", rich_help_panel=SPEED)] = "auto",
    runtime: Annotated[Runtime, typer.Option(help="An .onnx checkpoint: auto (OpenVINO for int8 files on the CPU when installed, else ONNX Runtime), onnxruntime, openvino.", rich_help_panel=SPEED)] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per forward pass (same-size images).", rich_help_panel=SPEED)] = 1,
    threads: Annotated[int, typer.Option(help="Decode/encode threads.", rich_help_panel=SPEED)] = 4,
    tile: Annotated[int, typer.Option(help="Translate images larger than this in overlapping tiles (0: off).", rich_help_panel=SPEED)] = 0,
    overlap: Annotated[int, typer.Option(help="Tile overlap in pixels.", rich_help_panel=SPEED)] = 32,
    blend: Annotated[Blend, typer.Option(help="Tile seam weights: linear or cosine ramps.", rich_help_panel=SPEED)] = "linear",
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")] = None,
    style_ref: Annotated[Path | None, typer.Option("--style-ref", help="A reference image, or a folder of them.", rich_help_panel=STYLE, callback=existing_path("reference image or folder", "pass a reference image or a folder of them (one sub-folder per domain)"))] = None,
    domain: Annotated[str | None, typer.Option(help="The target domain (else inferred from the reference's folder).", rich_help_panel=STYLE)] = None,
    num_styles: Annotated[int, typer.Option("--num-styles", help="Latent-guided: outputs per input.", rich_help_panel=STYLE)] = 1,
    seed: Annotated[int, typer.Option(help="Latent-guided: seed of the style codes.", rich_help_panel=STYLE)] = 0,
    caption: Annotated[str | None, typer.Option(help="Text-conditioned methods (img2img-turbo): the caption to translate with (default: the run's).")] = None,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="Attention methods: also write NAME__mask.png.")] = False,
    video_codec: Annotated[str | None, typer.Option("--video-codec", help="Video files: the encoder (default libx264, H.264; libvpx-vp9 for .webm).", rich_help_panel=VIDEO)] = None,
    crf: Annotated[int, typer.Option(help="Video files: constant rate factor (lower: better and bigger).", rich_help_panel=VIDEO)] = 18,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="local: this machine; ray: a Ray cluster's actor pool (local folders or s3:// / gs:// URLs).", rich_help_panel=CLUSTER)] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="--engine ray: join this cluster (else RAY_ADDRESS, else a local Ray on this machine).", rich_help_panel=CLUSTER)] = None,
    actors: Annotated[int | None, typer.Option(help="--engine ray: translator actors (default: one per GPU; without GPUs one per 2 CPUs, at most 4).", rich_help_panel=CLUSTER)] = None,
    json_out: Annotated[Path | None, json_option("Write a summary as JSON")] = None,
) -> None:
    """Translate every image (and video: mp4, mov, mkv, webm, avi) in SOURCE into OUT; bad files are listed at the end and the others still translated."""
    from i2i_cli.api import Translator
    from i2i_cli.errors import ConfigError

    if direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"--direction {direction}: choose AtoB or BtoA")
    if keep_size and not resize:
        raise ConfigError("--keep-size goes with --resize N (without --resize outputs already keep their size)")
    from i2i_cli.fsutil import check_output_file
    from i2i_cli.inference.naming import check_output_target

    options = dict(batch_size=batch_size, resize=resize, keep_size=keep_size, overwrite=overwrite,
                   skip_existing=skip_existing, threads=threads, max_pixels=max_pixels, save_masks=save_masks,
                   tile=tile, overlap=overlap, blend=blend)
    if engine == "ray":
        if caption is not None:
            raise ConfigError("--caption: captions translate with --engine local only for now")
        if style_ref is not None or domain is not None:
            raise ConfigError("--style-ref / --domain: styles translate with --engine local only for now")
        if runtime != "auto":
            raise ConfigError("--runtime: the Ray actors pick theirs (auto: OpenVINO for int8 files where installed)")
        _translate_on_ray(source, out, checkpoint, json_out, options, direction, device, precision,
                          ray_address, actors)
        return
    if ray_address is not None or actors is not None:
        raise ConfigError("--ray-address / --actors go with --engine ray")
    if "://" in source or "://" in out:
        raise ConfigError(f"{source if '://' in source else out}: object-store URLs are read and written by "
                          "--engine ray; download the files, or add --engine ray")
    check_output_target(Path(source), Path(out))  # a file, a folder under a file, a read-only place: refused before the model loads
    if json_out is not None:
        check_output_file(json_out, "--json")
    # the same Translator as the Python API (i2i_cli.load): one code path for both
    translator = Translator(checkpoint, device, direction=direction, precision=precision, caption=caption,
                            runtime=runtime)
    if translator.note:
        info(translator.note)
    _announce(translator)
    loaded = translator.loaded
    with progress_bar("translate", None) as advance:
        result = translator.translate_folder(source, out, style_ref=style_ref, domain=domain, num_styles=num_styles,
                                             seed=seed, progress=lambda done, total: advance(0, completed=done, total=total),
                                             video_codec=video_codec, crf=crf, **options)
    extra: dict[str, Any] = {"checkpoint": str(loaded.run_dir if loaded is not None else translator.path)}
    if not translator.multi_domain:
        extra["step"] = loaded.step if loaded is not None else None
    _report(result, out, json_out, extra)


def _translate_on_ray(source: str, out: str, checkpoint: Path | None, json_out: Path | None, options: dict[str, Any],
                      direction: str, device: str, precision: str, ray_address: str | None, actors: int | None
                      ) -> None:
    """`--engine ray`: the same outputs through a Ray actor pool (i2i_cli.ray_engine)."""
    from i2i_cli.inference import TranslateOptions
    from i2i_cli.ray_engine import RayOptions, translate_on_ray

    opts = TranslateOptions(direction=direction, device=device, precision=precision, **options)
    ray_options = RayOptions(address=ray_address, actors=actors)
    with progress_bar("translate", None) as advance:
        result = translate_on_ray(source, out, checkpoint, opts, ray_options,
                                  progress=lambda done, total: advance(0, completed=done, total=total))
    if result.note:
        info(result.note)
    _report(result, out, json_out, {"engine": result.engine, "actors": result.workers, "cluster": result.device})


def _announce(translator: Any) -> None:
    """One line: what translates (a run and its step, a multi-domain model, or an ONNX file) and where."""
    loaded = translator.loaded
    if translator.multi_domain:
        info(f"{translator.name} from {translator.path} on {translator.device}, {translator.precision_note}")
    elif loaded is not None:
        info(f"{loaded.method.name} run {loaded.run_dir} (step {loaded.step}"
             f"{', EMA weights' if loaded.used_ema else ''}) on {translator.device}, {translator.precision_note}")
    else:
        where = translator.device if translator.device.startswith("OpenVINO") else f"ONNX Runtime on {translator.device}"
        info(f"{where}, {translator.precision_note}")


def _report(result: TranslateResult, out: str, json_out: Path | None, extra: dict[str, Any]) -> None:
    rate = len(result.written) / result.seconds if result.seconds else 0.0
    print_table(f"translated into {out}" if result.written or result.skipped else f"nothing was translated into {out}", ["", ""], [
        ("written", len(result.written)),
        ("skipped (already there; --overwrite to redo)", result.skipped),
        ("could not be translated", len(result.bad)),
        ("device", result.device),
        ("precision", result.precision),
        ("seconds", f"{result.seconds:.1f} ({rate:.2f} images/s)"),
    ])
    if json_out:
        write_json(json_out, {"written": [str(p) for p in result.written], "skipped": result.skipped,
                              "bad": [{"file": f, "problem": p} for f, p in result.bad], "seconds": result.seconds,
                              "device": result.device, "precision": result.precision, **extra})
    finish_with_problems(result.bad, f"{len(result.bad)} file(s) could not be translated:",
                         "the other images were translated; fix or remove the files above and run again")


def register(app: typer.Typer) -> None:
    app.command("translate", help="Translate a folder of images with a trained run or .onnx file (any size, PNG out).")(
        translate)

"""`i2i export`: write a run's inference network as ONNX, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from i2i_cli.cli import (
    Direction,
    ExportPrecision,
    console,
    existing_path,
    handle_errors,
    json_option,
    print_table,
    progress_bar,
    write_json,
)

TRITON = "Triton (--format triton)"
ExportFormat = Literal["onnx", "triton"]


@handle_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write (--format triton: the model repository folder).")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Run folder (default: newest under ./runs).", callback=existing_path("run folder", "pass a run folder of `i2i train` (or `i2i pretrained get`)"))] = None,
    direction: Annotated[Direction, typer.Option(help="Two-sided methods: which generator.")] = "AtoB",
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or later).")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 weights and compute (fp32 in and out); the same as the fp16 precision.")] = False,
    precision: Annotated[ExportPrecision, typer.Option(help="fp32; fp16 (GPUs: ONNX Runtime CUDA); int8 (CPUs: calibrated on the run's data, refused under 30 dB PSNR vs fp32 unless --allow-lossy, and under --min-speedup).")] = "fp32",
    calibrate: Annotated[Path | None, typer.Option("--calibrate", help="int8: calibrate on these images instead of the run's test split (half calibrate, half are held out).", callback=existing_path("folder of images", "pass a folder of images like the ones you will translate"))] = None,
    allow_lossy: Annotated[bool, typer.Option("--allow-lossy", help="int8: write it even under 30 dB PSNR against fp32.")] = False,
    min_speedup: Annotated[float, typer.Option("--min-speedup", help="int8: refuse it unless it runs at least this many times fp32's speed in ONNX Runtime on this CPU (0: write it whatever its speed).")] = 2.0,
    static_size: Annotated[tuple[int, int] | None, typer.Option("--static-size", help="Fix H W instead of dynamic sizes.")] = None,
    caption: Annotated[str | None, typer.Option(help="Text-conditioned methods (img2img-turbo): the caption fixed in the graph (default: the run's).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file (and an existing --json file).")] = False,
    json_out: Annotated[Path | None, json_option("Write the export report as JSON")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="onnx: one .onnx file; triton: a Triton Inference Server model repository (OUT/NAME/config.pbtxt + 1/model.onnx).")] = "onnx",
    name: Annotated[str, typer.Option("--name", help="--format triton: the model's name (its folder).", rich_help_panel=TRITON)] = "translator",
    max_batch: Annotated[int, typer.Option("--max-batch", help="--format triton: max_batch_size (dynamic batching).", rich_help_panel=TRITON)] = 8,
) -> None:
    """Export to ONNX (dynamic batch/height/width, metadata embedded) and check parity in ONNX Runtime."""
    if caption is not None and (fmt == "triton" or precision == "int8"):
        from i2i_cli.errors import ConfigError

        raise ConfigError("--caption goes with --format onnx in fp32 or fp16 for now; export without it to keep "
                          "the run's caption")
    if fmt == "triton":
        if precision in ("int8", "bf16"):
            from i2i_cli.errors import ConfigError

            raise ConfigError(f"--format triton --precision {precision}: a Triton repository is written in fp32 or fp16; "
                              "export the int8 file with --format onnx and place it as 1/model.onnx by hand")
        _export_triton(out, checkpoint, direction, opset, fp16 or precision == "fp16", static_size, overwrite, json_out, name, max_batch)
        return
    from i2i_cli.errors import ConfigError
    from i2i_cli.export import export_onnx
    from i2i_cli.fsutil import check_output_file
    from i2i_cli.inference import resolve_checkpoint

    check_output_file(out, "--out", overwrite=overwrite, suffix=".onnx")  # before the (slow) export, not after it
    if json_out is not None:
        check_output_file(json_out, "--json")
    run, note = resolve_checkpoint(checkpoint)
    if note:
        console.print(note)
    if precision == "bf16":
        raise ConfigError("--precision bf16: ONNX Runtime has no bf16 convolution kernels for the CPU; export fp32 "
                          "and translate the file with `i2i translate --precision bf16` (OpenVINO runs its float "
                          "layers in bf16), or translate the run itself with --precision bf16")
    if precision == "int8":
        _export_int8(run, out, direction, opset, calibrate, (allow_lossy, min_speedup), overwrite, static_size,
                     json_out)
        return
    with progress_bar(f"export {out.name}", None, transient=True):  # the export and parity check take minutes
        result = export_onnx(run, out, direction=direction, opset=opset, fp16=fp16 or precision == "fp16", caption=caption,
                             static_size=static_size, overwrite=overwrite)
    print_table(f"parity with PyTorch in ONNX Runtime ({result.provider}), tolerance {result.tolerance:g}",
                ["input", "max |onnx - torch|"], list(result.max_diff.items()))
    files = ", ".join(str(p) for p in result.files)
    console.print(f"wrote {files} ({result.metadata['method']}, {result.metadata['direction']} in the dataset's names, size multiple "
                  f"{result.metadata['size_multiple']}); use it with: i2i translate --checkpoint {result.path} IN/ OUT/"
                  + (" --style-ref REF (or --domain D)" if len(result.files) > 1 else ""))
    if json_out:
        write_json(json_out, {"path": str(result.path), "metadata": {k: v for k, v in result.metadata.items()
                                                                      if k != "run_config"},
                              "files": [str(p) for p in result.files], "max_diff": result.max_diff, "tolerance": result.tolerance, "provider": result.provider})


def _export_triton(out: Path, checkpoint: Path | None, direction: str, opset: int, fp16: bool,
                   static_size: tuple[int, int] | None, overwrite: bool, json_out: Path | None, name: str,
                   max_batch: int) -> None:
    from i2i_cli.fsutil import check_output_file
    from i2i_cli.inference import resolve_checkpoint
    from i2i_cli.serve.triton import export_triton

    if json_out is not None:
        check_output_file(json_out, "--json")
    run, note = resolve_checkpoint(checkpoint)
    if note:
        console.print(note)
    with progress_bar(f"export {name} for Triton", None, transient=True):
        result = export_triton(run, out, name=name, direction=direction, opset=opset, fp16=fp16,
                               static_size=static_size, max_batch=max_batch, overwrite=overwrite)
    export = result.export
    print_table(f"parity with PyTorch in ONNX Runtime ({export.provider}), tolerance {export.tolerance:g}",
                ["input", "max |onnx - torch|"], list(export.max_diff.items()))
    console.print(f"wrote the Triton model repository {out}: {result.config.relative_to(out)}, "
                  f"{result.model.relative_to(out)} (inputs in [-1, 1], H and W multiples of "
                  f"{export.metadata['size_multiple']}); serve it with: tritonserver --model-repository {out}")
    if json_out:
        write_json(json_out, {"repository": str(out), "config": str(result.config), "model": str(result.model),
                              "max_diff": export.max_diff, "tolerance": export.tolerance, "provider": export.provider})


def _export_int8(run: Path, out: Path, direction: str, opset: int, calibrate: Path | None,
                 bounds: tuple[bool, float], overwrite: bool, static_size: tuple[int, int] | None, json_out: Path | None) -> None:
    from dataclasses import asdict

    from i2i_cli.errors import ConfigError
    from i2i_cli.quantization import export_int8

    if static_size is not None:
        raise ConfigError("--static-size goes with fp32/fp16 exports; an int8 export keeps dynamic sizes")
    with progress_bar(f"export {out.name} (int8: export, calibrate, measure)", None, transient=True):
        result, report = export_int8(run, out, direction=direction, calibrate=calibrate, allow_lossy=bounds[0],
                                     overwrite=overwrite, opset=opset, min_speedup=bounds[1])
    lpips = f"{report.lpips:.4f}" if report.lpips is not None else "-"
    runtimes = ", ".join(f"{name} {ms:.1f}" for name, ms in report.int8_ms_by_runtime.items())
    print_table(f"int8 ({report.runtime}) vs fp32 (onnxruntime) on the CPU, on {report.held_out_images} held-out "
                f"images of {report.source} at {report.size} px ({report.calibration_images} calibrated)", ["", ""], [
                    ("PSNR (mean, min)", f"{report.psnr_db:.1f} dB, {report.psnr_min_db:.1f} dB"),
                    ("LPIPS", lpips), ("ms per image fp32 / int8", f"{report.fp32_ms:.1f} / {report.int8_ms:.1f}"),
                    ("int8 ms by runtime", runtimes), ("speed", f"{report.speedup:.2f}x fp32"),
                    ("in float (ONNX Runtime)", report.float_ops or "-")])
    if report.note:
        console.print(report.note)
    console.print(f"wrote {result.path} (int8); use it with: i2i translate --checkpoint {result.path} IN/ OUT/")
    if json_out:
        write_json(json_out, {"path": str(result.path), "precision": "int8", "quality": {**asdict(report),
                              "speedup": report.speedup}, "metadata": {k: v for k, v in result.metadata.items()
                                                                       if k != "run_config"}})


def register(app: typer.Typer) -> None:
    app.command("export", help="Export a run to ONNX with a verified parity check.")(export)

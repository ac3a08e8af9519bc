"""`i2i export`: write a run's inference network as ONNX, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import (
    Direction,
    console,
    existing_path,
    handle_errors,
    json_option,
    print_table,
    progress_bar,
    write_json,
)


@handle_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Run folder (default: newest under ./runs).", callback=existing_path("run folder", "pass a run folder of `i2i train` (or `i2i pretrained get`)"))] = None,
    direction: Annotated[Direction, typer.Option(help="Two-sided methods: which generator.")] = "AtoB",
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or later).")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 weights and compute (fp32 in and out).")] = False,
    static_size: Annotated[tuple[int, int] | None, typer.Option("--static-size", help="Fix H W instead of dynamic sizes.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file (and an existing --json file).")] = False,
    json_out: Annotated[Path | None, json_option("Write the export report as JSON")] = None,
) -> None:
    """Export to ONNX (dynamic batch/height/width, metadata embedded) and check parity in ONNX Runtime."""
    from i2i_cli.export import export_onnx
    from i2i_cli.fsutil import check_output_file
    from i2i_cli.inference import resolve_checkpoint

    check_output_file(out, "--out", overwrite=overwrite, suffix=".onnx")  # before the (slow) export, not after it
    if json_out is not None:
        check_output_file(json_out, "--json")
    run, note = resolve_checkpoint(checkpoint)
    if note:
        console.print(note)
    with progress_bar(f"export {out.name}", None, transient=True):  # the export and parity check take minutes
        result = export_onnx(run, out, direction=direction, opset=opset, fp16=fp16, static_size=static_size,
                             overwrite=overwrite)
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


def register(app: typer.Typer) -> None:
    app.command("export", help="Export a run to ONNX with a verified parity check.")(export)

"""`i2i app`: a trained translator as a web page (Gradio): drop images, compare with a slider, download."""

from __future__ import annotations

from typing import Annotated

import typer

from i2i_cli.cli import Direction, InferencePrecision, device_option, existing_path, handle_errors, info


@handle_errors
def app_command(
    checkpoint: Annotated[str, typer.Argument(help="Run folder, checkpoint, .onnx file, Hub-layout folder or hf://OWNER/NAME.", callback=existing_path("run, checkpoint or .onnx file", "pass a run folder of `i2i train`, a checkpoint in it, an .onnx file of `i2i export` or hf://OWNER/NAME"))],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    share: Annotated[bool, typer.Option("--share", help="Also open a public gradio.live link (72 hours).")] = False,
    device: Annotated[str, device_option()] = "auto",
    precision: Annotated[InferencePrecision, typer.Option(help="A run: auto (bf16 on a CPU with native bf16: avx512_bf16 or AMX; else fp32), fp32, bf16, fp16 (CUDA). An .onnx file: auto/fp32 as exported, bf16 (OpenVINO, CPU).")] = "auto",
    direction: Annotated[Direction, typer.Option(help="Two-sided methods: the direction selected at first.")] = "AtoB",
) -> None:
    """Open a web page for CHECKPOINT: drop an image (or several), see input and output side by side, pick the direction or domain, download the result."""
    from i2i_cli.extras import require_extra

    require_extra("gradio", "app", "i2i app")
    from i2i_cli.serve.app import PageModel, build_app, launch_app

    model = PageModel(checkpoint, device, precision, direction)
    info(f"{model.facts.method} ({model.facts.kind}) from {model.facts.checkpoint} on "
         f"http://{host}:{port} (Ctrl+C stops it)")
    launch_app(build_app(model), host=host, port=port, share=share)


def register(app: typer.Typer) -> None:
    app.command("app", help="Open a web page (Gradio) to translate images with a trained run.")(app_command)

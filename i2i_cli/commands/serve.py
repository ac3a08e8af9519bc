"""`i2i serve`: a trained translator as an HTTP service (LitServe): batching, health, metadata, OpenAPI."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from i2i_cli.cli import Direction, InferencePrecision, device_option, existing_path, handle_errors, info

CHECKPOINT_HELP = "Run folder, checkpoint, .onnx file, Hub-layout folder or hf://OWNER/NAME."


@handle_errors
def serve(
    checkpoint: Annotated[str, typer.Argument(help=CHECKPOINT_HELP, callback=existing_path("run, checkpoint or .onnx file", "pass a run folder of `i2i train`, a checkpoint in it, an .onnx file of `i2i export` or hf://OWNER/NAME"))],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: Annotated[str, device_option()] = "auto",
    precision: Annotated[InferencePrecision, typer.Option(help="A run: auto (bf16 on a CPU with native bf16: avx512_bf16 or AMX; else fp32), fp32, bf16, fp16 (CUDA). An .onnx file: auto/fp32 as exported, bf16 (OpenVINO, CPU).")] = "auto",
    direction: Annotated[Direction, typer.Option(help="Two-sided methods: the default direction (a request may ask for the other).")] = "AtoB",
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most requests translated in one forward pass (same size and options).")] = 8,
    batch_timeout: Annotated[float, typer.Option("--batch-timeout", help="Seconds to wait for more requests to fill a batch.")] = 0.05,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this (413).")] = 4096 * 4096,
    max_mb: Annotated[float, typer.Option("--max-mb", help="Refuse request bodies larger than this many MB (413).")] = 50.0,
    timeout: Annotated[float, typer.Option(help="Seconds a request may wait for the model before it is answered 504.")] = 60.0,
) -> None:
    """Serve CHECKPOINT over HTTP: POST /translate (an image's bytes or a multipart field `image`; options as query fields), GET /metadata, /health, /docs."""
    from i2i_cli.errors import ConfigError
    from i2i_cli.serve import ServeOptions, load_facts
    from i2i_cli.serve import serve as run

    if max_batch < 1 or batch_timeout < 0 or max_pixels < 1 or max_mb <= 0 or timeout <= 0:
        raise ConfigError("--max-batch, --max-pixels, --max-mb and --timeout must be positive (--batch-timeout >= 0)")
    options = ServeOptions(host=host, port=port, device=device, precision=precision, direction=direction,
                           max_batch=max_batch, batch_timeout=batch_timeout, max_pixels=max_pixels,
                           max_bytes=int(max_mb * 1024 * 1024), timeout=timeout)
    path, facts = load_facts(checkpoint, options)
    where = f"{facts.method} ({facts.kind}, step {facts.step})" if facts.step is not None else f"{facts.method} ({facts.kind})"
    _log_requests()
    info(f"serving {where} from {path} on http://{host}:{port}: POST /translate, GET /metadata, /health, /docs")
    run(path, facts, options)


def _log_requests() -> None:
    """The service's request lines on stderr, plain (other libraries' loggers keep their own levels)."""
    logger = logging.getLogger("i2i.serve")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    app.command("serve", help="Serve a translator over HTTP (LitServe): batching, health, metadata, OpenAPI.")(serve)

"""`i2i bench`: measure training and translation speed and memory (results for docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import console, handle_errors, info, print_table, write_json

bench_app = typer.Typer(help="Speed and memory benchmarks.", invoke_without_command=True)


@bench_app.callback()
@handle_errors
def bench_train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Method to benchmark.")] = "cyclegan",
    size: Annotated[int, typer.Option(help="Image size.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    steps: Annotated[int, typer.Option(help="Measured training steps per setting (after warm-up).")] = 50,
    warmup: Annotated[int, typer.Option(help="Warm-up steps per setting.")] = 10,
    compile_: Annotated[bool, typer.Option("--compile", help="Also torch.compile the fast setting.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a method option: key=value.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
) -> None:
    """Training images/s, translate images/s and peak memory: i2i's fast settings vs the official-style recipe."""
    if ctx.invoked_subcommand is not None:
        return
    from i2i_cli.benchmarks.train import run_train_benchmark

    info(f"benchmarking {model} at {size} px, batch {batch_size}: baseline then fast settings ...")
    report = run_train_benchmark(model, size=size, batch_size=batch_size, steps=steps, warmup=warmup, device=device,
                                 compile_=compile_, overrides=set_ or [])
    base, fast = report.rows
    rows = [(r.setting, r.train_images_per_s, r.translate_images_per_s, r.peak_memory_mb) for r in report.rows]
    rows.append(("ratio fast / baseline", fast.train_images_per_s / max(base.train_images_per_s, 1e-9),
                 fast.translate_images_per_s / max(base.translate_images_per_s, 1e-9),
                 fast.peak_memory_mb / max(base.peak_memory_mb, 1e-9)))
    print_table(f"{model} on {report.device}, {size} px, batch {batch_size}, {steps} steps",
                ["setting", "train img/s", "translate img/s", "peak memory MB"], rows)
    agreement = ", ".join(f"{k} {v:.1%}" for k, v in report.loss_agreement.items())
    console.print(f"loss curves, mean |fast - baseline| relative to the baseline: {agreement}")
    if json_out:
        write_json(json_out, report.to_json())


@bench_app.command("translate")
@handle_errors
def bench_translate(
    model: Annotated[str, typer.Option("--model", "-m", help="Method whose generator to time.")] = "cyclegan",
    size: Annotated[int, typer.Option(help="Image size.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")] = 1,
    images: Annotated[int, typer.Option(help="Images in the end-to-end folder run.")] = 20,
    repeats: Annotated[int, typer.Option(help="Timed forward passes for the model-only figures.")] = 10,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
) -> None:
    """Model-only images/s (PyTorch eager, ONNX Runtime) and end-to-end folder images/s (JPEG in, PNG out)."""
    from i2i_cli.benchmarks.translate import run_translate_benchmark

    r = run_translate_benchmark(model, size, batch_size, images, device, repeats)
    print_table(f"{r.model} generator ({r.network}), {size} px, batch {batch_size}, {r.device}", ["measure", "images/s"], [
        ("PyTorch eager, model only", r.torch_model_only),
        (f"ONNX Runtime ({r.onnx_provider}), model only", r.onnx_model_only),
        ("i2i translate end to end (JPEG in, PNG out)", r.end_to_end),
        ("end to end / PyTorch model only", r.end_to_end / r.torch_model_only),
    ])
    if json_out:
        write_json(json_out, r.to_json())


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench", help="Benchmarks: `i2i bench --model M` (training), `i2i bench translate`.")

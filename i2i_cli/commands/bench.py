"""`i2i bench`: measure training and translation speed and memory (results for docs/benchmarks.md)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import (
    console,
    device_option,
    handle_errors,
    info,
    json_option,
    known_method,
    method_names,
    parse_csv,
    print_table,
    progress_bar,
    write_json,
)

bench_app = typer.Typer(help="Speed and memory benchmarks.", invoke_without_command=True)


@bench_app.callback()
@handle_errors
def bench_train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Method to benchmark.", callback=known_method, autocompletion=method_names)] = "cyclegan",
    size: Annotated[int, typer.Option(help="Image size.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")] = 1,
    device: Annotated[str, device_option()] = "auto",
    steps: Annotated[int, typer.Option(help="Measured training steps per setting (after warm-up).")] = 50,
    warmup: Annotated[int | None, typer.Option(help="Warm-up steps per setting (default: 10 on CUDA, 1 on a CPU).")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="Also torch.compile the fast setting.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a method option: key=value.")] = None,
    json_out: Annotated[Path | None, json_option("Write the results as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Training images/s, translate images/s and peak memory: i2i's fast settings vs the official-style recipe."""
    if ctx.invoked_subcommand is not None:
        return
    from i2i_cli.benchmarks.train import run_train_benchmark

    info(f"benchmarking {model} at {size} px, batch {batch_size}: baseline then fast settings ...")
    started = time.perf_counter()
    report = run_train_benchmark(model, size=size, batch_size=batch_size, steps=steps, warmup=warmup, device=device,
                                 compile_=compile_, overrides=set_ or [])
    base, fast = report.rows
    cuda = base.warmup_peak_memory_mb is not None
    rows = [(r.setting, _spread(r.train_images_per_s, r.train_images_per_s_range),
             _spread(r.translate_images_per_s, r.translate_images_per_s_range), r.peak_memory_mb,
             f"{r.setup_seconds:.1f} / {sum(r.step_seconds):.1f} / {r.finish_seconds + r.translate_seconds:.1f}",
             *((r.warmup_peak_memory_mb,) if cuda else ())) for r in report.rows]
    rows.append(("ratio fast / baseline", f"{fast.train_images_per_s / max(base.train_images_per_s, 1e-9):.3g}",
                 f"{fast.translate_images_per_s / max(base.translate_images_per_s, 1e-9):.3g}",
                 fast.peak_memory_mb / max(base.peak_memory_mb, 1e-9), "-", *(("-",) if cuda else ())))
    memory = "peak memory MB (measured steps)" if cuda else "peak RSS MB (process so far)"
    print_table(f"{model} on {report.device}, {size} px, batch {batch_size}, {steps} measured steps per setting; "
                "img/s: median (slowest-fastest)",
                ["setting", "train img/s", "translate img/s", memory, "set-up / steps / rest s",
                 *(["warm-up peak MB"] if cuda else [])], rows)
    agreement = ", ".join(f"{k} {v:.1%}" for k, v in report.loss_agreement.items())
    console.print(f"loss curves, mean |fast - baseline| relative to the baseline: {agreement}")
    console.print(f"whole benchmark {time.perf_counter() - started:.1f} s (set-up: building, synthetic data, cache, "
                  "warm-up; rest: stopping the trainer and the translate timing)")
    if json_out:
        write_json(json_out, report.to_json())


def _spread(median: float, bounds: tuple[float, float]) -> str:
    return f"{median:.3g} ({bounds[0]:.3g}-{bounds[1]:.3g})"


@bench_app.command("translate")
@handle_errors
def bench_translate(
    model: Annotated[str, typer.Option("--model", "-m", help="Method whose generator to time.", callback=known_method, autocompletion=method_names)] = "cyclegan",
    size: Annotated[int, typer.Option(help="Image size.")] = 256,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Batch size(s), comma-separated: 1,8,32.")] = "1",
    precision: Annotated[str, typer.Option(help="Precision(s), comma-separated: auto,fp32,fp16,bf16 (fp16: CUDA).")] = "fp32",
    images: Annotated[int, typer.Option(help="Images in each end-to-end folder run.")] = 20,
    repeats: Annotated[int, typer.Option(help="Timed forward passes per round for the model-only figures.")] = 10,
    rounds: Annotated[int, typer.Option(help="Rounds; the settings are interleaved within each round.")] = 3,
    tile: Annotated[int, typer.Option(help="Translate in tiles of this size (e.g. --size 1024 --tile 256; 0: whole images).")] = 0,
    device: Annotated[str, device_option()] = "auto",
    json_out: Annotated[Path | None, json_option("Write the results as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Model-only images/s (PyTorch eager, ONNX Runtime) and end-to-end folder images/s (JPEG in, PNG out),
    for every batch size and precision asked for: medians over interleaved rounds, with min-max."""
    from i2i_cli.benchmarks.translate import run_translate_benchmark
    from i2i_cli.errors import ConfigError

    try:
        batch_sizes = tuple(int(b) for b in parse_csv(batch_size))
    except ValueError:
        raise ConfigError(f"--batch-size {batch_size}: give whole numbers separated by commas, e.g. 1,8,32") from None
    with progress_bar("translate benchmark", None, transient=True) as advance:
        r = run_translate_benchmark(model, size, batch_sizes, images, device, repeats, tuple(parse_csv(precision)),
                                    progress=lambda label, done, total: advance(0, status=label, completed=done, total=total),
                                    rounds=rounds, tile=tile)
    tiles = f", tiles of {tile}" if tile else ""
    print_table(f"{r.model} generator ({r.network}), {size} px{tiles}, {r.device}, {r.torch_threads} torch threads; "
                f"images/s, median (min-max) over {rounds} interleaved rounds (model only: the median of {repeats} "
                f"calls in each), host in and host out on both sides",
                ["batch", "precision", "PyTorch model only", f"ONNX Runtime ({r.onnx_provider or '-'})",
                 "end to end (JPEG in, PNG out)", "end to end / model only (same round)"],
                [(row.batch_size, row.precision, _spread(row.torch_model_only, row.torch_model_only_range),
                  _spread(row.onnx_model_only, row.onnx_model_only_range) if row.onnx_model_only is not None else "-",
                  _spread(row.end_to_end, row.end_to_end_range), _spread(row.ratio, row.ratio_range))
                 for row in r.rows])
    if json_out:
        write_json(json_out, r.to_json())


@bench_app.command("serve")
@handle_errors
def bench_serve(
    image: Annotated[Path, typer.Argument(help="The image every request sends.", exists=True, dir_okay=False)],
    url: Annotated[str, typer.Option(help="The running `i2i serve`.")] = "http://127.0.0.1:8000",
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Concurrent clients, comma-separated: 1,8.")] = "1,8",
    requests: Annotated[int, typer.Option(help="Requests per round.")] = 50,
    rounds: Annotated[int, typer.Option(help="Rounds (figures are medians over them).")] = 3,
    json_out: Annotated[Path | None, json_option("Write the results as JSON")] = None,
) -> None:
    """Requests/s and latency percentiles of a running `i2i serve`, from C concurrent clients on this machine."""
    from i2i_cli.benchmarks.serve import run_serve_benchmark
    from i2i_cli.errors import ConfigError

    try:
        levels = [int(c) for c in parse_csv(concurrency)]
    except ValueError:
        raise ConfigError(f"--concurrency {concurrency}: give whole numbers separated by commas, e.g. 1,8") from None
    results = []
    for level in levels:
        with progress_bar(f"{level} client(s)", rounds, transient=True) as advance:
            results.append(run_serve_benchmark(url, image, level, requests, rounds,
                                               lambda done, total: advance(0, completed=done, total=total)))
    first = results[0]
    print_table(f"{first.metadata.get('method', '?')} served at {url}, {first.size[0]}x{first.size[1]} image; "
                f"requests/s: median (min-max) of {rounds} rounds of {requests}",
                ["clients", "requests/s", "p50 ms", "p90 ms", "p99 ms", "mean batch"],
                [(b.concurrency, _spread(statistics.median(b.rounds), (min(b.rounds), max(b.rounds))),
                  f"{b.percentile(50):.0f}", f"{b.percentile(90):.0f}", f"{b.percentile(99):.0f}",
                  f"{sum(b.batches) / len(b.batches):.2f}") for b in results])
    if json_out:
        write_json(json_out, {"results": [b.to_json() for b in results]})


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench", help="Benchmarks: `i2i bench --model M` (training), `i2i bench translate`, `i2i bench serve`.")

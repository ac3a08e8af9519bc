"""`i2i demo`: synthesise data, train pix2pix, translate the test split, write an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import console, device_option, handle_errors, info, progress_bar


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the data, run, outputs and report.")] = Path("i2i_demo"),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 400,
    size: Annotated[int, typer.Option(help="Image size.")] = 64,
    device: Annotated[str, device_option()] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Run again into an existing --out.")] = False,
) -> None:
    """Run the whole loop on built-in synthetic data (a few minutes on a laptop CPU)."""
    from i2i_cli.demo import run_demo

    state = {"advance": None}

    def on_event(event) -> None:
        if event.kind == "start" and state["advance"]:
            state["advance"](0, total=event.total, completed=event.step)
        elif event.kind == "step" and state["advance"]:
            state["advance"](completed=event.step, status=f"G_L1 {event.losses.get('G_L1', 0):.2f}")

    with progress_bar("demo: training pix2pix", None) as advance:
        state["advance"] = advance
        result = run_demo(out, steps=steps, size=size, device=device, overwrite=overwrite, on_stage=info,
                          on_train_event=on_event)
    console.print(f"mean L1 to the targets on {result.test_images} test images: {result.l1_identity:.3f} for the "
                  f"inputs as they are, {result.l1_output:.3f} after translation")
    where = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
    console.print(f"done in {result.seconds:.0f} s ({where}). Report: [bold]{result.report.resolve()}[/]")
    console.print(f"next: i2i translate --checkpoint {result.run} YOUR_IMAGES/ OUT/   (or train on your own data: "
                  "i2i train --model pix2pix --data DIR --out RUN)")


def register(app: typer.Typer) -> None:
    app.command("demo", help="Synthesise data, train pix2pix, translate the test split, write an HTML report.")(demo)

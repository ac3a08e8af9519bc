"""`i2i demo`: the whole loop on built-in data: synthesise, train pix2pix, translate the test split, report."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i2i_cli.data.images import list_images, load_image, save_image, split_halves
from i2i_cli.data.synth import synthesize
from i2i_cli.engine.checkpoint import load_for_inference
from i2i_cli.engine.report import loss_curves_svg, read_metrics
from i2i_cli.engine.trainer import TrainEvent, TrainOptions, train
from i2i_cli.errors import ConfigError
from i2i_cli.fsutil import atomic_write_text
from i2i_cli.inference import TorchTranslator, TranslateOptions, translate_folder

StageFn = Callable[[str], None]

# pix2pix at half its paper width (ngf = ndf = 32 instead of 64): about 3.3x less work per step on a CPU
# (measured back to back: 4.5 vs 14.7 s per batch-4 step on the heavily loaded 2-core machine). On these 64 px
# scenes its mean L1 to the targets is 0.050 after the 400 steps (0.0497; the full width: 0.048).
# The rest is the paper's recipe.
DEMO_WIDTH = 32


@dataclass
class DemoResult:
    root: Path
    run: Path
    report: Path
    test_images: int
    l1_identity: float  # mean |input - target| (what doing nothing scores)
    l1_output: float  # mean |output - target| after training
    seconds: float
    timings: dict[str, float]  # seconds per stage: synthesis, training, translation, report


def _split_pairs(test_dir: Path, inputs: Path, targets: Path) -> list[str]:
    names = []
    for file in list_images(test_dir):
        source, target = split_halves(load_image(file))
        save_image(np.ascontiguousarray(source), inputs / file.name, overwrite=True)
        save_image(np.ascontiguousarray(target), targets / file.name, overwrite=True)
        names.append(file.name)
    return names


def _mean_l1(a_dir: Path, b_dir: Path, names: list[str]) -> float:
    values = [np.abs(load_image(a_dir / n).astype(np.float32) - load_image(b_dir / n).astype(np.float32)).mean() / 255
              for n in names]
    return float(np.mean(values))


def _report(root: Path, run: Path, names: list[str], l1_identity: float, l1_output: float) -> Path:
    rows = "\n".join(
        f"<tr><td>{html.escape(n)}</td>" + "".join(
            f'<td><img src="{folder}/{html.escape(n)}" width="128" style="image-rendering:pixelated"></td>'
            for folder in ("inputs", "outputs", "targets")) + "</tr>"
        for n in names
    )
    page = f"""<!doctype html><meta charset="utf-8"><title>i2i demo</title>
<body style="font-family:sans-serif">
<h1>i2i demo: pix2pix, label maps to photos</h1>
<p>Synthetic paired data (<code>i2i data synth scenes</code>), trained with <code>i2i train --model pix2pix</code>,
test split translated with <code>i2i translate</code>. Run folder: {html.escape(str(run))}
(<a href="run/index.html">training report</a>).</p>
<p>Mean L1 to the target (0..1): input as is {l1_identity:.3f}, translated {l1_output:.3f}.</p>
<h2>Loss curves</h2>{loss_curves_svg(read_metrics(run))}
<h2>Test split: input | output | target</h2>
<table><tr><th>file</th><th>input</th><th>output</th><th>target</th></tr>{rows}</table>
</body>"""
    atomic_write_text(root / "index.html", page)
    return root / "index.html"


def run_demo(
    out: Path = Path("i2i_demo"),
    *,
    size: int = 64,
    steps: int = 400,
    n_train: int = 200,
    n_test: int = 16,
    batch_size: int = 4,
    width: int = DEMO_WIDTH,
    device: str = "auto",
    overwrite: bool = False,
    seed: int = 0,
    on_stage: StageFn | None = None,
    on_train_event: Callable[[TrainEvent], None] | None = None,
) -> DemoResult:
    stage = on_stage or (lambda text: None)
    start = time.time()
    timings: dict[str, float] = {}
    root = Path(out)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise ConfigError(f"{root} already exists: pass --overwrite to run the demo again there, or --out DIR")
    stage(f"1/3 synthesising {n_train} + {n_test} label/photo pairs at {size} px")
    data = synthesize("scenes", root / "data", "aligned", size=size, n_train=n_train, n_test=n_test, seed=seed,
                      overwrite=True).root
    timings["synthesis"] = time.time() - start
    stage(f"2/3 training pix2pix (ngf = ndf = {width}) for {steps} steps (batch {batch_size})")
    from i2i_cli.config import resolve_config

    config = resolve_config("pix2pix", overrides=[f"ngf={width}", f"ndf={width}"],
                            explicit={"size": size, "batch_size": batch_size})
    run = root / "run"
    train("pix2pix", config, TrainOptions(data=data, out=run, steps=steps, device=device, seed=seed, overwrite=True),
          on_train_event)
    timings["training"] = time.time() - start - sum(timings.values())
    stage("3/3 translating the test split and writing the report")
    names = _split_pairs(data / "test", root / "inputs", root / "targets")
    translator = TorchTranslator(load_for_inference(run), device=device)
    translate_folder(root / "inputs", root / "outputs", translator, TranslateOptions(overwrite=True))
    l1_identity = _mean_l1(root / "inputs", root / "targets", names)
    l1_output = _mean_l1(root / "outputs", root / "targets", names)
    timings["translation"] = time.time() - start - sum(timings.values())
    report = _report(root, run, names, l1_identity, l1_output)
    timings["report"] = time.time() - start - sum(timings.values())
    return DemoResult(root, run, report, len(names), l1_identity, l1_output, time.time() - start, timings)

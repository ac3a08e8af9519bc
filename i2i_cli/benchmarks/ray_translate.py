"""Translation on the local engine vs the Ray engine with 1 and 2 actors, and Ray's fixed start-up cost.

    python -m i2i_cli.benchmarks.ray_translate --images 16 --size 128 --repeats 3 [--json FILE]

A fresh pix2pix (U-Net, ngf 64: weights do not change speed) written as a run; JPEG inputs, PNG out. Each Ray
figure is end to end on a running Ray: planning, the actor pool's start (each actor loads the model), the
work, and the results streamed back. Start-up is ray.init(num_cpus=N) to a usable cluster plus its shutdown.
Medians with the spread (min-max) of the repeats."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _make_run(root: Path, size: int) -> Path:
    from i2i_cli.engine.checkpoint import RunConfig, save_checkpoint, write_run_config
    from i2i_cli.models import registry

    cls = registry.method_class("pix2pix")
    method = cls(cls.config_class(size=size))
    run = root / "run"
    run.mkdir()
    config = RunConfig("pix2pix", method.config.to_dict(), method.domains)
    write_run_config(run, config)
    save_checkpoint(run, config, 0, method.saved_state_dict(), None, None)
    return run


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_benchmark(images: int = 16, size: int = 128, repeats: int = 3, cpus: int = 2) -> dict[str, Any]:
    import numpy as np
    import ray
    from PIL import Image

    from i2i_cli.api import Translator
    from i2i_cli.inference import TranslateOptions
    from i2i_cli.ray_engine import RayOptions, translate_on_ray

    with tempfile.TemporaryDirectory(prefix="i2i-bench-ray-") as tmp:
        root = Path(tmp)
        run = _make_run(root, size)
        (root / "in").mkdir()
        rng = np.random.default_rng(0)
        for i in range(images):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "in" / f"{i:04d}.jpg")
        startup = []
        for _ in range(repeats):
            start = time.perf_counter()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            ray.get(ray.remote(lambda: 1).remote())
            ray.shutdown()
            startup.append(time.perf_counter() - start)
        rates: dict[str, list[float]] = {"local": [], "ray, 1 actor": [], "ray, 2 actors": []}
        translator = Translator(run, "cpu")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            for repeat in range(repeats):
                start = time.perf_counter()
                translator.translate_folder(root / "in", root / f"local{repeat}")
                rates["local"].append(images / (time.perf_counter() - start))
                for actors in (1, 2):
                    start = time.perf_counter()
                    translate_on_ray(root / "in", root / f"ray{actors}_{repeat}", run, TranslateOptions(device="cpu"),
                                     RayOptions(actors=actors))
                    rates[f"ray, {actors} actor{'s' if actors > 1 else ''}"].append(
                        images / (time.perf_counter() - start))
        finally:
            ray.shutdown()
    return {"images": images, "size": size, "repeats": repeats, "cpus": cpus, "ray": ray.__version__,
            "startup_seconds": _summary(startup), "images_per_second": {k: _summary(v) for k, v in rates.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run_benchmark(args.images, args.size, args.repeats, args.cpus)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)  # noqa: T201 - a benchmark script's output


if __name__ == "__main__":
    main()

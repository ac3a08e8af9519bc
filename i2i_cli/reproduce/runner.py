"""`i2i reproduce NAME`: download the data, train every row (each seed), evaluate as the paper did, and compare.

Layout of --out:  data/NAME/ (unless --data), ROW/seed_K/ (a run folder each), results.json, results.md.
A finished run (its planned steps done) is not trained again, so an interrupted reproduction continues where
it stopped; a run stopped half-way is resumed exactly.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from i2i_cli.reproduce.recipes import Recipe, Row, check_recipe

NoteFn = Callable[[str], None]


@dataclass
class ReproduceOptions:
    out: Path
    scale: float = 1.0  # fraction of every schedule (0.01: a smoke test on the same data)
    seeds: int = 1  # training seeds per row (the table shows their mean and spread)
    data: Path | None = None  # an existing dataset folder instead of downloading
    data_url: str | None = None  # download from this mirror instead of the registry's URL
    device: str = "auto"
    weights_dir: Path | None = None
    log_to: tuple[str, ...] = ()


@dataclass
class RowResult:
    row: str
    method: str
    values: dict[str, list[float]] = field(default_factory=dict)  # key -> one value per seed (x eval seed)
    runs: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)  # what was scored: RUN@best or RUN@last
    seconds: float = 0.0


@dataclass
class PlanRow:
    row: str
    method: str
    schedule: str  # "400 epochs" / "100000 steps" at this scale
    options: dict[str, Any]


def plan(recipe: Recipe, options: ReproduceOptions) -> list[PlanRow]:
    """Every row's schedule at this scale, for --dry-run (iterations follow from the data's image count)."""
    from i2i_cli.config import resolve_config

    out = []
    for row in recipe.rows:
        config = resolve_config(row.method, explicit=row.options)
        steps = _scaled_steps(row, options.scale) or (
            max(1, round(config.total_iterations() * options.scale)) if config.total_iterations() and
            row.epochs is None else None)
        epochs = None if steps else _scaled_epochs(row, config, options.scale)
        schedule = f"{steps} steps" if steps else f"{epochs:g} epochs"
        out.append(PlanRow(row.name, row.method, schedule, row.options))
    return out


def estimated_gpu_hours(recipe: Recipe, options: ReproduceOptions) -> float:
    """The recipe's full-schedule estimate scaled by --scale and --seeds."""
    return recipe.gpu_hours * options.scale * options.seeds


def reproduce(recipe: Recipe, options: ReproduceOptions, note: NoteFn = lambda message: None) -> dict[str, Any]:
    """Run the recipe; the table's rows (published vs reproduced) and the protocol, also written to --out."""
    check_recipe(recipe)
    from i2i_cli.evaluation.fid_kid import check_inception_weights

    check_inception_weights(recipe.protocol.mode, options.weights_dir)  # before hours of training, not after
    t0 = time.time()
    data = _dataset(recipe, options, note)
    cache: dict[str, Any] = {}  # the real set's Inception features, computed once for every run and scoring
    results = [_run_row(recipe, row, options, data, note, cache) for row in recipe.rows]
    table = comparison(recipe, results)
    summary = {"recipe": recipe.name, "title": recipe.title, "paper": recipe.paper, "dataset": str(data),
               "scale": options.scale, "seeds": options.seeds, "protocol": asdict(recipe.protocol),
               "verification": recipe.verification, "rows": table, "runs": [asdict(r) for r in results],
               "seconds": round(time.time() - t0, 1)}
    _write(options.out, summary)
    return summary


def _dataset(recipe: Recipe, options: ReproduceOptions, note: NoteFn) -> Path:
    """--data, else OUT/data/NAME (downloaded once)."""
    from i2i_cli.datasets_download import download_dataset

    if options.data is not None:
        return options.data
    root = options.out / "data"
    if (root / recipe.dataset).is_dir():
        return root / recipe.dataset
    note(f"downloading {recipe.dataset} into {root}")
    root.mkdir(parents=True, exist_ok=True)
    return download_dataset(recipe.dataset, root, url=options.data_url).root


def _scaled_epochs(row: Row, config: Any, scale: float) -> float | None:
    if row.steps is not None:
        return None
    if row.epochs is not None:
        return row.epochs * scale
    if config.epochs:
        return config.epochs * scale
    return None


def _scaled_steps(row: Row, scale: float) -> int | None:
    if row.steps is not None:
        return max(1, round(row.steps * scale))
    return None


def _run_row(recipe: Recipe, row: Row, options: ReproduceOptions, data: Path, note: NoteFn,
             cache: dict[str, Any]) -> RowResult:
    """Train the row once per seed (or continue / reuse a run) and evaluate the chosen checkpoint."""
    from i2i_cli.config import resolve_config

    result = RowResult(row.name, row.method)
    config = resolve_config(row.method, explicit=row.options)
    if config.total_iterations() and row.steps is None and row.epochs is None:
        row = replace(row, steps=config.total_iterations())  # an iteration schedule (StarGAN v2) scales as steps
    t0 = time.time()
    for seed in range(options.seeds):
        run = options.out / row.name / f"seed_{seed}"
        note(f"{row.name}: seed {seed} -> {run}")
        _train(recipe, row, config, options, data, run, seed, cache)
        checkpoint = f"{run}@best" if recipe.protocol.select == "best" else f"{run}@last"
        for key, values in _score(recipe, checkpoint, data, options, cache).items():
            result.values.setdefault(key, []).extend(values)
        result.runs.append(str(run))
        result.checkpoints.append(checkpoint)
    result.seconds = round(time.time() - t0, 1)
    return result


def _train(recipe: Recipe, row: Row, config: Any, options: ReproduceOptions, data: Path, run: Path, seed: int,
           cache: dict[str, Any]) -> None:
    from i2i_cli.engine.checkpoint import is_run_dir, run_progress
    from i2i_cli.engine.trainer import TrainOptions, train
    from i2i_cli.evaluation.during_training import TrainingEvaluator
    from i2i_cli.evaluation.evaluate import EvalOptions

    protocol = recipe.protocol
    every = _scaled_interval(protocol.eval_every, options.scale)
    resume = is_run_dir(run)
    if resume:
        step, planned = run_progress(run)
        if planned is not None and step >= planned:
            return  # finished earlier: reused
    evaluator = TrainingEvaluator(data, EvalOptions(metrics=protocol.metrics or ("fid",), mode=protocol.mode,
                                                    device=options.device, weights_dir=options.weights_dir,
                                                    segmenter=protocol.segmenter),
                                   feature_cache=cache) if every else None
    train(row.method, config, TrainOptions(
        data=data, out=run, steps=_scaled_steps(row, options.scale), epochs=_scaled_epochs(row, config, options.scale),
        seed=seed, device=options.device, resume=resume, weights_dir=options.weights_dir, log_to=options.log_to,
        eval_every=every, eval_metrics=protocol.metrics, keep_best=protocol.best_key if protocol.select == "best" else ""),
        evaluator=evaluator)


def _scaled_interval(every: str, scale: float) -> str:
    """--eval-every at this scale: the same number of evaluations over the shorter schedule."""
    if not every:
        return ""
    text = every.strip().lower()
    if text.endswith("e"):
        return f"{float(text[:-1]) * scale:g}e"
    return str(max(1, round(float(text) * scale)))


def _score(recipe: Recipe, checkpoint: str, data: Path, options: ReproduceOptions,
           cache: dict[str, Any]) -> dict[str, list[float]]:
    """The checkpoint evaluated with eval seeds 0..n-1 (StarGAN v2's 10 measurements), the table's keys."""
    from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_run
    from i2i_cli.evaluation.multidomain import MultiDomainOptions

    protocol, values = recipe.protocol, {}
    for seed in range(protocol.eval_seeds):
        eval_options = EvalOptions(metrics=protocol.metrics or ("fid",), mode=protocol.mode, device=options.device,
                                   weights_dir=options.weights_dir, segmenter=protocol.segmenter, seed=seed,
                                   feature_cache=cache)
        result, _ = evaluate_run(checkpoint, data, eval_options, multidomain=MultiDomainOptions(seed=seed))
        for key in protocol.keys:
            value = result.values.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.setdefault(key, []).append(float(value))
    return values


def comparison(recipe: Recipe, results: list[RowResult]) -> list[dict[str, Any]]:
    """One entry per (row, key): published (and its spread), reproduced mean and spread, the difference in
    units of the spread (the published one where given, else the reproduced one)."""
    rows = []
    for result, row in zip(results, recipe.rows, strict=True):
        for key in recipe.protocol.keys:
            got = result.values.get(key, [])
            mean = statistics.fmean(got) if got else None
            spread = statistics.stdev(got) if len(got) > 1 else None
            published = row.published.get(key)
            unit = (published.spread if published and published.spread else spread) if published else None
            delta = (mean - published.value) if published and mean is not None else None
            rows.append({"row": row.name, "method": row.method, "key": key,
                         "published": published.value if published else None,
                         "published_spread": published.spread if published else None,
                         "source": published.source if published else "", "reproduced": mean,
                         "reproduced_spread": spread, "n": len(got), "difference": delta,
                         "difference_in_spreads": delta / unit if delta is not None and unit else None,
                         "checkpoint": recipe.protocol.select, "seconds": result.seconds})
    return rows


def _write(out: Path, summary: dict[str, Any]) -> None:
    """OUT/results.json and OUT/results.md (the table as Markdown)."""
    import json

    from i2i_cli.fsutil import atomic_write_text

    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    lines = [f"# {summary['title']}", "", f"Recipe `{summary['recipe']}`, scale {summary['scale']}, "
             f"{summary['seeds']} seed(s), {summary['seconds']} s.", "",
             "| row | value | published | reproduced | difference / spread | source |", "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['row']} | {r['key']} | {format_value(r['published'], r['published_spread'])} | "
                     f"{format_value(r['reproduced'], r['reproduced_spread'])} | "
                     f"{format_spreads(r['difference_in_spreads'])} | {r['source']} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def format_value(value: float | None, spread: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" + (f" ± {spread:.2g}" if spread else "")


def format_spreads(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"

"""`i2i train`: train a method on a dataset folder into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from i2i_cli.cli import (
    CompileMode,
    DataCache,
    Direction,
    FidMode,
    NanPolicy,
    Precision,
    console,
    device_option,
    existing_path,
    fail,
    handle_errors,
    info,
    json_option,
    known_method,
    method_names,
    parse_csv,
    pip_extra,
    print_table,
    warn,
)


@handle_errors
def train(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Method: see `i2i methods`.", callback=known_method, autocompletion=method_names)] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Dataset folder (see `i2i data check`).", callback=existing_path("folder", "pass the folder that holds train/ (check it with `i2i data check DIR`)"))] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to write.")] = None,
    size: Annotated[int | None, typer.Option(help="Training crop size (load size scales with it).")] = None,
    steps: Annotated[int | None, typer.Option(help="Total iterations (instead of the method's epochs).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Total epochs (default: the method's schedule).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Global batch size.")] = None,
    direction: Annotated[Direction | None, typer.Option(help="Which side of the data is the source.")] = None,
    device: Annotated[str, device_option()] = "auto",
    precision: Annotated[Precision, typer.Option(help="fp16: CUDA, with loss scaling.")] = "fp32",
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of option = value.", callback=existing_path("config file", "pass a TOML file of option = value"))] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override an option: key=value (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (data order, init, augmentation).")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start --out again if it holds a run (and replace an existing --json file).")] = False,
    workers: Annotated[int, typer.Option(help="Data loader worker processes.")] = 0,
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: up to 5 per run within 5% of the training time; always the last step).")] = 0,
    keep: Annotated[int, typer.Option(help="Checkpoints kept: the newest N (0: all).")] = 2,
    sample_every: Annotated[int, typer.Option(help="Sample grid every N steps (0: up to 10 per run within 5% of the training time; always the last step).")] = 0,
    log_every: Annotated[int, typer.Option(help="Log losses every N steps.")] = 10,
    nan_policy: Annotated[NanPolicy, typer.Option(help="On a NaN/inf loss: stop, or skip the step.")] = "stop",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="channels-last memory format.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the networks where supported.")] = False,
    compile_mode: Annotated[CompileMode, typer.Option(help="torch.compile mode.")] = "default",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of pretrained weight files (as I2I_WEIGHTS_DIR): VGG16 for F/LSeSim, DRN-D-22 for the segmenter.")] = None,
    data_cache: Annotated[DataCache, typer.Option("--data-cache", help="Keep decoded images: auto (memory if they fit a quarter of the RAM, else disk), memory, disk, off.")] = "auto",
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="Under torchrun on GPUs: BatchNorm statistics over all processes (fyu/drn's --bn-sync).")] = False,
    log_to: Annotated[str, typer.Option("--log-to", help=f"Experiment trackers, comma-separated: tensorboard (default), wandb, mlflow ({pip_extra('trackers')}), or none.")] = "tensorboard",
    json_out: Annotated[Path | None, json_option("Write the result summary as JSON")] = None,
    eval_every: Annotated[str, typer.Option("--eval-every", help="Evaluate the run every N steps (500) or epochs (5e) on the data's test split, as `i2i eval --checkpoint` would; logged to metrics.jsonl, the report and the trackers.")] = "",
    eval_metrics: Annotated[str, typer.Option("--eval-metrics", help="With --eval-every: fid, kid (comma-separated; paired data adds lpips). StarGAN v2 and segmenter runs use their own protocol.")] = "fid,kid",
    eval_mode: Annotated[FidMode, typer.Option("--eval-mode", metavar="MODE", help="With --eval-every: the FID mode (clean, legacy_tensorflow, legacy_pytorch = pytorch-fid, stargan_v2).")] = "clean",
    eval_segmenter: Annotated[str | None, typer.Option("--eval-segmenter", help="With --eval-every on a paired labels -> photo run: also the FCN-score with this segmenter.")] = None,
    keep_best: Annotated[str, typer.Option("--keep-best", help="Keep the checkpoint with the best value of this key (fid, kid_mean, mean_iou...) as RUN/checkpoints/best (use --checkpoint RUN@best).")] = "",
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 178,956,970 or I2I_MAX_PIXELS; 0: no limit).")] = None,
) -> None:
    """Train a method (paper defaults; override with --config / --set) and write a run folder."""
    _check_outputs(out, json_out, resume)
    from i2i_cli.data.images import set_max_pixels

    set_max_pixels(max_pixels)
    model, data, cfg, steps = _resolve_run(model, data, out, config, set_ or [], resume, steps, epochs,
                                           {"size": size, "batch_size": batch_size, "direction": direction})
    if resume and out is not None and not eval_every:
        eval_every, eval_metrics, keep_best = _saved_evaluation(out, eval_metrics, keep_best)
    if config is not None:
        from i2i_cli.config import ignored_tables

        for table in ignored_tables(config, model):
            warn(f"--config {config}: [{table}] is not read by {model} (only top-level keys and [{model}] are)")
    if nan_policy not in ("stop", "skip"):
        raise fail(f"--nan-policy {nan_policy}: choose stop or skip")
    from i2i_cli.engine.trackers import parse_log_to
    from i2i_cli.engine.trainer import TrainOptions

    options = TrainOptions(data=data, out=out, steps=steps, epochs=epochs, seed=seed, device=device,
                           precision=precision, resume=resume, overwrite=overwrite, workers=workers,
                           save_every=save_every, keep=keep, sample_every=sample_every, log_every=log_every,
                           nan_policy=nan_policy, channels_last=channels_last, compile=compile_,
                           compile_mode=compile_mode, sync_batchnorm=sync_bn, weights_dir=weights_dir,
                           data_cache=data_cache, log_to=tuple(parse_log_to(log_to)), eval_every=eval_every,
                           eval_metrics=tuple(parse_csv(eval_metrics)) if eval_every else (), keep_best=keep_best)
    evaluator = training_evaluator(data, options, eval_mode, eval_segmenter, device, weights_dir)
    _print_result(model, run_with_progress(model, cfg, options, evaluator), json_out)


def training_evaluator(data: Path, options: Any, mode: str, segmenter: str | None, device: str,
                       weights_dir: Path | None) -> Any:  # -> TrainingEvaluator | None
    """The evaluator --eval-every calls (None without it); its metrics and --keep-best checked before training."""
    if not options.eval_every:
        return None
    from i2i_cli.evaluation.during_training import TrainingEvaluator
    from i2i_cli.evaluation.evaluate import EvalOptions, requested_metrics

    requested_metrics(options.eval_metrics)
    evaluator = TrainingEvaluator(data, EvalOptions(metrics=options.eval_metrics, mode=mode, device=device,
                                                    weights_dir=weights_dir, segmenter=segmenter))
    evaluator.check()
    return evaluator


def _resolve_run(model: str | None, data: Path | None, out: Path | None, config: Path | None, overrides: list[str],
                 resume: bool, steps: int | None, epochs: float | None,
                 explicit: dict[str, Any]) -> tuple[str, Path, Any, int | None]:
    """The method, dataset, resolved config and steps: from the options, or from the run --resume continues."""
    from i2i_cli.engine.checkpoint import check_resumable

    if resume and out is not None:  # a Hub folder, a run without a checkpoint: refused with the reason
        check_resumable(out)
    if resume and out is not None:  # options not given come from the run, not the defaults
        model, data, cfg, planned = _saved_run(out, model, data, config, overrides, explicit)
        if steps is None and epochs is None:
            steps = planned  # continue to the run's planned end
    elif model is None or data is None or out is None:
        raise fail("pass --model M --data DIR --out RUN (e.g. i2i train --model pix2pix --data facades --out runs/f), "
                   "or --out RUN --resume to continue a run, or try `i2i demo`")
    else:
        from i2i_cli.config import resolve_config

        cfg = resolve_config(model, config_file=config, overrides=overrides, explicit=explicit)
    if resume and out is not None:
        _refuse_finished(out, steps, epochs)
    return model, data, cfg, steps


def _saved_evaluation(out: Path, eval_metrics: str, keep_best: str) -> tuple[str, str, str]:
    """`--resume` without --eval-every: the run's own evaluation settings continue (and its best with them)."""
    from i2i_cli.engine.checkpoint import is_run_dir, read_run_config

    if not is_run_dir(out):
        return "", eval_metrics, keep_best
    saved = read_run_config(out).train
    metrics = ",".join(saved.get("eval_metrics") or []) or eval_metrics
    return str(saved.get("eval_every") or ""), metrics, keep_best or str(saved.get("keep_best") or "")


def _print_result(model: str, result: Any, json_out: Path | None) -> None:  # result: TrainResult
    """The last losses as a table, what was skipped, where the run and its report are; --json."""
    rows = [(k, v) for k, v in result.final_losses.items()]
    print_table(f"{model}: {result.steps} steps in {result.seconds:.1f} s", ["loss", "last value"], rows)
    if result.bad_files:
        warn(f"{len(result.bad_files)} unreadable image(s) were skipped: {', '.join(result.bad_files[:3])}")
    if result.skipped_steps:
        warn(f"{result.skipped_steps} step(s) skipped for non-finite losses (--nan-policy skip)")
    if result.evaluations:
        keys = list(dict.fromkeys(k for e in result.evaluations for k in e["values"]))[:6]
        print_table("evaluations during training", ["step", *keys],
                    [(e["step"], *(e["values"].get(k) for k in keys)) for e in result.evaluations])
    if result.best:
        console.print(f"best {result.best['key']}: {result.best['value']:.4g} at step {result.best['step']} "
                      f"(--checkpoint {result.run_dir}@best)")
    console.print(f"run: {result.run_dir}  (report: {result.run_dir / 'index.html'})")
    if json_out:
        from i2i_cli.cli import write_json

        write_json(json_out, {"run": str(result.run_dir), "steps": result.steps, "losses": result.final_losses,
                              "seconds": result.seconds, "bad_files": result.bad_files,
                              "evaluations": result.evaluations, "best": result.best})


def _check_outputs(out: Path | None, json_out: Path | None, resume: bool) -> None:
    """--out must be (or become) a writable folder and --json a writable file: refused before any work."""
    from i2i_cli.fsutil import check_output_file, check_output_folder

    if out is not None:
        check_output_folder(out, "--out")
    if json_out is not None:
        check_output_file(json_out, "--json")


def _refuse_finished(out: Path, steps: int | None, epochs: float | None) -> None:
    """`--resume` of a run whose last checkpoint is at (or past) the steps it would train to: say so, and how to
    extend it, instead of "N steps in 0.1 s" and an empty table."""
    from i2i_cli.engine.checkpoint import is_run_dir, run_progress

    if not is_run_dir(out):
        return  # the trainer says "nothing to resume"
    step, planned = run_progress(out)
    target = steps if steps is not None else (planned if epochs is None else None)
    if target is not None and step >= target:
        raise fail(f"--resume: {out} is finished ({step} of {target} steps done); to train further pass a larger "
                   f"total, e.g. --resume --steps {step + max(step // 2, 1)} (--steps counts from the run's start)")

def _saved_run(out: Path, model: str | None, data: Path | None, config: Path | None, overrides: list[str],
               explicit: dict) -> tuple[str, Path, object, int | None]:
    """`--out RUN --resume`: the run's method, dataset and options (--config, --set and options given on top, to
    be compared with the run's), its planned steps."""
    from i2i_cli.config import apply_values, parse_set, read_config_file
    from i2i_cli.engine.checkpoint import CONFIG_FILE, build_config, read_run_config

    saved = read_run_config(out)
    if model is not None and model != saved.method:
        raise fail(f"--model {model}: {out} is a {saved.method} run; drop --model to resume it")
    cfg = build_config(saved.method, saved.config, str(out / CONFIG_FILE))
    if config is not None:
        cfg = apply_values(cfg, read_config_file(config, saved.method), str(config))
    cfg = apply_values(cfg, parse_set(overrides), "--set")
    cfg = apply_values(cfg, {k: v for k, v in explicit.items() if v is not None}, "option")
    planned = saved.train.get("total_steps")
    return saved.method, data or Path(saved.data.get("root", "")), cfg, int(planned) if planned else None


def run_with_progress(model: str, cfg, options, evaluator=None):  # -> TrainResult
    """Run the trainer under a rich progress bar showing the losses (only on rank 0)."""
    import os

    from i2i_cli.cli import progress_bar
    from i2i_cli.engine.trainer import train as run_training

    quiet = int(os.environ.get("RANK", "0")) != 0
    state = {"advance": None}

    def on_event(event) -> None:
        if quiet:
            return
        if event.kind == "start":
            info(event.message)
            if state["advance"] is not None:
                state["advance"](0, total=event.total, completed=event.step)
        elif event.kind == "warning":
            warn(event.message)
        elif event.kind == "eval":
            info(f"eval {event.message}")
        elif event.kind == "step" and state["advance"] is not None:
            text = "  ".join(f"{k} {v:.3f}" for k, v in list(event.losses.items())[:6])
            state["advance"](completed=event.step, status=text)

    with progress_bar(f"train {model}", None) as advance:
        state["advance"] = advance
        return run_training(model, cfg, options, on_event, evaluator)


def register(app: typer.Typer) -> None:
    app.command("train", help="Train a method on a dataset folder (pix2pix, cyclegan, cut, ... see `i2i methods`).")(train)

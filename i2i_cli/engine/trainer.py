"""The trainer: the only code that touches optimizers, precision, EMA, distribution and checkpoints.

One harness trains every method from what the method declares (models/base.py). Exact resume: the data
order and augmentation are a function of the step (i2i_cli/data/datasets.StepSampler), and the checkpoint
holds the optimizers, schedulers, gradient scaler, EMA copies, method state (image pools) and RNG states.
Distributed: launched by torchrun (RANK/WORLD_SIZE set); gradients are averaged over ranks after every
backward pass; each rank loads its share of every global batch; only rank 0 writes anything.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from i2i_cli.data.datasets import (
    MAX_BAD_FRACTION,
    Augment,
    StepSampler,
    collate,
)
from i2i_cli.data.images import uint8_tensor_to_signed
from i2i_cli.data.layouts import Layout, detect_layout, require_layout
from i2i_cli.diffusion.base_model import attach_base_model
from i2i_cli.engine import checkpoint as ckpt
from i2i_cli.engine.cadence import SampleCadence
from i2i_cli.engine.device import Precision, preview_precision, resolve_device, resolve_precision
from i2i_cli.engine.fixed_weights import load_pretrained_modules
from i2i_cli.engine.network_fit import SHAPE_ERRORS, size_error
from i2i_cli.engine.report import sample_grid, truncate_metrics, write_report
from i2i_cli.engine.trackers import Trackers, check_trackers, open_trackers
from i2i_cli.errors import ConfigError, DataError, TrainingDiverged
from i2i_cli.models.base import MethodConfig, OptimizerSpec, Progress, TranslationMethod
from i2i_cli.weights import resolve as resolve_weights


@dataclass
class TrainOptions:
    data: Path
    out: Path
    steps: int | None = None  # total iterations (overrides epochs)
    epochs: float | None = None  # total epochs (default: the method's schedule)
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    resume: bool = False
    overwrite: bool = False
    workers: int = 0
    cache: bool = True
    log_every: int = 10
    sample_every: int = 0  # 0: about 10 grids per run
    save_every: int = 0  # 0: up to 5 checkpoints per run within 5% of the training time (cadence.py); always the last
    keep: int = 2
    nan_policy: str = "stop"  # stop | skip
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune
    fused_optimizer: bool = True  # fused Adam / SGD kernels (CUDA and CPU); False: the plain per-tensor loop
    cudnn_benchmark: bool = True
    weights_dir: Path | None = None
    sync_batchnorm: bool = False  # BatchNorm statistics over all processes (CUDA, several processes)
    data_cache: str = "auto"  # where decoded images are kept: auto | memory | disk | off (see decoded_cache)
    log_to: tuple[str, ...] = ("tensorboard",)  # experiment trackers: tensorboard, wandb, mlflow (engine/trackers.py)
    eval_every: str = ""  # evaluate every N steps ("500") or epochs ("5e"); "": never (needs an evaluator)
    eval_metrics: tuple[str, ...] = ()  # what the evaluator scores ((): the method's own protocol)
    keep_best: str = ""  # a value key the evaluator reports (fid, kid_mean, mean_iou...): its best checkpoint is kept
    # Options a resumed run may change: they don't change what is trained. total_steps is not an option but
    # the plan they make, saved next to them in config.json.
    resumable: ClassVar[tuple[str, ...]] = (
        "steps", "epochs", "device", "workers", "log_every", "sample_every", "save_every", "keep", "nan_policy",
        "resume", "overwrite", "cache", "compile", "channels_last", "precision", "total_steps", "fused_optimizer",
        "cudnn_benchmark", "compile_mode", "sync_batchnorm", "data_cache", "log_to", "eval_every", "eval_metrics",
        "keep_best",  # best.json names its key: a new key starts a new best
    )


@dataclass
class TrainEvent:
    kind: str  # start | step | sample | checkpoint | eval | warning | done
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    message: str = ""
    path: Path | None = None


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_losses: dict[str, float]
    seconds: float
    bad_files: list[str]
    skipped_steps: int
    method: Any = None  # the trained method, in memory (live weights, not the EMA copies)
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # {"step", "values"} of this session's evaluations
    best: dict[str, Any] | None = None  # RUN/best.json after the run (--keep-best)


class RunEvaluator(Protocol):
    """Scores a saved checkpoint during training. The command layer builds it (the engine never imports the
    evaluation package); the trainer calls it on rank 0 at the planned steps."""

    def evaluate(self, checkpoint: Path, step: int) -> dict[str, float]:
        """The values (fid, kid_mean, ...) of the checkpoint folder written at `step`."""
        ...

    def better(self, key: str) -> str:
        """"min" or "max": which way value `key` improves (unknown keys raise ConfigError)."""
        ...


EventFn = Callable[[TrainEvent], None]


# --- distribution ---------------------------------------------------------------------------------


@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device: torch.device) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def average_gradients(params: list[nn.Parameter], world: World) -> None:
    if world.size <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_values(values: list[float], world: World, batch: dict[str, torch.Tensor]) -> list[float]:
    """The mean of logged loss values over ranks, so the log matches a single process with the global batch."""
    import torch.distributed as dist

    device = next((v.device for v in batch.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / world.size).tolist()


# --- setup ----------------------------------------------------------------------------------------


def lr_factor(step: int, total: int, decay: int) -> float:
    """Constant, then linear decay to 0 over the last `decay` steps (the reference's 'linear' policy)."""
    if decay <= 0 or step < total - decay:
        return 1.0
    return max(0.0, (total - step) / float(decay + 1))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2]), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Where torch has fused Adam / AdamW / SGD kernels. On the CPU the fused Adam step is 5-8x the foreach one (which
# is slower there than the plain loop the official code runs): pix2pix's 57 M parameters 30 against 151 ms (loop
# 150), FastCUT's 15 M 9 against 24 ms (benchmarks/optimizer_step.py); it rounds differently from the loop by an ulp.
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")


OPTIMIZER_KINDS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def optimizer_hyperparameters(spec: OptimizerSpec) -> dict[str, Any]:
    """The torch optimizer's keyword arguments a spec sets (kernel choice aside)."""
    if spec.kind == "sgd":
        return {"lr": spec.lr, "momentum": spec.momentum, "weight_decay": spec.weight_decay}
    return {"lr": spec.lr, "betas": spec.betas, "weight_decay": spec.weight_decay, "eps": spec.eps}


def _optimizer(spec: OptimizerSpec, device: torch.device, fused: bool = True) -> torch.optim.Optimizer:
    kwargs = optimizer_hyperparameters(spec)
    params = [p for group in spec.param_groups for p in group["params"]]
    duplicated = len({id(p) for p in params}) != len(params)
    if not fused:
        kwargs["foreach"] = False
    elif device.type in FUSED_OPTIMIZER_DEVICES and not duplicated:  # a fused kernel would update a listed-twice
        kwargs["fused"] = True                                         # tensor in parallel
    else:
        kwargs["foreach"] = True
    with warnings.catch_warnings():  # a method that lists a parameter twice does so on purpose (OptimizerSpec)
        warnings.filterwarnings("ignore", message="optimizer contains a parameter group with duplicate parameters")
        return OPTIMIZER_KINDS[spec.kind](spec.param_groups, **kwargs)


def _lr_lambda(spec: OptimizerSpec, total: int, decay: int) -> Callable[[int], float]:
    """The spec's own schedule, or the default constant-then-linear-decay one."""
    schedule = spec.schedule
    if schedule is not None:
        return lambda s: schedule(s, total)
    return lambda s: lr_factor(s, total, decay)


def sync_batchnorm(method: nn.Module, device: torch.device, processes: int) -> str:
    """Turn every BatchNorm of `method` into SyncBatchNorm in place (state_dict keys unchanged), which PyTorch
    supports on CUDA only; returns a warning when it does not apply."""
    if device.type != "cuda":
        return "--sync-bn: PyTorch synchronises BatchNorm on CUDA only; ignored on the CPU"
    if processes < 2:
        return "--sync-bn: one process, nothing to synchronise; ignored"
    for name, child in list(method.named_children()):
        setattr(method, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return ""


def compile_networks(method: TranslationMethod, mode: str = "default") -> None:
    """torch.compile every trained network in place (state_dict keys unchanged); eager where dynamo fails."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # fall back to eager per graph instead of failing the run
    frozen = set(method.frozen_modules())
    for name, child in method.named_children():
        if name not in frozen and any(True for _ in child.parameters()):
            child.compile(mode=mode)


class EMA:
    """Exponential moving averages of named networks (parameters; buffers are copied)."""

    def __init__(self, method: TranslationMethod, names: list[str], beta: float) -> None:
        self.beta = beta
        self.names = names
        self.copies = {name: copy.deepcopy(getattr(method, name)).eval().requires_grad_(False) for name in names}

    @torch.no_grad()
    def update(self, method: TranslationMethod) -> None:
        for name, shadow in self.copies.items():
            live = getattr(method, name)
            # one foreach call for all of a network's parameters (one kernel per tensor before, on a GPU)
            torch._foreach_lerp_(list(shadow.parameters()), [p.detach() for p in live.parameters()], 1.0 - self.beta)
            for b_ema, b in zip(shadow.buffers(), live.buffers()):
                b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, shadow in self.copies.items() for k, v in shadow.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, shadow in self.copies.items():
            prefix = name + "."
            shadow.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


# --- the plan and what is built from it ------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How long the run is and how often it logs, samples and saves: fixed before any network is built."""

    total: int  # iterations from the run's start (a resumed run continues towards it)
    steps_per_epoch: int
    decay: int  # the last `decay` iterations decay the learning rate linearly to 0 (0: constant)
    sample_every: int
    save_every: int
    eval_every: int = 0  # evaluate every N iterations (0: never)


def plan_run(config: MethodConfig, options: TrainOptions, n_items: int) -> Plan:
    """--steps, else --epochs, else the method's schedule: in epochs, or in iterations where it has no epochs."""
    steps_per_epoch = max(1, n_items // config.batch_size)
    epochs = options.epochs if options.epochs is not None else config.epochs
    iterations = config.total_iterations()
    if options.steps is not None:
        total = int(options.steps)
    elif options.epochs is None and not config.epochs and iterations:
        total = iterations
    else:
        total = max(1, round(epochs * steps_per_epoch))
    decay = round(total * config.decay_epochs / config.epochs) if config.epochs else 0
    return Plan(total, steps_per_epoch, decay, options.sample_every or max(1, total // 10),
                options.save_every or max(1, total // 5), eval_interval(options.eval_every, steps_per_epoch))


def eval_interval(every: str, steps_per_epoch: int) -> int:
    """--eval-every N (iterations) or Ne (epochs, e.g. 5e) -> iterations; "" or 0 -> 0 (never)."""
    text = str(every).strip().lower()
    if not text:
        return 0
    try:
        value = float(text[:-1]) * steps_per_epoch if text.endswith("e") else float(text)
    except ValueError:
        raise ConfigError(f"--eval-every {every}: give iterations (500) or epochs (5e)") from None
    if value < 0 or not math.isfinite(value):
        raise ConfigError(f"--eval-every {every}: give a positive number of iterations (500) or epochs (5e)")
    return max(1, round(value)) if value else 0


@dataclass
class Session:
    """What the trainer built for one run: the loop reads everything from here."""

    out: Path
    device: torch.device
    precision: Precision
    world: World
    dataset: Any
    plan: Plan
    run_config: ckpt.RunConfig
    method: TranslationMethod
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    scaler: torch.amp.GradScaler
    ema: EMA | None
    start: int = 0  # iterations already done (a resumed run's last checkpoint)


# --- the loop --------------------------------------------------------------------------------------


class Trainer:
    def __init__(self, method_name: str, config: MethodConfig, options: TrainOptions,
                 on_event: EventFn | None = None, evaluator: RunEvaluator | None = None) -> None:
        self.method_name = method_name
        self.evaluator = evaluator
        self.evaluations: list[dict[str, Any]] = []
        self.config = config
        self.options = options
        self.emit = on_event or (lambda event: None)
        self.bad_files: set[str] = set()
        self.checked_bad: set[str] = set()
        self._steps_done = 0  # iterations this process ran (a shape error before the first: a size problem)
        self.skipped_steps = 0

    @functools.cached_property
    def method_class(self) -> type[TranslationMethod]:
        """The registry's class for the method: looked up once, when first needed."""
        from i2i_cli.models import registry

        return registry.method_class(self.method_name)

    # setup pieces
    def _layout(self) -> Layout:
        layout = detect_layout(self.options.data)
        require_layout(layout, self.method_class.accepts, self.method_name)
        return layout

    def _run_config(self, layout: Layout, total_steps: int) -> ckpt.RunConfig:
        cls = self.method_class
        domains = layout.domains() if cls.multi_domain else ["A", "B"]
        train = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.options).items()
                 if k not in ("data", "out", "weights_dir")}
        train["total_steps"] = total_steps
        data = {"root": str(Path(self.options.data).resolve()), "layout": layout.kind,
                "counts": layout.counts(), "fingerprint": layout.fingerprint()}
        return ckpt.RunConfig(self.method_name, self.config.to_dict(), domains, data, train)

    def run(self) -> TrainResult:
        opts = self.options
        check_trackers(list(opts.log_to))  # a missing tracker package is a one-line error before any work
        self._check_evaluation()
        device = resolve_device(opts.device)
        precision = resolve_precision(opts.precision, device)
        world = init_world(device)
        layout, domains, dataset = self._data(world)
        plan = plan_run(self.config, opts, len(dataset))
        out = Path(opts.out)
        new_folder = not out.exists()
        with ckpt.run_lock(out, world.is_main):  # one trainer per run folder; dies with the process
            session = self._build(out, device, precision, world, layout, domains, dataset, plan)
            try:
                return self._loop(session)
            except SHAPE_ERRORS as exc:
                if opts.resume or self._steps_done or not world.is_main or "out of memory" in str(exc).lower():
                    raise
                # the networks do not take this --size: the new run is undone, so the corrected command is not
                # refused as "already holds a run"; the error names the sizes that work
                ckpt.remove_run(out, whole_folder=new_folder)
                batch = self._sample_batch(dataset, torch.device("cpu"))
                raise size_error(self.method_class, self.config, domains,
                                 {k: v[:min(2, self.config.batch_size)] for k, v in batch.items()}, exc) from None

    def _data(self, world: World) -> tuple[Layout, list[str], Any]:
        """The layout, the method's domains and its training set (the config completed from the files)."""
        opts = self.options
        layout = self._layout()
        cls = self.method_class
        domains = layout.domains() if cls.multi_domain else ["A", "B"]
        self.config = layout.prepare(self.config)  # e.g. a palette file's colours into the config
        probe = cls(self.config, domains=domains)
        for weights_name in probe.pretrained_weights().values():  # a missing file stops the run before any work
            resolve_weights(weights_name, weights_dir=opts.weights_dir)
        wants = self.config.data_spec()
        augment_spec = Augment(self.config.size, self.config.load_size, self.config.flip, wants.random_resized_crop,
                               wants.random_zoom)
        dataset = layout.training_dataset(cls.accepts[0], "train", augment_spec, direction=self.config.direction,
                                          domains=domains, cache=opts.cache, segmentation=wants.segmentation)
        if opts.cache and hasattr(dataset, "decoder") and hasattr(dataset, "all_keys"):
            self._choose_data_cache(dataset)
        if self.config.batch_size % world.size:
            raise ConfigError(f"--batch-size {self.config.batch_size} must be a multiple of the {world.size} processes")
        self._check_training_files(layout)
        return layout, domains, dataset

    def _build(self, out: Path, device: torch.device, precision: Precision, world: World, layout: Layout,
               domains: list[str], dataset: Any, plan: Plan) -> Session:
        """The run folder checked, the method and its optimisation built, a resumed run's state restored."""
        opts = self.options
        if world.is_main:
            ckpt.prepare_run_dir(out, opts.resume, opts.overwrite)
        run_config = self._run_config(layout, plan.total)
        if opts.resume:
            ckpt.refuse_changed_config(out, run_config, type(self.config).resumable, TrainOptions.resumable)
        method = self._method(device, world, domains)
        specs = method.optimizers()
        self._clip_norms = {s.name: s.max_grad_norm for s in specs}
        optimizers = {s.name: _optimizer(s, device, opts.fused_optimizer) for s in specs}
        schedulers = {s.name: torch.optim.lr_scheduler.LambdaLR(optimizers[s.name], _lr_lambda(s, plan.total, plan.decay))
                      for s in specs}
        scaler = torch.amp.GradScaler(device.type, enabled=precision.uses_scaler)
        ema = EMA(method, method.ema_networks(), self.config.ema_decay()) if method.ema_networks() else None
        if opts.compile:
            compile_networks(method, opts.compile_mode)
        session = Session(out, device, precision, world, dataset, plan, run_config, method, optimizers, schedulers,
                          scaler, ema)
        session.start = self._open_run_dir(session)
        return session

    def _method(self, device: torch.device, world: World, domains: list[str]) -> TranslationMethod:
        """The method with its fixed pretrained networks loaded, on the device."""
        opts = self.options
        _seed_everything(opts.seed)  # the same initial weights on every rank
        method = self.method_class(self.config, domains=domains)
        attach_base_model(method)  # networks made from a diffusion base model (DiffusionBase methods only)
        if world.size > 1:
            _seed_everything(opts.seed + world.rank)  # per-rank randomness (dropout, latent codes, pools)
        for used in load_pretrained_modules(method, opts.weights_dir):
            if not used.verified:
                self.emit(TrainEvent("warning", message=f"{used.name}: {used.path} {used.note}"))
        if opts.sync_batchnorm:
            message = sync_batchnorm(method, device, world.size)
            if message:
                self.emit(TrainEvent("warning", message=message))
        method.to(device)
        if opts.channels_last:
            method.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = opts.cudnn_benchmark
        return method

    def _open_run_dir(self, session: Session) -> int:
        """A new run's config.json, or a resumed run's state (its log cut back to it); the step to start at."""
        opts, out, is_main = self.options, session.out, session.world.is_main
        start = 0
        if opts.resume:
            start = self._restore(out, session.method, session.optimizers, session.schedulers, session.scaler,
                                  session.ema)
            if is_main:  # the run's plan is now this total (what a later bare `--resume` continues to)
                saved = ckpt.read_run_config(out)
                saved.train.update(steps=opts.steps, epochs=opts.epochs, total_steps=session.plan.total)
                ckpt.write_run_config(out, saved)
        elif is_main:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.write_run_config(out, session.run_config)
        if is_main and opts.resume:
            truncate_metrics(out, start)
        return start

    def _loop(self, session: Session) -> TrainResult:
        opts, out, world, plan, method = self.options, session.out, session.world, session.plan, session.method
        dataset, device, total = session.dataset, session.device, session.plan.total
        sampler = StepSampler(len(dataset), self.config.batch_size, opts.seed, session.start, total, world.rank,
                              world.size)
        loader = self._loader(dataset, sampler, device)
        writer = self._trackers(out, session.start, session.run_config) if world.is_main else None
        sample_batch = self._sample_batch(dataset, device)
        self.emit(TrainEvent("start", session.start, total, message=f"{self.method_name} on {device} "
                             f"({session.precision.name}), {len(dataset)} images, {plan.steps_per_epoch} steps/epoch"
                             + (f"; resuming from step {session.start}" if opts.resume else "")))
        t0 = time.time()
        cadence = SampleCadence(total, plan.sample_every, budgeted=not opts.sample_every, save_every=plan.save_every,
                                save_budgeted=not opts.save_every)
        last_losses: dict[str, float] = {}
        metrics_file = (out / "metrics.jsonl").open("a") if world.is_main else None
        try:
            for step, batch in enumerate(loader, start=session.start):
                self._track_bad(batch.pop("bad"), len(dataset))
                batch = self._to_device(batch, device, opts.channels_last)
                progress = Progress(step, total, step / plan.steps_per_epoch, total / plan.steps_per_epoch)
                losses = self._iteration(method, batch, progress, session.optimizers, session.scaler,
                                         session.precision, world, step)
                self._steps_done += 1
                for scheduler in session.schedulers.values():
                    scheduler.step()
                if losses is None:
                    continue
                if session.ema is not None:
                    session.ema.update(method)
                last_losses = losses
                if world.is_main:
                    self._after_step(session, step + 1, losses, metrics_file, sample_batch, time.time() - t0, cadence)
                if world.size > 1 and self._evaluates_at(step + 1, plan):
                    _wait_for_rank0(device)  # the others wait while rank 0 evaluates, then all go on together
                self.emit(TrainEvent("step", step + 1, total, losses))
        finally:
            if metrics_file is not None:
                metrics_file.close()
            if writer is not None:
                writer.close()
        if world.is_main:
            write_report(out, f"{self.method_name}: {out.name}")
        self.emit(TrainEvent("done", total, total, last_losses, path=out))
        best = ckpt.read_best(out) if opts.keep_best and world.is_main else None
        return TrainResult(out, total, last_losses, time.time() - t0, sorted(self.bad_files), self.skipped_steps, method,
                           self.evaluations, best)

    def _after_step(self, session: Session, done: int, losses: dict[str, float], metrics_file: IO[str],
                    sample_batch: dict[str, torch.Tensor], seconds: float, cadence: SampleCadence) -> None:
        """Rank 0 after `done` iterations: the log line and tracker scalars, a sample grid, a checkpoint."""
        plan, optimizers = session.plan, session.optimizers
        with cadence.periodic():
            self._log(session, done, losses, metrics_file, seconds)
        if done == plan.total and not self._evaluates_at(done, plan):
            with cadence.periodic():
                self._finish(session, sample_batch, done)
            return
        if cadence.due(done, done - session.start):
            with cadence.periodic(grid=True):
                self._save_sample(session.out, session.method, sample_batch, done, preview_precision(session.precision))
        evaluate = self._evaluates_at(done, plan)
        if cadence.checkpoint_due(done, done - session.start) or evaluate:  # an evaluation scores a saved checkpoint
            with cadence.periodic(checkpoint=not evaluate):
                path = self._checkpoint(session.out, session.run_config, session.method, session.ema, optimizers,
                                        session.schedulers, session.scaler, done)
            if evaluate:  # asked for by the user: not periodic work the grid budget answers for
                self._evaluate(session, done, path, metrics_file)

    def _log(self, session: Session, done: int, losses: dict[str, float], metrics_file: IO[str],
             seconds: float) -> None:
        plan, optimizers = session.plan, session.optimizers
        if done % self.options.log_every == 0 or done == plan.total:
            lr = next(iter(optimizers.values())).param_groups[0]["lr"] if optimizers else 0.0
            row = {"step": done, "epoch": round(done / plan.steps_per_epoch, 4), "lr": lr, "losses": losses,
                   "time": round(seconds, 3)}
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
            for name, value in losses.items():
                self._writer.add_scalar(f"loss/{name}", value, done)
            self._writer.add_scalar("lr", lr, done)

    # evaluation during training
    def _check_evaluation(self) -> None:
        """--eval-every without an evaluator, or --keep-best of a value the evaluator does not rank: refused
        before any work."""
        opts = self.options
        if (opts.eval_every or opts.keep_best) and self.evaluator is None:
            raise ConfigError("--eval-every / --keep-best need an evaluator (`i2i train` builds one); pass neither, or "
                              "train through `i2i train`")
        if opts.keep_best and not opts.eval_every:
            raise ConfigError(f"--keep-best {opts.keep_best}: nothing is evaluated; add --eval-every N (or Ne)")
        if opts.keep_best:
            assert self.evaluator is not None
            self.evaluator.better(opts.keep_best)

    def _evaluates_at(self, done: int, plan: Plan) -> bool:
        return self.evaluator is not None and plan.eval_every > 0 and (done % plan.eval_every == 0
                                                                      or done == plan.total)

    def _evaluate(self, session: Session, done: int, checkpoint: Path, metrics_file: IO[str]) -> None:
        """Score the checkpoint just saved; log the values (metrics.jsonl, trackers) and keep it if it is the best."""
        assert self.evaluator is not None
        rng = _rng_state()  # evaluation draws (latent codes, references, KID subsets) must not shift training's
        was_training = session.method.training
        try:
            values = self.evaluator.evaluate(checkpoint, done)
        finally:
            _set_rng_state(rng)
            session.method.train(was_training)
        row = {"step": done, "epoch": round(done / session.plan.steps_per_epoch, 4), "eval": values}
        metrics_file.write(json.dumps(row) + "\n")
        metrics_file.flush()
        for name, value in values.items():
            self._writer.add_scalar(f"eval/{name}", value, done)
        self.evaluations.append({"step": done, "values": values})
        message = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self.options.keep_best:
            message += self._keep_best(session.out, checkpoint, done, values)
        self.emit(TrainEvent("eval", done, session.plan.total, values, message=f"step {done}: {message}"))

    def _keep_best(self, out: Path, checkpoint: Path, done: int, values: dict[str, float]) -> str:
        """Copy `checkpoint` to checkpoints/best when its value beats RUN/best.json's; a note for the log line."""
        assert self.evaluator is not None
        key = self.options.keep_best
        value = values.get(key)
        if value is None or not math.isfinite(value):
            self.emit(TrainEvent("warning", message=f"--keep-best {key}: the evaluation at step {done} gave no "
                                 f"finite {key} (it gave {', '.join(values) or 'nothing'})"))
            return ""
        mode = self.evaluator.better(key)
        best = ckpt.read_best(out)
        if best is not None and best.get("key") == key:
            previous = float(best["value"])
            if (value >= previous) if mode == "min" else (value <= previous):
                return f"  (best {key} {previous:.4g} at step {best['step']})"
        ckpt.save_best(out, checkpoint, {"key": key, "mode": mode, "value": value, "step": done, "values": values})
        return f"  (new best {key})"

    # one iteration
    def _iteration(self, method: TranslationMethod, batch: dict[str, torch.Tensor], progress: Progress,
                   optimizers: dict[str, torch.optim.Optimizer], scaler: torch.amp.GradScaler,
                   precision: Precision, world: World, step: int) -> dict[str, float] | None:
        cache: dict[str, Any] = {}
        logged: dict[str, float] = {}
        clip_norms = self._clip_norms
        stepped: set[str] = set()
        for phase in method.phases(progress):
            frozen = [getattr(method, name) for name in phase.frozen]
            flags = [[p.requires_grad for p in m.parameters()] for m in frozen]
            for m in frozen:
                m.requires_grad_(False)
            try:
                with precision.autocast():
                    terms = phase.compute(batch, cache)
                total = sum(t.float() for t in terms.values())
                # One device sync per phase: the loss values are needed to refuse a non-finite step.
                values = dict(zip(terms, torch.stack([t.detach().float() for t in terms.values()]).tolist()))
                if not all(math.isfinite(v) for v in values.values()):
                    bad = next(k for k, v in values.items() if not math.isfinite(v))
                    if self.options.nan_policy == "skip":
                        self.skipped_steps += 1
                        for opt in optimizers.values():
                            opt.zero_grad(set_to_none=True)
                        return None
                    raise TrainingDiverged(
                        f"step {step + 1}: loss {bad} is {values[bad]} (phase {phase.name}); the last good checkpoint "
                        "is kept. Try a lower learning rate (--set lr=...), --precision fp32, or --nan-policy skip"
                    )
                if world.size > 1:
                    values = dict(zip(values, average_values(list(values.values()), world, batch)))
                for name in phase.optimizers:
                    if name not in phase.accumulate:
                        optimizers[name].zero_grad(set_to_none=True)
                if stepped & set(phase.optimizers):  # a second step of one optimizer in this iteration:
                    scaler.update()  # GradScaler takes one step per optimizer between updates
                    stepped.clear()
                scaler.scale(total).backward()
                for name in phase.optimizers:
                    self._step(optimizers[name], clip_norms.get(name, 0.0), scaler, world)
                stepped.update(phase.optimizers)
                logged.update(values)
            finally:
                for m, f in zip(frozen, flags):
                    for p, flag in zip(m.parameters(), f):
                        p.requires_grad_(flag)
        scaler.update()
        return logged

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, max_grad_norm: float, scaler: torch.amp.GradScaler,
              world: World) -> None:
        """Average the gradients over processes, clip them (max_grad_norm > 0), step, and zero them."""
        params = [p for g in optimizer.param_groups for p in g["params"]]
        average_gradients(list(dict.fromkeys(params)), world)  # once per tensor, however often it is listed
        if max_grad_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        scaler.step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    # helpers
    def _choose_data_cache(self, dataset: Any) -> None:
        """Memory when the decoded set fits the RAM budget, else a file on disk, else none (--data-cache)."""
        from i2i_cli.data.decoded_cache import choose_store
        from i2i_cli.weights import i2i_home

        keys = sorted(set(dataset.all_keys()))
        # every data-loading process of every rank on this machine holds its own in-memory copy
        processes = max(1, self.options.workers) * int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        store, message = choose_store(self.options.data_cache, keys, dataset.spec.cache_size,
                                      i2i_home() / "cache" / "decoded", processes=processes)
        dataset.decoder.store = store
        if store is None or store.kind == "disk":
            self.emit(TrainEvent("warning", message=message))

    def _loader(self, dataset: Any, sampler: StepSampler, device: torch.device) -> Any:
        """GPU-resident decoded images when they fit (crops on the GPU), else a DataLoader."""
        opts = self.options
        if device.type == "cuda" and opts.cache and getattr(dataset, "device_cacheable", True):
            from i2i_cli.data.device_cache import DeviceBatches, fits_on_device

            if fits_on_device(dataset, device):
                return DeviceBatches(dataset, sampler, device)
            self.emit(TrainEvent("warning", message="the decoded dataset does not fit in a quarter of the free GPU "
                                 "memory: decoding on the CPU each step instead (raise --workers to keep up)"))
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=opts.workers, collate_fn=collate,
            pin_memory=device.type == "cuda", persistent_workers=opts.workers > 0,
            # its own generator: starting an iterator would otherwise draw from the global RNG and shift it
            generator=torch.Generator().manual_seed(opts.seed),
        )

    def _check_training_files(self, layout: Layout) -> None:
        """Unreadable training images found before the first step (headers: cheap), whatever the run's length:
        more than 1% refuses the run; fewer are named in a warning and skipped."""
        from i2i_cli.data.check import unreadable_headers

        files = [f for group in layout.groups("train").values() for f in group]
        bad = unreadable_headers(files)
        if not bad:
            return
        if len(bad) > max(1, MAX_BAD_FRACTION * len(files)):
            raise DataError(f"{self.options.data}: {len(bad)} of {len(files)} training images are unreadable (more "
                            f"than 1%), e.g. {bad[0][0]} ({bad[0][1]}); run `i2i data check {self.options.data}` "
                            "and fix or remove them")
        self.bad_files.update(f"{path}: {reason}" for path, reason in bad)  # "path: reason", as datasets report
        self.checked_bad = {f"{path}: " for path, _ in bad}  # found here: not counted again when a batch meets them
        self.emit(TrainEvent("warning", message=f"{len(bad)} unreadable training image(s) will be skipped: "
                             f"{', '.join(path for path, _ in bad[:3])} (`i2i data check` lists them)"))

    def _track_bad(self, bad: list[str], n_items: int) -> None:
        new = [b for b in bad if b not in self.bad_files and not any(b.startswith(p) for p in self.checked_bad)]
        if not new:
            return
        if not self.bad_files:
            self.emit(TrainEvent("warning", message=f"skipping unreadable image {new[0]} (further ones are counted)"))
        self.bad_files.update(new)
        if len(self.bad_files) > max(1, MAX_BAD_FRACTION * n_items):
            raise DataError(
                f"{self.options.data}: {len(self.bad_files)} unreadable images (more than 1%), e.g. "
                f"{sorted(self.bad_files)[0]}; run `i2i data check {self.options.data}` and fix or remove them"
            )

    @staticmethod
    def _to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
        moved = {}
        for key, value in batch.items():
            value = value.to(device, non_blocking=True)
            if value.dtype == torch.uint8:
                value = uint8_tensor_to_signed(value)
                if channels_last:
                    value = value.contiguous(memory_format=torch.channels_last)
            moved[key] = value
        return moved

    def _sample_batch(self, dataset: Any, device: torch.device) -> dict[str, torch.Tensor]:
        n = min(4, len(dataset))
        items = [dataset[(i, 12345 + i)] for i in range(n)]
        batch = collate(items)
        batch.pop("bad")
        return self._to_device(batch, device, False)

    def _save_sample(self, out: Path, method: TranslationMethod, batch: dict[str, torch.Tensor], step: int,
                     precision: Precision) -> None:
        from i2i_cli.data.images import save_image

        was_training = method.training
        method.eval()
        with torch.no_grad(), precision.autocast():
            rows = {name: row.float() for name, row in method.sample_rows(batch).items()}
        method.train(was_training)
        path = out / "samples" / f"step_{step:08d}.png"
        save_image(sample_grid(rows), path, overwrite=True)
        if getattr(self, "_writer", None) is not None:
            self._writer.add_sample(path, step)
        self.emit(TrainEvent("sample", step, path=path))

    def _finish(self, session: Session, sample_batch: dict[str, torch.Tensor], done: int) -> None:
        """The last step's grid and checkpoint, the checkpoint written in a thread while the grid renders:
        the weights no longer change, the grid only reads them, and a run's end is what a short run waits
        for (a CUT grid at 256 px on a CPU is about 2/3 of a step, a pix2pix checkpoint 0.7 GB)."""
        weights, ema, state = self._checkpoint_contents(session.method, session.ema, session.optimizers,
                                                        session.schedulers, session.scaler, done)
        with ThreadPoolExecutor(1, thread_name_prefix="i2i-checkpoint") as pool:
            saving = pool.submit(ckpt.save_checkpoint, session.out, session.run_config, done, weights, ema, state,
                                 keep=self.options.keep)
            self._save_sample(session.out, session.method, sample_batch, done, preview_precision(session.precision))
            path = saving.result()  # a full disk raises here, as it would have in line
        self._checkpoint_saved(session.out, done, path)

    def _checkpoint(self, out: Path, run_config: ckpt.RunConfig, method: TranslationMethod, ema: EMA | None,
                    optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any],
                    scaler: torch.amp.GradScaler, step: int) -> Path:
        weights, ema_state, state = self._checkpoint_contents(method, ema, optimizers, schedulers, scaler, step)
        path = ckpt.save_checkpoint(out, run_config, step, weights, ema_state, state, keep=self.options.keep)
        self._checkpoint_saved(out, step, path)
        return path

    def _checkpoint_saved(self, out: Path, step: int, path: Path) -> None:
        write_report(out, f"{self.method_name}: {out.name}")
        self.emit(TrainEvent("checkpoint", step, path=path))

    def _checkpoint_contents(self, method: TranslationMethod, ema: EMA | None,
                             optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any],
                             scaler: torch.amp.GradScaler, step: int
                             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
        """What a checkpoint holds at `step`: weights, EMA weights, the trainer's state (RNG included)."""
        state = {
            "step": step,
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
            "scaler": scaler.state_dict(),
            "rng": _rng_state(),
            "method": method.training_state(),
            "bad_files": sorted(self.bad_files),
        }
        return method.saved_state_dict(), ema.state_dict() if ema else None, state

    def _restore(self, out: Path, method: TranslationMethod, optimizers: dict[str, torch.optim.Optimizer],
                 schedulers: dict[str, Any], scaler: torch.amp.GradScaler, ema: EMA | None) -> int:
        last = ckpt.latest_checkpoint(out)
        if last is None:
            return 0
        ckpt.load_weights_into(method, ckpt.load_tensors(last / ckpt.WEIGHTS_FILE), last)
        state = ckpt.load_trainer_state(last)
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, scheduler in schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and (last / ckpt.EMA_FILE).is_file():
            ema.load_state_dict(ckpt.load_tensors(last / ckpt.EMA_FILE))
        method.load_training_state(state.get("method", {}))
        _set_rng_state(state["rng"])
        self.bad_files = set(state.get("bad_files", []))
        return int(state["step"])

    def _trackers(self, out: Path, start: int, run_config: ckpt.RunConfig) -> Trackers:
        """TensorBoard and/or wandb / MLflow behind SummaryWriter's add_scalar + close (and add_sample)."""
        self._writer = open_trackers(list(self.options.log_to), out, start, run_config.to_json())
        return self._writer


def _wait_for_rank0(device: torch.device) -> None:
    """All ranks meet after rank 0's evaluation. A barrier on the process group: gloo's waits up to the group's
    timeout (30 minutes by default), NCCL's as long as its own; rank 0 arrives once it has scored."""
    import torch.distributed as dist

    if device.type == "cuda":
        dist.barrier(device_ids=[device.index or 0])
    else:
        dist.barrier()


def train(method_name: str, config: MethodConfig, options: TrainOptions, on_event: EventFn | None = None,
          evaluator: RunEvaluator | None = None) -> TrainResult:
    return Trainer(method_name, config, options, on_event, evaluator).run()

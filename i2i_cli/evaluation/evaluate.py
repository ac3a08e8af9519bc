"""`i2i eval --real DIR --fake DIR`: the metrics and the protocol that makes them comparable."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from i2i_cli.errors import ConfigError
from i2i_cli.evaluation import fid_kid
from i2i_cli.evaluation.fcn_score import check_convention
from i2i_cli.evaluation.metrics import FolderMetric, MetricContext, metric_class, metric_names, value_keys
from i2i_cli.evaluation.report import EvalResult, Protocol


@dataclass
class EvalOptions:
    metrics: tuple[str, ...] = ("fid", "kid")
    mode: str = "clean"
    lpips_net: str = "alex"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"  # auto: CUDA when present (resolved to a concrete device here)
    weights_dir: str | os.PathLike[str] | None = None
    threads: int | None = None  # decoding threads (default: min(4, CPU count))
    image_size: int | None = None  # --mode stargan_v2: its first resize (None: a run's size, else 256)
    segmenter: str | None = None  # a paired labels -> photo run: also the FCN-score with this segmenter
    fcn_convention: str = "pix2pix"  # FCN-score class means: pix2pix's get_scores or fyu/drn's (fcn_score.CONVENTIONS)
    fid_sqrt: str = "eigh"  # FID's trace term: eigh (exact, seconds) or sqrtm (clean-fid's scipy sqrtm)
    # real-set Inception features by folder_key, kept across a training run's evaluations (None: not kept)
    feature_cache: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from i2i_cli.engine.device import resolve_device

        self.mode = fid_kid.canonical_mode(self.mode)
        check_convention(self.fcn_convention)
        fid_kid.check_fid_sqrt(self.fid_sqrt)
        self.device = str(resolve_device(self.device))


def _check_folders(real: str | os.PathLike[str], fake: str | os.PathLike[str],
                   metrics: list[type[FolderMetric]]) -> None:
    """Refuse a missing folder, or one with fewer images than a metric needs, before any network is loaded."""
    from i2i_cli.data.images import list_images
    from i2i_cli.errors import DataError

    strictest = max(metrics, key=lambda m: m.min_images)
    for flag, folder in (("--real", Path(real)), ("--fake", Path(fake))):
        if not folder.is_dir():
            raise DataError(f"{flag} {folder}: not a folder")
        if strictest.min_images > 1 and (count := len(list_images(folder))) < strictest.min_images:
            raise DataError(f"{flag} {folder}: {count} image(s); {strictest.needs} at least {strictest.min_images} per "
                            "folder (thousands for a stable number), or pass --metrics lpips")


def requested_metrics(names: tuple[str, ...]) -> list[type[FolderMetric]]:
    """The registered metrics `names` asks for, in registry order; unknown names are a ConfigError."""
    known = metric_names()
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    return [metric_class(name) for name in known if name in names]


def evaluate_folders(real: str | os.PathLike[str], fake: str | os.PathLike[str], options: EvalOptions,
                     progress: Callable[[str, int, int], None] | None = None,
                     shared: dict[str, Any] | None = None) -> EvalResult:
    """The requested folder metrics (FID / KID with clean-fid's protocols, paired LPIPS, ...: see
    i2i_cli.evaluation.metrics) between two folders, with their protocol. `shared`: what an engine hands the
    metrics (fid_kid's feature_source: Inception features extracted on a Ray cluster)."""
    metrics = requested_metrics(options.metrics)
    if options.kid_subsets < 1 or options.kid_subset_size < 2 or options.batch_size < 1:
        raise ConfigError("--kid-subsets must be >= 1, --kid-subset-size >= 2 and --batch-size >= 1")
    _check_folders(real, fake, metrics)
    protocol = Protocol(real=str(Path(real).resolve()), fake=str(Path(fake).resolve()))
    ctx = MetricContext(Path(real), Path(fake), options, torch.device(options.device), protocol, progress,
                        values=value_keys(), shared=dict(shared or {}))
    for metric in metrics:
        metric().compute(ctx)
    return EvalResult(ctx.values, protocol, ctx.bad, ctx.warnings)


def evaluate_run(checkpoint: str | os.PathLike[str] | None, data: str | os.PathLike[str] | None,
                 options: EvalOptions, out: str | os.PathLike[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 multidomain: Any = None) -> tuple[EvalResult, Path]:
    """Translate a run's test split and evaluate it: paired data -> FID/KID + LPIPS to the ground truth,
    unpaired -> FID/KID against the target domain's test images, multi-domain -> FID per task and LPIPS
    diversity (`multidomain`: a MultiDomainOptions, see i2i_cli.evaluation.multidomain); a segmenter run ->
    pixel accuracy, class accuracy and mIoU on its held-out photos and label maps. Which of these a run gets
    is its method's `evaluation` (RUN_EVALUATIONS)."""
    from i2i_cli.data.layouts import detect_layout
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.inference import resolve_checkpoint

    run, _ = resolve_checkpoint(checkpoint)
    loaded = load_for_inference(run)
    root = Path(data or loaded.run_config.data.get("root", ""))
    layout = detect_layout(root)
    work = Path(out) if out else loaded.run_dir / "eval" / f"step_{loaded.step:08d}"
    # StarGAN v2's FID resizes to the run's img_size before 299 (its real images too)
    options = replace(options, image_size=options.image_size or int(loaded.run_config.config.get("size", 256)))
    evaluate = RUN_EVALUATIONS[type(loaded.method).evaluation]
    return evaluate(RunToEvaluate(loaded, layout, root, work), options, progress, multidomain), work


@dataclass
class RunToEvaluate:
    """A loaded run, the dataset it is evaluated on (`root`, detected as `layout`) and its working folder."""

    loaded: Any
    layout: Any
    root: Path
    work: Path

    def stamp(self, result: EvalResult, **more: Any) -> EvalResult:
        """The result with the run, step and data it came from in its protocol."""
        result.protocol.update({"checkpoint": str(self.loaded.run_dir), "step": self.loaded.step,
                                "data": str(self.root), "split_layout": self.layout.kind,
                                "evaluation": type(self.loaded.method).evaluation, **more})
        return result


def _evaluate_multidomain(run: RunToEvaluate, options: EvalOptions, progress: Callable[[str, int, int], None] | None,
                          multidomain: Any) -> EvalResult:
    """StarGAN v2's protocol: FID per (source, target) task and the LPIPS diversity."""
    from i2i_cli.errors import DataError
    from i2i_cli.evaluation.multidomain import MultiDomainOptions, evaluate_multidomain

    if not run.layout.multi_domain:
        raise DataError(f"{run.root}: a {run.layout.kind} dataset; a {run.loaded.method.name} run needs one folder "
                        "per domain (DIR/train/<domain>/, DIR/val/<domain>/)")
    result = evaluate_multidomain(run.loaded, run.layout, run.work, options,
                                  multidomain or MultiDomainOptions(seed=options.seed), progress)
    return run.stamp(result)


def _evaluate_segmenter(run: RunToEvaluate, options: EvalOptions, progress: Callable[[str, int, int], None] | None,
                        multidomain: Any) -> EvalResult:
    """A segmenter's own accuracy on its held-out photos and label maps."""
    from i2i_cli.evaluation.segmenter_run import evaluate_segmenter_run

    result = evaluate_segmenter_run(run.loaded, run.layout, run.work, options.device, progress, options.fcn_convention)
    return run.stamp(result, evaluated="segmenter")


def _evaluate_translation(run: RunToEvaluate, options: EvalOptions, progress: Callable[[str, int, int], None] | None,
                          multidomain: Any) -> EvalResult:
    """The test split translated (the layout says from which folder, and whether there is a ground truth), then
    FID / KID (and LPIPS where paired, the FCN-score with --segmenter) against the real images."""
    from i2i_cli.inference import TorchTranslator, TranslateOptions, translate_folder

    direction = run.loaded.run_config.config.get("direction", "AtoB")
    metrics = _run_metrics(options.metrics, run.layout, run.root)
    inputs, real, paired = run.layout.evaluation_inputs(run.work, direction)
    if options.segmenter and not paired:
        raise ConfigError(f"--segmenter: the FCN-score needs each output's label map, so a paired (aligned) labels -> "
                          f"photo run; {run.root} is {run.layout.kind} (use `i2i eval fcn --fake OUT --labels LABELS`)")
    translator = TorchTranslator(run.loaded, direction="AtoB", device=options.device,
                                 precision="fp32")  # eval stays fp32: its numbers are compared with papers
    translate_folder(inputs, run.work / "fake", translator, TranslateOptions(overwrite=True, device=options.device),
                     (lambda d, t: progress("translate", d, t)) if progress else None)
    result = evaluate_folders(real, run.work / "fake", EvalOptions(**{**options.__dict__, "metrics": metrics}),
                              progress)
    if options.segmenter:
        _add_fcn_score(result, run.work, options, progress)
    return run.stamp(result, direction=direction)


RunEvaluation = Callable[[RunToEvaluate, EvalOptions, Callable[[str, int, int], None] | None, Any], EvalResult]
# TranslationMethod.evaluation -> how its runs are scored
RUN_EVALUATIONS: dict[str, RunEvaluation] = {
    "translation": _evaluate_translation,
    "multidomain": _evaluate_multidomain,
    "segmentation": _evaluate_segmenter,
}


def _run_metrics(asked: tuple[str, ...], layout: Any, root: Path) -> tuple[str, ...]:
    """The metrics of a run's evaluation: paired data adds LPIPS to the ground truth; unpaired data refuses it."""
    from i2i_cli.errors import DataError

    if layout.paired:
        return tuple(dict.fromkeys((*asked, "lpips")))
    if "lpips" in asked:
        raise DataError(f"--metrics lpips: {root} is a {layout.kind} dataset, not paired: its test images have no "
                        "ground-truth translation (file names shared by testA/ and testB/ pair unrelated images), so "
                        "a paired LPIPS would be meaningless; drop lpips from --metrics")
    return asked


def _add_fcn_score(result: EvalResult, work: Path, options: EvalOptions,
                   progress: Callable[[str, int, int], None] | None) -> None:
    """FCN-score of the translated test split against its input label maps, the real photos as the bound."""
    from i2i_cli.evaluation.fcn_score import FcnOptions, evaluate_fcn

    assert options.segmenter is not None
    fcn_options = FcnOptions(segmenter=options.segmenter, device=options.device, weights_dir=options.weights_dir,
                             convention=options.fcn_convention)
    fcn = evaluate_fcn(work / "fake", work / "inputs", fcn_options, real=work / "real", progress=progress)
    result.values.update(fcn.values)
    result.protocol.fcn = fcn.protocol.fcn
    result.protocol.weights.update(fcn.protocol.weights)
    result.bad += fcn.bad
    result.warnings += fcn.warnings

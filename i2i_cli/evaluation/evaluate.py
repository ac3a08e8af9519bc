"""`i2i eval --real DIR --fake DIR`: the metrics and the protocol that makes them comparable."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
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

    fewest = max(metrics, key=lambda m: m.min_images)
    for flag, folder in (("--real", Path(real)), ("--fake", Path(fake))):
        if not folder.is_dir():
            raise DataError(f"{flag} {folder}: not a folder")
        if fewest.min_images > 1 and (count := len(list_images(folder))) < fewest.min_images:
            raise DataError(f"{flag} {folder}: {count} image(s); {fewest.needs} at least {fewest.min_images} per "
                            "folder (thousands for a stable number), or pass --metrics lpips")


def requested_metrics(names: tuple[str, ...]) -> list[type[FolderMetric]]:
    """The registered metrics `names` asks for, in registry order; unknown names are a ConfigError."""
    known = metric_names()
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    return [metric_class(name) for name in known if name in names]


def evaluate_folders(real: str | os.PathLike[str], fake: str | os.PathLike[str], options: EvalOptions,
                     progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    """The requested folder metrics (FID / KID with clean-fid's protocols, paired LPIPS, ...: see
    i2i_cli.evaluation.metrics) between two folders, with their protocol."""
    metrics = requested_metrics(options.metrics)
    if options.kid_subsets < 1 or options.kid_subset_size < 2 or options.batch_size < 1:
        raise ConfigError("--kid-subsets must be >= 1, --kid-subset-size >= 2 and --batch-size >= 1")
    _check_folders(real, fake, metrics)
    protocol = Protocol(real=str(Path(real).resolve()), fake=str(Path(fake).resolve()))
    ctx = MetricContext(Path(real), Path(fake), options, torch.device(options.device), protocol, progress,
                        values=value_keys())
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
    pixel accuracy, class accuracy and mIoU on its held-out photos and label maps."""
    import numpy as np

    from i2i_cli.data.images import list_images, load_image, save_image
    from i2i_cli.data.layouts import detect_layout
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.errors import DataError
    from i2i_cli.inference import TorchTranslator, TranslateOptions, resolve_checkpoint, translate_folder

    run, _ = resolve_checkpoint(checkpoint)
    loaded = load_for_inference(run)
    root = Path(data or loaded.run_config.data.get("root", ""))
    layout = detect_layout(root)
    work = Path(out) if out else loaded.run_dir / "eval" / f"step_{loaded.step:08d}"
    # StarGAN v2's FID resizes to the run's img_size before 299 (its real images too)
    options = replace(options, image_size=options.image_size or int(loaded.run_config.config.get("size", 256)))
    if loaded.method.multi_domain:
        from i2i_cli.evaluation.multidomain import MultiDomainOptions, evaluate_multidomain

        if layout.kind != "domains":
            raise DataError(f"{root}: a {layout.kind} dataset; a {loaded.method.name} run needs one folder per domain "
                            "(DIR/train/<domain>/, DIR/val/<domain>/)")
        result = evaluate_multidomain(loaded, layout, work, options, multidomain or MultiDomainOptions(seed=options.seed),
                                      progress)
        result.protocol.update({"checkpoint": str(loaded.run_dir), "step": loaded.step, "data": str(root),
                                "split_layout": layout.kind})
        return result, work
    if loaded.method.name == "segmenter":
        from i2i_cli.evaluation.segmenter_run import evaluate_segmenter_run

        result = evaluate_segmenter_run(loaded, layout, work, options.device, progress, options.fcn_convention)
        result.protocol.update({"checkpoint": str(loaded.run_dir), "step": loaded.step, "data": str(root),
                                "split_layout": layout.kind, "evaluated": "segmenter"})
        return result, work
    direction = loaded.run_config.config.get("direction", "AtoB")
    metrics = _run_metrics(options.metrics, layout, root)
    if layout.kind == "aligned":
        split = "test" if "test" in layout.splits else "val" if "val" in layout.splits else None
        if split is None:
            raise DataError(f"{root}: no test/ or val/ split to evaluate on")
        for file in list_images(root / split):
            pair = load_image(file)
            half = pair.shape[1] // 2
            a, b = pair[:, :half], pair[:, half : 2 * half]
            if direction == "BtoA":
                a, b = b, a
            save_image(np.ascontiguousarray(a), work / "inputs" / f"{file.stem}.png", overwrite=True)
            save_image(np.ascontiguousarray(b), work / "real" / f"{file.stem}.png", overwrite=True)
        real, inputs = work / "real", work / "inputs"
    elif layout.kind == "unaligned":
        src, tgt = ("testA", "testB") if direction == "AtoB" else ("testB", "testA")
        if not (root / src).is_dir() or not (root / tgt).is_dir():
            raise DataError(f"{root}: needs {src}/ and {tgt}/ to evaluate")
        real, inputs = root / tgt, root / src
    else:
        raise DataError(f"{root}: a {layout.kind} dataset; pass --data with a test split")
    if options.segmenter and layout.kind != "aligned":
        raise ConfigError(f"--segmenter: the FCN-score needs each output's label map, so a paired (aligned) labels -> "
                          f"photo run; {root} is {layout.kind} (use `i2i eval fcn --fake OUT --labels LABELS`)")
    translator = TorchTranslator(loaded, direction="AtoB", device=options.device)
    translate_folder(inputs, work / "fake", translator, TranslateOptions(overwrite=True, device=options.device),
                     (lambda d, t: progress("translate", d, t)) if progress else None)
    result = evaluate_folders(real, work / "fake", EvalOptions(**{**options.__dict__, "metrics": metrics}), progress)
    if options.segmenter:
        _add_fcn_score(result, work, options, progress)
    result.protocol.update({"checkpoint": str(loaded.run_dir), "step": loaded.step, "data": str(root),
                            "split_layout": layout.kind, "direction": direction})
    return result, work


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

"""`i2i eval --real DIR --fake DIR`: the metrics and the protocol that makes them comparable."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from i2i_cli.errors import ConfigError
from i2i_cli.evaluation import fid_kid
from i2i_cli.evaluation.lpips_metric import build_lpips, paired_lpips

METRICS = ("fid", "kid", "lpips")


@dataclass
class EvalOptions:
    metrics: tuple[str, ...] = ("fid", "kid")
    mode: str = "clean"
    lpips_net: str = "alex"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    batch_size: int = 32
    device: str = "cpu"
    weights_dir: str | os.PathLike[str] | None = None


@dataclass
class EvalResult:
    values: dict[str, float | None]
    protocol: dict[str, Any]
    bad: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.values, "protocol": self.protocol, "bad_files": [{"file": f, "problem": p} for f, p in self.bad]}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("torch", "clean-fid", "lpips", "numpy", "scipy", "pillow"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def evaluate_folders(real: str | os.PathLike[str], fake: str | os.PathLike[str], options: EvalOptions,
                     progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    unknown = [m for m in options.metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    device = torch.device(options.device)
    values: dict[str, float | None] = {"fid": None, "kid_mean": None, "kid_std": None, "lpips": None}
    protocol: dict[str, Any] = {"real": str(Path(real).resolve()), "fake": str(Path(fake).resolve()),
                                "decoding": "i2i load_image (EXIF applied, RGB; alpha composited on white)",
                                "versions": _versions(), "weights": {}}
    bad: list[tuple[str, str]] = []
    if "fid" in options.metrics or "kid" in options.metrics:
        model, weights = fid_kid.inception(options.mode, device, options.weights_dir)
        protocol["weights"]["inception"] = weights.protocol()
        feats = {}
        for name, folder in (("real", real), ("fake", fake)):
            feats[name], skipped = fid_kid.folder_features(
                folder, model, options.mode, batch_size=options.batch_size, device=device,
                progress=(lambda d, t, n=name: progress(f"features {n}", d, t)) if progress else None)
            bad += skipped
        protocol.update({
            "mode": options.mode,
            "resize": {"clean": "PIL bicubic to 299x299 per channel in float, no re-quantisation",
                       "legacy_tensorflow": "inside the TF-2015 Inception graph (bilinear, TF style)",
                       "legacy_pytorch": "torch bilinear to 299x299 (pytorch-fid network)"}[options.mode],
            "n_real": int(feats["real"].shape[0]), "n_fake": int(feats["fake"].shape[0]),
        })
        if "fid" in options.metrics:
            values["fid"] = fid_kid.fid_from_features(feats["real"], feats["fake"])
        if "kid" in options.metrics:
            mean, std, m = fid_kid.kid_from_features(feats["real"], feats["fake"], options.kid_subsets,
                                                     options.kid_subset_size, options.seed)
            values["kid_mean"], values["kid_std"] = mean, std
            protocol["kid"] = {"subsets": options.kid_subsets, "subset_size": m, "seed": options.seed,
                               "kernel": "(x.y/2048 + 1)^3, unbiased MMD^2"}
    if "lpips" in options.metrics:
        model, weights = build_lpips(options.lpips_net, device, options.weights_dir)
        protocol["weights"]["lpips_backbone"] = weights.protocol()
        mean, scores, skipped = paired_lpips(real, fake, model, device,
                                             (lambda d, t: progress("lpips", d, t)) if progress else None)
        values["lpips"] = mean
        bad += skipped
        protocol["lpips"] = {"kind": "paired (output vs ground truth with the same name)", "net": options.lpips_net,
                             "version": "0.1", "pairs": len(scores), "input_range": "[-1,1]"}
    return EvalResult(values, protocol, bad)


def evaluate_run(checkpoint: str | os.PathLike[str] | None, data: str | os.PathLike[str] | None,
                 options: EvalOptions, out: str | os.PathLike[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> tuple[EvalResult, Path]:
    """Translate a run's test split and evaluate it: paired data -> FID/KID + LPIPS to the ground truth,
    unpaired -> FID/KID against the target domain's test images."""
    import numpy as np

    from i2i_cli.data.images import list_images, load_image, save_image
    from i2i_cli.data.layouts import detect_layout
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.errors import DataError
    from i2i_cli.inference import TorchTranslator, TranslateOptions, resolve_checkpoint, translate_folder

    run, _ = resolve_checkpoint(checkpoint)
    loaded = load_for_inference(run)
    if loaded.method.multi_domain:
        raise ConfigError(f"{loaded.method.name}: evaluating multi-domain runs from --checkpoint is not supported yet; "
                          "translate with --style-ref/--domain and use --real/--fake")
    root = Path(data or loaded.run_config.data.get("root", ""))
    layout = detect_layout(root)
    work = Path(out) if out else loaded.run_dir / "eval" / f"step_{loaded.step:08d}"
    direction = loaded.run_config.config.get("direction", "AtoB")
    metrics = options.metrics
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
        metrics = tuple(dict.fromkeys((*metrics, "lpips")))
    elif layout.kind == "unaligned":
        src, tgt = ("testA", "testB") if direction == "AtoB" else ("testB", "testA")
        if not (root / src).is_dir() or not (root / tgt).is_dir():
            raise DataError(f"{root}: needs {src}/ and {tgt}/ to evaluate")
        real, inputs = root / tgt, root / src
    else:
        raise DataError(f"{root}: a {layout.kind} dataset; pass --data with a test split")
    translator = TorchTranslator(loaded, direction="AtoB", device=options.device)
    translate_folder(inputs, work / "fake", translator, TranslateOptions(overwrite=True, device=options.device),
                     (lambda d, t: progress("translate", d, t)) if progress else None)
    result = evaluate_folders(real, work / "fake", EvalOptions(**{**options.__dict__, "metrics": metrics}), progress)
    result.protocol.update({"checkpoint": str(loaded.run_dir), "step": loaded.step, "data": str(root),
                            "split_layout": layout.kind, "direction": direction})
    return result, work

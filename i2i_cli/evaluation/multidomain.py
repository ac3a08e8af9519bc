"""`i2i eval --checkpoint RUN` for a multi-domain run (StarGAN v2): FID per task and LPIPS diversity.

StarGAN v2's protocol (clovaai/stargan-v2 metrics/eval.py): a task is every (source, target) pair of domains
with source != target. Latent-guided: each source image of the evaluation split is translated K times
(num_outs_per_domain = 10) with styles from K random latent codes mapped to the target domain;
reference-guided: K styles encoded from target-domain images of the evaluation split drawn at random. FID of a
task compares all of its outputs with the target domain's training images; LPIPS diversity averages LPIPS
over all K(K-1)/2 pairs of each input's outputs, then over inputs. Both are reported per task and as the mean
over tasks. Our FID is computed with the chosen clean-fid mode (clean by default), not StarGAN v2's torchvision
Inception, so the numbers are comparable with other clean-fid numbers, not with the paper's table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from i2i_cli.data.images import load_image, save_image, to_tensor, to_uint8
from i2i_cli.errors import BadImageError, ConfigError, DataError
from i2i_cli.evaluation import fid_kid
from i2i_cli.evaluation.lpips_metric import build_lpips, diversity_lpips
from i2i_cli.evaluation.report import EvalResult, Protocol

GUIDANCE = ("latent", "reference")


@dataclass
class MultiDomainOptions:
    guidance: tuple[str, ...] = GUIDANCE
    outputs_per_input: int = 10  # StarGAN v2's num_outs_per_domain
    seed: int = 0


def _image(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: resized bilinearly as the reference's evaluation loader does."""
    array = load_image(path)
    if array.shape[:2] != (size, size):
        array = np.array(Image.fromarray(array).resize((size, size), Image.BILINEAR))
    return to_tensor(array)[None]


def _splits(layout: Any) -> tuple[str, str]:
    """(evaluation split, FID reference split): val/test to translate, train images of the target as reference."""
    evaluation = next((s for s in ("val", "test") if s in layout.splits), None)
    if evaluation is None:
        raise DataError(f"{layout.root}: no val/ or test/ split to evaluate on (domains layout: val/<domain>/)")
    return evaluation, "train" if "train" in layout.splits else evaluation


def evaluate_multidomain(loaded: Any, layout: Any, work: Path, options: Any, md: MultiDomainOptions,
                         progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    """Translate every task K times per input under each guidance, then FID per task and LPIPS diversity."""
    from i2i_cli.inference import TorchStyles

    unknown = [g for g in md.guidance if g not in GUIDANCE]
    if unknown or not md.guidance:
        raise ConfigError(f"--guidance: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(GUIDANCE)}")
    if md.outputs_per_input < 2:
        raise ConfigError("--outputs-per-input must be >= 2 (LPIPS diversity compares outputs of one input)")
    evaluation, reference = _splits(layout)
    domains = list(loaded.method.domains)
    missing = [d for d in domains if d not in layout.splits[evaluation] or d not in layout.splits[reference]]
    if missing:
        raise DataError(f"{layout.root}: no images of domain(s) {', '.join(missing)} in {evaluation}/ or "
                        f"{reference}/; the run's domains are {', '.join(domains)}")
    styles = TorchStyles(loaded, options.device)
    size = int(loaded.run_config.config.get("size", 256))
    device = torch.device(options.device)
    lpips_model, lpips_weights = build_lpips(options.lpips_net, device, options.weights_dir)
    inception, inception_weights = fid_kid.inception(options.mode, device, options.weights_dir)
    protocol = Protocol(real=str(layout.root), fake=str(work))
    protocol.set_fid_mode(options.mode)
    protocol.add_weights("inception", inception_weights)
    protocol.add_weights("lpips_backbone", lpips_weights)
    values: dict[str, float | None] = {}
    bad: list[tuple[str, str]] = []
    real_features: dict[str, np.ndarray] = {}
    tasks = [(s, t) for t in domains for s in domains if s != t]
    for mode in md.guidance:
        fids, lpipses = [], []
        for number, (source, target) in enumerate(tasks):
            task = f"{source}2{target}"
            label = f"{mode} {task}"
            generator = torch.Generator().manual_seed(md.seed * 1000 + number)
            folder = work / mode / task
            diversity, skipped = _translate_task(styles, layout.splits[evaluation][source],
                                                 layout.splits[evaluation][target], domains.index(target), mode, md,
                                                 size, generator, folder, lpips_model, device,
                                                 (lambda d, t, n=label: progress(n, d, t)) if progress else None)
            bad += skipped
            if target not in real_features:
                real_features[target], skipped = fid_kid.folder_features(
                    layout.root / reference / target, inception, options.mode, batch_size=options.batch_size,
                    device=device, threads=options.threads)
                bad += skipped
            fake, _ = fid_kid.folder_features(folder, inception, options.mode, batch_size=options.batch_size,
                                              device=device, threads=options.threads)
            values[f"fid_{mode}_{task}"] = fid_kid.fid_from_features(real_features[target], fake)
            values[f"lpips_{mode}_{task}"] = diversity
            fids.append(values[f"fid_{mode}_{task}"])
            lpipses.append(diversity)
        values[f"fid_{mode}_mean"] = float(np.mean(fids))
        values[f"lpips_{mode}_mean"] = float(np.mean(lpipses))
    protocol.lpips = {"kind": "diversity (StarGAN v2: all pairs of one input's outputs, mean per input, then over "
                              "inputs; per task, then over tasks)", "net": options.lpips_net, "version": "0.1"}
    protocol.seeds["multidomain"] = md.seed
    protocol.update({"tasks": [f"{s}2{t}" for s, t in tasks], "guidance": list(md.guidance),
                     "outputs_per_input": md.outputs_per_input, "evaluation_split": evaluation,
                     "fid_reference": f"the target domain's {reference}/ images", "image_size": size,
                     "input_resize": "PIL bilinear to the run's size",
                     "references": "target-domain images of the evaluation split, drawn with the seed"})
    return EvalResult(values, protocol, bad)


def _translate_task(styles: Any, sources: list[Path], references: list[Path], target: int, mode: str,
                    md: MultiDomainOptions, size: int, generator: torch.Generator, folder: Path,
                    lpips_model: torch.nn.Module, device: torch.device,
                    progress: Callable[[int, int], None] | None) -> tuple[float, list[tuple[str, str]]]:
    """Write K outputs per source image into `folder`; return their LPIPS diversity and the unreadable files."""
    per_input: list[float] = []
    bad: list[tuple[str, str]] = []
    for done, path in enumerate(sources, start=1):
        try:
            x = _image(path, size)
            outputs = []
            for k in range(md.outputs_per_input):
                if mode == "latent":
                    style = styles.from_latent(torch.randn(1, styles.latent_dim, generator=generator), target)
                else:
                    ref = references[int(torch.randint(len(references), (1,), generator=generator))]
                    style = styles.from_reference(_image(ref, size), target)
                y = styles.translator(style)(x).cpu()
                save_image(to_uint8(y[0]), folder / f"{path.stem}_{k:02d}.png", overwrite=True)
                outputs.append(y.to(device))
            per_input.append(diversity_lpips([outputs], lpips_model))
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
        if progress:
            progress(done, len(sources))
    if not per_input:
        raise DataError(f"{folder}: no readable source image to translate")
    return float(np.mean(per_input)), bad

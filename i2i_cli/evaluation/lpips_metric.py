"""LPIPS v0.1 (Zhang et al. 2018) through the lpips package, backbones from i2i's weights registry.

The package ships only the linear heads; its backbones would come from torchvision's download at
construction. We build it with pnet_rand=True and load the torchvision ImageNet file ourselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from i2i_cli.data.images import list_images, load_image, to_tensor
from i2i_cli.download import sha256_file
from i2i_cli.errors import BadImageError, ConfigError, I2IError, WeightsError
from i2i_cli.evaluation.metrics import FolderMetric, MetricContext, namesake_pairs
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve

BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}


def build_lpips(net: str = "alex", device: torch.device | str = "cpu",
                weights_dir: str | os.PathLike[str] | None = None,
                spatial: bool = False) -> tuple[torch.nn.Module, ResolvedWeights]:
    """lpips.LPIPS v0.1 with the package's linear heads and the torchvision backbone from the registry.

    The model takes two (N, 3, H, W) tensors in [-1, 1] and returns (N, 1, 1, 1), or with `spatial=True`
    the (N, 1, H, W) map of per-pixel distances (error maps).
    """
    import lpips

    if net not in BACKBONES:
        raise ConfigError(f"--lpips-net {net}: choose {', '.join(BACKBONES)}")
    weights = resolve(BACKBONES[net], weights_dir=weights_dir)
    # pretrained=True loads the linear heads shipped inside the package; pnet_rand=True keeps torchvision from
    # downloading the backbone, which we load from the registry's verified file below.
    model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, spatial=spatial, verbose=False)
    source = load_state_dict(weights.path)
    target = model.net.state_dict()
    mapped = {}
    for key in target:  # lpips slices keep torchvision's feature indices: sliceK.N.weight <- features.N.weight
        tv_key = "features." + key.split(".", 1)[1]
        if tv_key not in source:
            raise WeightsError(f"{weights.path}: no {tv_key}; expected the torchvision {BACKBONES[net]} file")
        mapped[key] = source[tv_key]
    model.net.load_state_dict(mapped)
    return model.to(device).eval(), weights


@dataclass
class PairedLpips:
    """Paired LPIPS of two folders: the mean, each pair's value, and the files it could not use."""

    mean: float
    scores: dict[str, float]  # fake file (relative) -> LPIPS to its namesake
    bad: list[tuple[str, str]] = field(default_factory=list)  # unreadable files, pairs of different sizes
    unmatched: list[str] = field(default_factory=list)  # fake files (relative) without a namesake in `real`


def paired_lpips(real: str | os.PathLike[str], fake: str | os.PathLike[str], model: torch.nn.Module,
                 device: torch.device | str = "cpu", progress: Callable[[int, int], None] | None = None
                 ) -> PairedLpips:
    """Mean LPIPS between files with the same relative name (extension ignored) in `real` and `fake`; fake files
    without a namesake are listed in `unmatched`, not scored."""
    real_dir, fake_dir = Path(real), Path(fake)
    pairs, unmatched = namesake_pairs(real_dir, fake_dir)
    if not pairs:
        raise I2IError(f"paired LPIPS: no file of {fake_dir} has a namesake in {real_dir}; name outputs like their "
                       "ground truth (or drop lpips from --metrics)")
    scores, bad = {}, []
    for i, (r, f) in enumerate(pairs, start=1):
        try:
            a, b = load_image(r), load_image(f)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
            continue
        if a.shape != b.shape:
            bad.append((str(f), f"size {b.shape[1]}x{b.shape[0]} differs from {r} ({a.shape[1]}x{a.shape[0]})"))
            continue
        with torch.no_grad():
            distance = model(to_tensor(a)[None].to(device), to_tensor(b)[None].to(device))
            scores[str(f.relative_to(fake_dir))] = float(distance)
        if progress:
            progress(i, len(pairs))
    if not scores:
        raise I2IError("paired LPIPS: no readable pair of equal size")
    return PairedLpips(float(np.mean(list(scores.values()))), scores, bad, unmatched)


def linear_heads_file(net: str) -> Path:
    """The v0.1 linear-head file shipped inside the lpips package (weights/v0.1/NET.pth)."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


PAIRS_PER_BATCH = 16  # LPIPS pairs per forward pass in diversity_lpips
STARGAN_V2_BATCH = 32  # StarGAN v2's val_batch_size: its loader batch, the unit its LPIPS diversity averages over
AVERAGING = {
    "per_input": "LPIPS over all K(K-1)/2 pairs of one input's outputs, mean per input, then the mean over inputs",
    "stargan_v2": "StarGAN v2's metrics/eval.py: inputs in loader batches of {batch}; per batch the mean over the "
                  "K(K-1)/2 output pairs of the batch-mean LPIPS, then the mean over batches (a last, smaller "
                  "batch weighs as much as a full one)",
}


def pair_distances(outputs: list[torch.Tensor], model: torch.nn.Module) -> torch.Tensor:
    """LPIPS of every pair (i < j, in order) of one input's outputs, each (1, 3, H, W) in [-1, 1]: float64."""
    pairs = list(combinations(range(len(outputs)), 2))
    scores = [torch.zeros(0, dtype=torch.float64)]
    for start in range(0, len(pairs), PAIRS_PER_BATCH):  # pairs batched: 45 single-image calls were slow
        chunk = pairs[start : start + PAIRS_PER_BATCH]
        with torch.no_grad():
            scores.append(model(torch.cat([outputs[i] for i, _ in chunk]),
                                torch.cat([outputs[j] for _, j in chunk])).flatten().double().cpu())
    return torch.cat(scores)


def average_diversity(distances: list[torch.Tensor], averaging: str = "per_input",
                      batch_size: int = STARGAN_V2_BATCH) -> float:
    """One task's diversity from each input's pair distances (`pair_distances`), averaged as `averaging` says
    (AVERAGING). StarGAN v2's batch value, the mean over pairs of the batch's mean, equals the mean over the
    batch's inputs of their pair means: every input has the same K(K-1)/2 pairs."""
    if averaging not in AVERAGING:
        raise ConfigError(f"LPIPS diversity averaging {averaging}: choose {', '.join(AVERAGING)}")
    per_input = [float(d.mean()) for d in distances if d.numel()]
    if not per_input:
        raise I2IError("LPIPS diversity needs at least two outputs per input")
    if averaging == "per_input":
        return float(np.mean(per_input))
    batches = [per_input[start : start + batch_size] for start in range(0, len(per_input), batch_size)]
    return float(np.mean([np.mean(batch) for batch in batches]))


def diversity_lpips(outputs_per_input: list[list[torch.Tensor]], model: torch.nn.Module,
                    averaging: str = "per_input", batch_size: int = STARGAN_V2_BATCH) -> float:
    """LPIPS diversity of one task: LPIPS over all pairs of each input's outputs, averaged as `averaging` says
    (per input, then over inputs; or StarGAN v2's per loader batch). Outputs are (1, 3, H, W) in [-1, 1]."""
    distances = [pair_distances(outputs, model) for outputs in outputs_per_input]
    return average_diversity(distances, averaging, batch_size)


def diversity_lpips_tasks(tasks: dict[str, list[list[torch.Tensor]]], model: torch.nn.Module
                          ) -> tuple[float, dict[str, float]]:
    """StarGAN v2's diversity LPIPS over tasks (e.g. source -> target domain pairs): per-task values from
    `diversity_lpips`, and their mean."""
    if not tasks:
        raise I2IError("LPIPS diversity: no tasks")
    per_task = {name: diversity_lpips(outputs, model) for name, outputs in tasks.items()}
    return float(np.mean(list(per_task.values()))), per_task


def diversity_lpips_folder(root: str | os.PathLike[str], model: torch.nn.Module, device: torch.device | str = "cpu"
                           ) -> tuple[float, dict[str, float], list[tuple[str, str]]]:
    """Diversity LPIPS of a folder laid out ROOT/TASK/INPUT/*.png (the K outputs of one input in one folder);
    ROOT/INPUT/*.png is one task. Returns (mean over tasks, per task, unreadable files)."""
    base = Path(root)
    groups: dict[Path, list[Path]] = {}
    for file in list_images(base):
        groups.setdefault(file.parent, []).append(file)
    if not groups:
        raise I2IError(f"{base}: no images; expected ROOT/TASK/INPUT/*.png with several outputs per input")
    tasks: dict[str, list[list[torch.Tensor]]] = {}
    bad: list[tuple[str, str]] = []
    for folder, files in sorted(groups.items()):
        outputs = []
        for file in files:
            try:
                outputs.append(to_tensor(load_image(file))[None].to(device))
            except BadImageError as exc:
                bad.append((exc.path, exc.reason))
        task = folder.parent.relative_to(base).as_posix() if folder != base else "."
        if len(outputs) >= 2:
            tasks.setdefault(task, []).append(outputs)
    mean, per_task = diversity_lpips_tasks(tasks, model)
    return mean, per_task, bad


class PairedLpipsMetric(FolderMetric):
    """LPIPS between each generated image and its ground truth of the same name (paired data only)."""

    name = "lpips"
    keys = ("lpips",)

    def compute(self, ctx: MetricContext) -> None:
        net = ctx.options.lpips_net
        model, weights = build_lpips(net, ctx.device, ctx.options.weights_dir)
        ctx.protocol.add_weights("lpips_backbone", weights)
        heads = linear_heads_file(net)
        paired = paired_lpips(ctx.real, ctx.fake, model, ctx.device, ctx.report("lpips"))
        ctx.values["lpips"] = paired.mean
        ctx.bad += paired.bad
        ctx.protocol.lpips = {"kind": "paired (output vs ground truth with the same name)", "net": net,
                              "version": "0.1", "pairs": len(paired.scores), "input_range": "[-1,1]",
                              "unmatched_fakes": paired.unmatched,
                              "linear_heads": {"file": f"lpips/weights/v0.1/{heads.name}", "sha256": sha256_file(heads)}}
        if paired.unmatched:
            shown = ", ".join(paired.unmatched[:5]) + (", ..." if len(paired.unmatched) > 5 else "")
            ctx.warnings.append(f"paired LPIPS: {len(paired.unmatched)} file(s) of {ctx.fake} have no namesake in "
                                f"{ctx.real} and were not scored ({shown}); the JSON lists them under "
                                "protocol.lpips.unmatched_fakes")

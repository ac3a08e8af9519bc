"""The DINO-Struct distance: how much a translation changed an image's structure (img2img-turbo's metric).

As img2img-turbo's src/my_utils/dino_struct.py (after Splice, Tumanyan et al. 2022, util/losses.py): each image
is resized so its shorter side is 224 px (torchvision Resize on the PIL image), normalised with ImageNet's mean
and std, and run through DINO ViT-B/8; the keys of block 11 (all heads concatenated per token, CLS included)
give a token x token cosine self-similarity matrix, and the distance of a pair is the MSE between the input's
and the output's matrices. `i2i eval --real INPUTS --fake OUTPUTS --metrics dino_struct`: `--real` holds the
images that were translated, each output paired with the input of the same name. The value is the mean over
pairs (the official function sums over a batch; papers report it x100 or not: the protocol says the scale).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from i2i_cli.data.images import load_image
from i2i_cli.errors import BadImageError, I2IError, WeightsError
from i2i_cli.evaluation.metrics import FolderMetric, MetricContext, namesake_pairs
from i2i_cli.models.networks.dino_vit import DinoViT, key_self_similarity
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve

LAYER = 11  # the block whose keys describe structure (the last of ViT-B)
RESIZE = 224  # shorter side before the ViT
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_dino_vitb8(device: torch.device | str = "cpu", weights_dir: str | os.PathLike[str] | None = None
                     ) -> tuple[DinoViT, ResolvedWeights]:
    """DINO ViT-B/8 with the official weights from the registry, in eval mode."""
    weights = resolve("dino_vitb8", weights_dir=weights_dir)
    model = DinoViT(patch_size=8)
    try:
        model.load_pretrained_state_dict(load_state_dict(weights.path))
    except RuntimeError as exc:
        raise WeightsError(f"{weights.path}: does not fit DINO ViT-B/8 ({str(exc).splitlines()[0][:200]}); expected "
                           "the official dino_vitbase8_pretrain.pth") from exc
    return model.to(device).eval(), weights


def preprocess(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) as the official transform: Resize(224) on the PIL image (shorter side 224,
    bilinear with PIL's antialiasing), ToTensor, ImageNet normalisation."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    resized = TF.resize(Image.fromarray(array), RESIZE)
    # normalised in float32 as the official transform, then cast (float64 equals the official float64 run)
    return TF.normalize(TF.to_tensor(resized), IMAGENET_MEAN, IMAGENET_STD)[None].to(dtype)


def structure(model: DinoViT, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) preprocessed -> (1, T, T) the self-similarity of block 11's keys."""
    with torch.no_grad():
        return key_self_similarity(model.keys(image, LAYER))


def pair_distance(model: DinoViT, source: np.ndarray, output: np.ndarray, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> float:
    """DINO-Struct distance of one translation: MSE between the input's and the output's self-similarities."""
    a = structure(model, preprocess(source, dtype).to(device))
    b = structure(model, preprocess(output, dtype).to(device))
    if a.shape != b.shape:
        raise ValueError(f"{a.shape[-1]} vs {b.shape[-1]} tokens")
    return float(F.mse_loss(b, a))


@dataclass
class DinoStruct:
    mean: float
    scores: dict[str, float]  # output file (relative) -> distance to its input
    bad: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def dino_struct(inputs: str | os.PathLike[str], outputs: str | os.PathLike[str], model: DinoViT,
                device: torch.device | str = "cpu", progress: Callable[[int, int], None] | None = None) -> DinoStruct:
    """Mean DINO-Struct distance between each output and the input of the same name; unreadable files and pairs
    whose aspect ratios give different patch grids are listed in `bad`, outputs without an input in `unmatched`."""
    input_dir, output_dir = Path(inputs), Path(outputs)
    pairs, unmatched = namesake_pairs(input_dir, output_dir)
    if not pairs:
        raise I2IError(f"DINO-Struct: no file of {output_dir} has a namesake in {input_dir}; pass the translated "
                       "inputs as --real and name outputs like their inputs")
    scores, bad = {}, []
    for i, (source, output) in enumerate(pairs, start=1):
        try:
            scores[output.relative_to(output_dir).as_posix()] = pair_distance(
                model, load_image(source), load_image(output), device)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
        except ValueError as exc:
            bad.append((str(output), f"its aspect ratio differs from {source}'s ({exc}); resize outputs like inputs"))
        if progress:
            progress(i, len(pairs))
    if not scores:
        raise I2IError("DINO-Struct: no readable pair with matching aspect ratios")
    return DinoStruct(float(np.mean(list(scores.values()))), scores, bad, unmatched)


class DinoStructMetric(FolderMetric):
    """DINO-Struct distance between each output (--fake) and the input it was translated from (--real)."""

    name = "dino_struct"
    keys = ("dino_struct",)

    def compute(self, ctx: MetricContext) -> None:
        model, weights = build_dino_vitb8(ctx.device, ctx.options.weights_dir)
        ctx.protocol.add_weights("dino_struct_vit", weights)
        result = dino_struct(ctx.real, ctx.fake, model, ctx.device, ctx.report("dino_struct"))
        ctx.values["dino_struct"] = result.mean
        ctx.bad += result.bad
        ctx.protocol.update({"dino_struct": {
            "kind": "paired (output vs the input of the same name, given as --real)", "network": "DINO ViT-B/8",
            "layer": LAYER, "descriptor": "cosine self-similarity of the keys, heads concatenated, CLS included",
            "resize": f"shorter side {RESIZE} (torchvision Resize, PIL bilinear)", "normalisation": "ImageNet",
            "reduction": "MSE per pair, mean over pairs", "scale": "x1 (papers often report x100)",
            "pairs": len(result.scores), "unmatched_fakes": result.unmatched,
            "reference": "GaParmar/img2img-turbo src/my_utils/dino_struct.py"}})
        if result.unmatched:
            ctx.warnings.append(f"DINO-Struct: {len(result.unmatched)} file(s) of {ctx.fake} have no namesake in "
                                f"{ctx.real} and were not scored; the JSON lists them under "
                                "protocol.dino_struct.unmatched_fakes")

"""The vision-aided discriminator's losses (nupurkmr9/vision-aided-gan vision_aided_loss/cv_losses.py):
binary cross-entropy with logits on each level of predictions, averaged per image over a level's map, summed
over levels.

`multilevel_sigmoid` labels real (and the generator's target) 1; `multilevel_sigmoid_s` ("smooth") labels them
0.8; fake is 0 in both. img2img-turbo: pix2pix-turbo's default is `multilevel_sigmoid_s`, CycleGAN-Turbo's
`multilevel_sigmoid`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from i2i_cli.models.losses.precision import upcast

Tensor = torch.Tensor
Target = Literal["G", "real", "fake"]
LossType = Literal["multilevel_sigmoid", "multilevel_sigmoid_s"]
REAL_LABELS: dict[str, float] = {"multilevel_sigmoid": 1.0, "multilevel_sigmoid_s": 0.8}


def multilevel_sigmoid_loss(predictions: list[Tensor], target: Target, real_label: float = 1.0) -> Tensor:
    """Per-image loss (N,): sum over levels of the mean BCE-with-logits of each level's (N, ...) logits against
    `real_label` (target "G" or "real") or 0 ("fake")."""
    if target not in ("G", "real", "fake"):
        raise ValueError(f"target must be 'G', 'real' or 'fake', not {target!r}")
    label = 0.0 if target == "fake" else real_label
    total = 0
    for logits in predictions:
        logits = upcast(logits)
        loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
        total = total + loss.flatten(1).mean(1)
    return total
